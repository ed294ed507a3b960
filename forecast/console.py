"""What the user sees of a command: our lines on stdout, library logging and warnings only when they matter.

Set up once by the CLI, and again by every freshly spawned worker process (a sweep's), which
starts without the parent's logging state. Nothing here imports a heavy library.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Callable

from .errors import redact

Echo = Callable[[str], None]   # where a command prints its lines (``print``, or a notebook's collector)


class RedactingFormatter(logging.Formatter):
    """Log lines with the password of any URL in them masked: a library may log the address it uses."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_output() -> None:
    """Quiet library loggers and the warnings we know, one handler of ours on the current stderr."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")           # migrations, run links
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")      # offline-first: no calls home unless asked
    # Lightning adds its own INFO handler unless the root logger has one: give it ours, at WARNING.
    # One of ours at a time, on the current stderr, however often main() runs in a process.
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "forecast"]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("forecast")
    handler.setLevel(logging.WARNING)
    handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
    root.addHandler(handler)
    for message in (r".*does not have many workers.*",          # batches come from tensors in memory, not workers
                    r".*LeafSpec.*", r".*isinstance\(treespec, LeafSpec\).*",   # Lightning vs torch's pytree
                    r".*number of training batches .* is smaller than the logging interval.*"):
        warnings.filterwarnings("ignore", message=message)
