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

import signal


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
