"""Console sessions: the api-key stays on the server, the browser holds an opaque cookie.

Signing in trades an api-key for a random session id, sent back as a cookie that scripts
cannot read (`HttpOnly`), that no other site's page can make the browser send
(`SameSite=Strict`), and that is `Secure` when the box serves HTTPS. The key itself never
returns to the browser, never appears in a URL and is never logged.

The console's pages call the public REST API like any client. The auth middleware asks
`session_secret` for a key when a request has no api-key header: a valid cookie *and* the
session's CSRF token in the `x-csrf-token` header stand for the session's key. Requiring the
header on every cookie request (not only writes) costs nothing and leaves no route that a
forged cross-site request could use: a form or an `<img>` cannot set a custom header.

Plain classes and small functions; the console's pages and routes are `edge.api.console`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from edge.api.keyring import ApiKey, KeyRing
from edge.config import ConsoleConfig
from edge.errors import EdgeError

COOKIE = "edge_console"
CSRF_HEADER = "x-csrf-token"
#: failed sign-ins allowed per FAILURE_WINDOW_S (all clients together); more wait
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0


@dataclass
class Session:
    """One signed-in browser. `secret` is the api-key, kept only in this process's memory."""

    csrf: str
    secret: str
    instance: str
    key_id: str
    last_seen: float


class SessionStore:
    """Sessions by the SHA-256 of their id (the id itself is not kept), least recent first.

    In memory on purpose: a restart signs everyone out, and nothing about a session is
    ever written to disk.
    """

    def __init__(self, config: ConsoleConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = config.session_idle_s
        self.max_sessions = config.max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        #: live-event streams open now (`edge.api.console` caps them)
        self.streams = 0
        self._failures: deque[float] = deque()

    def check_sign_in_allowed(self) -> None:
        """429 while too many sign-ins failed recently: a key cannot be guessed by trying.

        Counted for all clients together [decision]: behind NAT or a proxy every guesser
        shares an address anyway, and a locked console still leaves the API to key holders.
        """
        now = self._clock()
        while self._failures and now - self._failures[0] > FAILURE_WINDOW_S:
            self._failures.popleft()
        if len(self._failures) >= MAX_FAILURES:
            wait = FAILURE_WINDOW_S - (now - self._failures[0])
            raise EdgeError(429, f"too many failed sign-ins; try again in {max(1, round(wait))} s")

    def sign_in_failed(self) -> None:
        self._failures.append(self._clock())

    @staticmethod
    def _digest(sid: str) -> str:
        return hashlib.sha256(sid.encode("utf-8", "surrogateescape")).hexdigest()

    def create(self, key: ApiKey, secret: str) -> tuple[str, Session]:
        """A new session for `key`; returns (session id for the cookie, session)."""
        sid = secrets.token_urlsafe(32)
        session = Session(
            csrf=secrets.token_urlsafe(32),
            secret=secret,
            instance=key.instance,
            key_id=key.key_id,
            last_seen=self._clock(),
        )
        self._sessions[self._digest(sid)] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)  # the least recently used one
        return sid, session

    def get(self, sid: str) -> Session | None:
        """The live session of `sid` (its idle timer restarts), or None."""
        digest = self._digest(sid)
        session = self._sessions.get(digest)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self.idle_s:
            del self._sessions[digest]
            return None
        session.last_seen = now
        self._sessions.move_to_end(digest)
        return session

    def drop(self, sid: str) -> None:
        self._sessions.pop(self._digest(sid), None)

    def __len__(self) -> int:
        return len(self._sessions)


SESSIONS = web.AppKey("edge.console_sessions", SessionStore)


def current_session(request: web.Request, ring: KeyRing) -> Session | None:
    """The request's session, if its cookie names one whose api-key is still valid.

    A key pruned from the key file (`edge-face keys prune`) ends its sessions at once.
    """
    store = request.app.get(SESSIONS)
    sid = request.cookies.get(COOKIE)
    if store is None or not sid:
        return None
    session = store.get(sid)
    if session is None:
        return None
    if ring.lookup(session.secret) is None:
        store.drop(sid)
        return None
    return session


def session_secret(request: web.Request, ring: KeyRing) -> str | None:
    """The api-key a console request stands for, or None when it carries no session cookie.

    A cookie without the matching CSRF header is refused (401), not ignored: it is either a
    forged cross-site request or a page from before a restart, and both must stop here.
    """
    if SESSIONS not in request.app or not request.cookies.get(COOKIE):
        return None
    session = current_session(request, ring)
    if session is None:
        raise EdgeError(401, "the console session has ended; sign in again at /console")
    token = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), session.csrf.encode()):
        raise EdgeError(
            401,
            f"a console request must carry its session's {CSRF_HEADER} header;"
            " reload the console page",
        )
    return session.secret
