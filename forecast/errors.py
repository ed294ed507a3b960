"""The one exception type for bad user input.

The CLI prints its message as a single line (no traceback) and exits 2; it is a
``ValueError`` so library callers can catch it the usual way.
"""


class ForecastError(ValueError):
    """User-facing error: says what is wrong and what to do, in one line."""
