"""Output folders: where a command may write, and what makes a folder a complete output.

A complete output lists every file it holds in ``manifest.json``, written last: a folder
without one is visibly incomplete. A sweep's folder is the one exception by design: it
holds the study's storage and is resumed, so it is accepted again for the same study.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ForecastError
from . import store

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Resumable:
    """A folder that the same work may come back to: its ``marker`` file names its ``study``."""

    marker: str          # e.g. sweep.json
    storage: str         # e.g. study.db: a folder with only this file is the same work, begun
    study: str


def folder_name(*parts: str) -> str:
    """``parts`` joined by "-", fit for a folder name: no ``^`` (index tickers), no ``/``."""
    return "-".join(p.replace("^", "").replace("/", "_") for p in parts)


def default_out_dir(*parts: str) -> Path:
    return Path("runs") / f"{folder_name(*parts)}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_out(out: Path, *, tracked: bool = True, overwrite: bool = False, resume: Resumable | None = None) -> None:
    """Make ``out`` ready, or refuse in one line. It must never be a file nor hold the tracking store, and
    be writable; when not empty it must be an earlier complete output of this toolkit (its manifest lists
    every file in it; ``overwrite`` removes them first) or, with ``resume``, the folder of the same work."""
    guard_out(out, tracked)
    if out.is_dir() and any(out.iterdir()):
        if resume is not None:
            _check_resumable(out, resume)
        else:
            _clear_earlier_output(out, overwrite)
    make_writable(out)


def _clear_earlier_output(out: Path, overwrite: bool) -> None:
    manifest = out / MANIFEST
    if not manifest.is_file():
        raise ForecastError(f"--out {out} is not empty and has no {MANIFEST}: it is not a complete output of "
                            f"this toolkit; choose a new or empty folder (or delete it)")
    try:
        listed = set(json.loads(manifest.read_text())["files"]) | {MANIFEST}
    except (ValueError, KeyError, TypeError):
        raise ForecastError(f"--out {out}: its {MANIFEST} is unreadable; choose a new or empty folder") from None
    stray = sorted(p.name for p in out.iterdir() if p.name not in listed and ".partial" not in p.name)
    if stray:
        raise ForecastError(f"--out {out} holds files its {MANIFEST} does not list (e.g. {stray[0]!r}); "
                            f"choose a new or empty folder")
    if not overwrite:
        raise ForecastError(f"--out {out} holds an earlier output; add --overwrite to replace it, or choose "
                            f"a new folder")
    for path in out.iterdir():
        if path.is_file():
            path.unlink()


def _check_resumable(out: Path, resume: Resumable) -> None:
    marker = out / resume.marker
    if not marker.is_file() and not (out / resume.storage).is_file():
        raise ForecastError(f"--out {out} is not empty and is not a sweep's folder (no {resume.marker}); choose a "
                            f"new or empty folder, or the --out of an earlier run of this sweep")
    try:
        earlier = json.loads(marker.read_text(encoding="utf-8")).get("study") if marker.is_file() else resume.study
    except (ValueError, AttributeError):
        raise ForecastError(f"--out {out}: its {resume.marker} is unreadable; choose a new folder") from None
    if earlier != resume.study:
        raise ForecastError(f"--out {out} is the folder of sweep {earlier!r}, not {resume.study!r}; choose another "
                            f"--out (or the same --study)")


def guard_out(out: Path, tracked: bool = True) -> None:
    """``out`` may be a folder, never a file, nor the home of the tracking store."""
    if out.exists() and not out.is_dir():
        raise ForecastError(f"--out {out} is a file; give a folder (new or empty)")
    db = store.sqlite_path()
    if db is not None and db.resolve().is_relative_to(out.resolve()) and (tracked or db.exists()):
        raise ForecastError(f"--out {out} would hold the tracking store ({db}); choose a folder of its own, "
                            f"e.g. runs/my-run")
    if (out / "mlruns").exists():
        raise ForecastError(f"--out {out} holds an MLflow store (mlruns/); choose a folder of its own")


def make_writable(out: Path) -> None:
    """Create ``out`` and prove it can be written, or one line saying why not."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ForecastError(f"--out {out} cannot be written ({err.strerror or type(err).__name__}); choose a "
                            f"writable folder") from None
