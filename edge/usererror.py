"""The error type for mistakes an operator can fix (a taken port, a missing file, a typo).

The CLI prints its message as one line and exits with `exit_code`, without a traceback:
a traceback tells the person at the console nothing about what to do next.
"""

from __future__ import annotations


class UserError(Exception):
    """A fixable mistake; the message says what is wrong and what to do next."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
