"""The toolkit's own exceptions: bad input, and a stop asked for by a signal.

``ForecastError``: bad user input. The CLI prints its message as a single line (no
traceback) and exits 2; it is a ``ValueError`` so library callers can catch it the
usual way.

``Interrupted``: Ctrl-C (SIGINT) or SIGTERM. Deliberately not a ``KeyboardInterrupt``:
Lightning turns that into ``sys.exit(1)`` and ignores every later Ctrl-C, while any
other exception passes through its ``fit`` after its own teardown. The CLI exits with
128 + the signal number (130, 143).
"""

from __future__ import annotations

import re
import reprlib
import signal

# scheme://user:password@host -> scheme://user:***@host (the password ends at the last @ before the path);
# ?password=... and the like in a query too. Applied to whole messages: a URL may sit inside a library's text.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@?#]*):(?P<secret>[^/\s?#]*)@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|secret|token|access_token|api_key)=)[^&;#\s]*",
                           re.IGNORECASE)
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict, _SHORT.maxset = 2, 4, 4, 4, 4
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60


def redact(text: str) -> str:
    """``text`` with the password of every URL in it masked (``user:***@host``): for messages, printed
    settings, files, MLflow params and logs. The URL handed to a client is never passed through here."""
    text = _USERINFO.sub(lambda m: f"{m['head']}:***@", str(text))
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}***", text)


def shorten(value: object, limit: int = 60) -> str:
    """A value as a message shows it: its repr, at most ``limit`` characters (``...`` marks a cut), found
    without walking a huge or deeply nested value (a YAML alias bomb must not expand into a message)."""
    shown = _SHORT.repr(value)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


class ForecastError(ValueError):
    """User-facing error: says what is wrong and what to do, in one line."""


class Interrupted(BaseException):
    """The user (or the system) asked the command to stop."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
