"""The tracking store itself: where it is, whether it answers, and the runs nobody will finish.

MLflow's default store is ``sqlite:///mlflow.db`` in the working folder (artifacts in
``mlruns/``); ``MLFLOW_TRACKING_URI`` may point at a team's server instead. Before a
command trains for minutes it checks, within seconds, that the store can be written;
a fresh SQLite store is created under a file lock, so two first runs started together
both land. A run left RUNNING by a process that was killed (SIGKILL, power loss) is
marked FAILED by the next command that opens the store, but only when its ``host``
tag is this machine and its process (pid and start time) no longer exists: runs of
live workers, here or on other machines, are never touched.
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ForecastError

TAG_HOST, TAG_PID, TAG_STARTED = "forecast.host", "forecast.pid", "forecast.process_start"
DEFAULT_URI = "sqlite:///mlflow.db"


def tracking_uri() -> str:
    """The store's URI without importing MLflow: the environment's, else MLflow's default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def sqlite_path(uri: str | None = None) -> Path | None:
    """The database file of a ``sqlite:///`` store, else None."""
    uri = uri or tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def store_exists() -> bool:
    """Whether there is a store to read (a server is assumed to exist; a SQLite file must)."""
    path = sqlite_path()
    return path is None or path.is_file()


def check_store(timeout: float = 3.0) -> None:
    """Fail fast, in one line, when runs could not be recorded: before any training starts."""
    uri = tracking_uri()
    path = sqlite_path(uri)
    if path is not None:
        folder = path.resolve().parent
        target = path if path.exists() else folder
        if not folder.is_dir():
            raise ForecastError(f"the tracking store {uri} is in a folder that does not exist ({folder}); "
                                f"create it, or point MLFLOW_TRACKING_URI elsewhere")
        if not os.access(target, os.W_OK):
            raise ForecastError(f"the tracking store {uri} cannot be written ({target} is read-only); run from a "
                                f"writable folder, set MLFLOW_TRACKING_URI, or use --no-track")
        return
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
                pass
        except urllib.error.HTTPError:
            return  # it answered: a server without /health, or behind a proxy
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise ForecastError(f"the tracking server {uri} does not answer ({reason}); start it, fix "
                                f"MLFLOW_TRACKING_URI, or use --no-track") from None


@contextlib.contextmanager
def creation_lock(path: Path | None = None):
    """Serialise the creation of a SQLite file (the tracking store's, or ``path``): two processes that
    create and migrate one new database at the same moment collide."""
    path = path if path is not None else sqlite_path()
    if path is None:
        yield
        return
    import fcntl

    lock = path.resolve().parent / f".{path.name}.lock"
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def identity_tags() -> dict[str, str]:
    """Who is running a run: host, process id and the process's start time."""
    import psutil

    return {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid()),
            TAG_STARTED: f"{psutil.Process().create_time():.3f}"}


def is_orphaned(tags: dict[str, str]) -> bool:
    """A RUNNING run whose process was on this host and is gone (or its pid now belongs to another)."""
    import psutil

    if tags.get(TAG_HOST) != socket.gethostname() or TAG_PID not in tags:
        return False
    try:
        process = psutil.Process(int(tags[TAG_PID]))
        return abs(process.create_time() - float(tags.get(TAG_STARTED, "nan"))) > 0.01
    except (psutil.NoSuchProcess, ValueError):
        return True
    except psutil.AccessDenied:
        return False


def close_run(client, run_id: str, status: str, reason: str) -> None:
    """End a run that its own process will not end, saying why (tag ``forecast.ended_by``)."""
    client.set_tag(run_id, "forecast.ended_by", reason)
    client.set_terminated(run_id, status=status)


def reap_orphaned_runs(client) -> list[str]:
    """Mark FAILED the RUNNING runs whose process on this host no longer exists; their ids."""
    reaped = []
    experiments = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=1000):
        if is_orphaned(run.data.tags):
            close_run(client, run.info.run_id, "FAILED", "reaped: its process no longer exists")
            reaped.append(run.info.run_id)
    return reaped
