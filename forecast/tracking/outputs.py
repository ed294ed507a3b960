"""Output folders: where a command may write, and what makes a folder a complete output.

A complete output lists every file it holds in ``manifest.json``, written last: a folder
without one is visibly incomplete. Outputs are transactions: a command holds a lock on its
output's name for its whole life (a second command given the same folder is refused in one
line; a default name takes the next free suffix), writes into a hidden staging folder beside
it, and renames that folder into place only when complete, replacing an earlier output
(``--overwrite``) at that moment: an interrupted command leaves the earlier output whole.
A sweep's folder is the one exception by design: it holds the study's storage and is
resumed and joined, so it is accepted again for the same study and written in place.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
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
    """Check ``out`` for a sweep (written in place), or refuse in one line. It must never be a file nor hold
    the tracking store, and be writable; when not empty it must be, with ``resume``, the folder of the same
    work. Every other command stages its output (``StagedOutput``)."""
    guard_out(out, tracked)
    if out.is_dir() and any(out.iterdir()):
        if resume is not None:
            _check_resumable(out, resume)
        else:
            check_earlier_output(out, overwrite)
    make_writable(out)


class StagedOutput:
    """The output folder of one command as a transaction: ``claim`` (lock the name, check the folder, make
    the staging folder), ``staging`` to write into, then ``publish`` (rename into place) or ``discard``.

    ``unique``: the name was chosen by the toolkit (a default), so a name in use or taken moves on to
    ``NAME-2``, ``NAME-3``...; a name the user gave that another command holds is refused in one line."""

    def __init__(self, out: Path, *, tracked: bool = True, overwrite: bool = False, unique: bool = False):
        self.out, self.tracked, self.overwrite, self.unique = out, tracked, overwrite, unique
        self.staging: Path | None = None
        self._lock: int | None = None

    def claim(self) -> Path:
        base, number = self.out, 1
        while True:
            guard_out(self.out, self.tracked)
            self._lock, holder = _lock(self.out)
            if self._lock is not None and not (self.unique and self.out.exists()):
                break
            if not self.unique:
                raise ForecastError(f"--out {self.out} is in use by another command{holder}; wait for it to "
                                    f"finish or choose another folder")
            self._unlock()
            number += 1
            self.out = base.with_name(f"{base.name}-{number}")
        try:
            if self.out.is_dir() and any(self.out.iterdir()):
                check_earlier_output(self.out, self.overwrite)
            for left in self.out.parent.glob(f".{self.out.name}.staging-*"):   # a killed command's: ours now
                shutil.rmtree(left, ignore_errors=True)
            self.staging = self.out.parent / f".{self.out.name}.staging-{os.getpid()}"
            make_writable(self.staging)
        except BaseException:
            self._unlock()
            raise
        return self.out

    def publish(self) -> None:
        """Make the staging folder the output: an earlier output is replaced now, in two renames."""
        old = None
        if self.out.is_dir():
            if any(self.out.iterdir()):
                old = self.out.parent / f".{self.out.name}.replaced-{os.getpid()}"
                os.replace(self.out, old)
            else:
                self.out.rmdir()
        os.replace(self.staging, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._unlock()

    def discard(self) -> None:
        """An unfinished output: the staging folder goes, an earlier output stays whole."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            _lock_path(self.out).unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _lock(out: Path) -> tuple[int | None, str]:
    """``(descriptor, "")`` holding the lock on ``out``'s name, or ``(None, " (pid N)")`` when another process
    holds it. An advisory lock (``flock``): the system releases it when its process dies, however it dies."""
    path = _lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ForecastError(f"--out {out} cannot be written ({err.strerror or type(err).__name__}); choose a "
                            f"writable folder") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ForecastError(f"--out {out} cannot be written ({err.strerror or type(err).__name__}); choose a "
                                f"writable folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            return None, f" (pid {holder})" if holder.isdigit() else ""
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:                # not a file its last holder removed between our open and our lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd, ""
        os.close(fd)


def check_earlier_output(out: Path, overwrite: bool) -> None:
    """A folder that is not empty may be replaced only when it is a complete earlier output (its manifest
    lists every file in it) and ``overwrite`` says so."""
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
