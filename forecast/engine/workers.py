"""Worker processes that live and die with their command.

A pool from ``worker_pool`` starts processes that ignore Ctrl-C (the command stops them,
so a keypress reaches the terminal's whole process group only once) and are killed by
the kernel when their parent dies, however it dies (Linux ``PR_SET_PDEATHSIG``; a
watchdog thread elsewhere). When the command stops (Ctrl-C, SIGTERM, an error), pending
work is cancelled and running workers are killed at once: nothing waits for a queued
unit, and no worker is left orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_pools: dict[ProcessPoolExecutor, set[int]] = {}   # open pools -> this process's children before each started
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the parent died before the call above
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def worker_init(parent: int, setup=None) -> None:
    """Runs first in every worker: Ctrl-C is the parent's business; die with the parent; then ``setup()``
    (a fresh, spawned process gets the command line's output settings before it imports a library)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    if setup is not None:
        setup()


def worker_pids(pool: ProcessPoolExecutor) -> set[int]:
    """The processes ``pool`` started: this process's children that were not there before it (psutil: the
    pool's own table of processes is private to ``concurrent.futures``), less multiprocessing's resource
    tracker, which a spawning pool may start alongside and which must outlive it."""
    import psutil

    with contextlib.suppress(psutil.Error):
        return {c.pid for c in psutil.Process().children()
                if c.pid not in _pools.get(pool, set()) and not _is_resource_tracker(c)}
    return set()


def _is_resource_tracker(process) -> bool:
    import psutil

    with contextlib.suppress(psutil.Error):
        return any("resource_tracker" in part for part in process.cmdline())
    return False


def kill_workers() -> None:
    """Kill every worker of every open pool of this process (from a signal handler too)."""
    for pool in list(_pools):
        for pid in worker_pids(pool):
            with contextlib.suppress(Exception):
                os.kill(pid, signal.SIGKILL)


def pool_context(accelerator: str = "cpu", fresh: bool = False):
    """How worker processes start: forked where that is safe and cheap (no re-import of torch), spawned
    when they need a fresh interpreter (``fresh``: no inherited database connections or torch state; CUDA,
    which cannot be forked)."""
    import multiprocessing as mp

    if not fresh and accelerator != "cpu":
        import torch

        fresh = torch.cuda.is_available()
    return mp.get_context("fork" if not fresh and "fork" in mp.get_all_start_methods() else "spawn")


@contextlib.contextmanager
def worker_pool(jobs: int, context, setup=None):
    """A ``ProcessPoolExecutor`` whose workers stop with the command, whatever stops it."""
    import psutil

    before = {c.pid for c in psutil.Process().children()}
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=worker_init, initargs=(os.getpid(), setup))
    _pools[pool] = before
    try:
        yield pool
    except BaseException:
        kill_workers()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        _pools.pop(pool, None)


def cap_jobs(jobs: int, units: int) -> tuple[int, str | None]:
    """No more processes than work units or cores: ``(jobs to use, a note when capped)``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    capped = max(1, min(jobs, units, cores))
    if capped == jobs:
        return jobs, None
    return capped, f"--jobs {jobs} capped at {capped} ({units} work units, {cores} cores)"
