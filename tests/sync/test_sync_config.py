"""The `sync` settings section: mistakes fail at start with the key and what to do."""

from __future__ import annotations

import pytest

from edge.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("sync", "says"),
    [
        ({"upstream": "http://hub:8080"}, "sync.enabled is false"),
        ({"enabled": True}, "needs sync.upstream"),
        ({"enabled": True, "upstream": "http://hub:8080"}, "sync.token"),
        ({"enabled": True, "role": "hub"}, "sync.boxes"),
        ({"enabled": True, "role": "hub", "boxes": [
            {"id": "a", "token_sha256": ["abc"], "instances": ["x"]}]}, "64 hex digits"),
        ({"enabled": True, "role": "hub", "boxes": [
            {"id": "a", "token_sha256": ["0" * 64], "instances": []}]}, "instances"),
        ({"require_client_cert": True}, "client_ca_file"),
        ({"cert_file": "/x.pem"}, "go together"),
        ({"long_poll_s": -1}, "long_poll_s"),
        ({"upstrem": "http://hub"}, "did you mean 'upstream'"),
    ],
)  # fmt: skip
def test_bad_sync_settings_name_the_problem(sync: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(None, sync=sync)


def test_valid_box_and_hub_settings() -> None:
    box = load_settings(
        None, sync={"enabled": True, "upstream": "https://hub:8443", "token": "t" * 20}
    ).sync
    assert box.role == "box" and box.token is not None and "t" * 20 not in repr(box)
    hub = load_settings(None, sync={"enabled": True, "role": "hub", "boxes": [
        {"id": "a", "token_sha256": ["AB" * 32], "instances": ["x"]}]}).sync  # fmt: skip
    assert hub.boxes[0].token_sha256 == ["ab" * 32]  # normalised to lower case
