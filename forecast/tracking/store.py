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

import base64
import contextlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import ForecastError, redact

TAG_HOST, TAG_PID, TAG_STARTED = "forecast.host", "forecast.pid", "forecast.process_start"
DEFAULT_URI = "sqlite:///mlflow.db"
# The schemes MLflow's tracking client takes (a database's may name its driver: postgresql+psycopg2).
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")
SQLITE_HEADER = b"SQLite format 3\x00"
_FIX = ("set MLFLOW_TRACKING_URI to sqlite:///mlflow.db (a file here), a tracking server's http://host:port or a "
        "database URL (postgresql://user@host/db), or use --no-track")


def tracking_uri() -> str:
    """The store's URI without importing MLflow: the environment's, else MLflow's default. Only for
    MLflow's client: what is shown to anyone is ``shown_uri()``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def absolute_uri() -> str:
    """``tracking_uri()`` that means the same from any working folder (a SQLite file's path made absolute): what
    processes started elsewhere (Ray workers) are given."""
    path = sqlite_path()
    return f"sqlite:///{path.resolve()}" if path is not None and not path.is_absolute() else tracking_uri()


def shown_uri() -> str:
    """The store's URI as messages, logs and files show it: a password masked (``user:***@host``)."""
    return redact(tracking_uri())


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
    """Fail fast, in one line, when runs could not be recorded: before any training starts. Every
    address that cannot be used says what is wrong and what to do (shown with its password masked)."""
    uri = tracking_uri()
    shown = redact(uri)
    try:
        scheme = urlsplit(uri).scheme.lower()
    except ValueError as err:
        raise ForecastError(f"the tracking store {shown} is not a valid address ({redact(str(err))}); {_FIX}") from None
    if scheme in ("", "file") or len(scheme) == 1:      # a folder (a Windows drive letter parses as a scheme)
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true", "yes"):
            return
        raise ForecastError(f"the tracking store {shown} is a folder: MLflow 3 refuses its old file store; {_FIX}")
    if scheme.split("+")[0] not in SCHEMES:
        raise ForecastError(f"the tracking store {shown} has a scheme MLflow does not know ({scheme}://); {_FIX}")
    if scheme.split("+")[0] == "sqlite":
        _check_sqlite(sqlite_path(uri), shown)
    elif scheme in ("http", "https"):
        _check_server(uri, shown, timeout)


def _check_sqlite(path: Path | None, shown: str) -> None:
    """A SQLite store: its folder exists and can be written, and its file (if any) is a SQLite database."""
    if path is None:            # sqlite:// alone: an in-memory database
        return
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ForecastError(f"the tracking store {shown} is in a folder that does not exist ({folder}); "
                            f"create it, or point MLFLOW_TRACKING_URI elsewhere")
    if path.is_dir():
        raise ForecastError(f"the tracking store {shown} names a folder ({path}), not a database file; "
                            f"point MLFLOW_TRACKING_URI at a file, e.g. sqlite:///mlflow.db")
    target = path if path.exists() else folder
    if not os.access(target, os.W_OK):
        raise ForecastError(f"the tracking store {shown} cannot be written ({target} is read-only); run from a "
                            f"writable folder, set MLFLOW_TRACKING_URI, or use --no-track")
    try:
        with open(_lock_path(path), "a+"):      # the lock that creating the store takes: can it be made here?
            pass
        with open(path, "rb") if path.exists() else contextlib.nullcontext(None) as handle:
            header = handle.read(len(SQLITE_HEADER)) if handle is not None else SQLITE_HEADER
    except OSError as err:
        raise ForecastError(f"the tracking store {shown} cannot be used in {folder} ({err.strerror}); run from "
                            f"a writable folder, set MLFLOW_TRACKING_URI to a file in one, or use --no-track") from None
    if header and header != SQLITE_HEADER:      # an empty file is a new database to SQLite
        raise ForecastError(f"the tracking store {shown} is not a SQLite database ({path} holds something else); "
                            f"point MLFLOW_TRACKING_URI at another file, e.g. sqlite:///mlflow.db, or move it away")


def _check_server(uri: str, shown: str, timeout: float) -> None:
    """A tracking server answers at ``/health``; user and password in the address are sent as Basic auth
    (as MLflow's client does), never as part of the host name."""
    parts = urlsplit(uri)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as err:       # e.g. a port that is not a number
        raise ForecastError(f"the tracking server address {shown} is not a valid URL ({redact(str(err))}); "
                            f"fix MLFLOW_TRACKING_URI, or use --no-track") from None
    if not host:
        raise ForecastError(f"the tracking server address {shown} names no host; fix MLFLOW_TRACKING_URI "
                            f"(http://host:port), or use --no-track")
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    health = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    headers = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(health, headers=headers), timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered: a server without /health, or behind a proxy
    except (OSError, ValueError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise ForecastError(f"the tracking server {shown} does not answer ({redact(str(reason))}); start it, fix "
                            f"MLFLOW_TRACKING_URI, or use --no-track") from None


def unusable(err: BaseException) -> ForecastError:
    """The one line for a store that passed ``check_store`` but that MLflow cannot open or read."""
    reason = getattr(err, "orig", None) or err
    line = next((t.strip() for t in str(reason).splitlines() if t.strip()), type(err).__name__)
    line = line if len(line) <= 200 else line[:197] + "..."
    return ForecastError(f"the tracking store {redact(tracking_uri())} cannot be used ({redact(line)}); {_FIX}")


def _lock_path(path: Path) -> Path:
    return path.resolve().parent / f".{path.name}.lock"


@contextlib.contextmanager
def creation_lock(path: Path | None = None):
    """Serialise the creation of a SQLite file (the tracking store's, or ``path``): two processes that
    create and migrate one new database at the same moment collide."""
    path = path if path is not None else sqlite_path()
    if path is None:
        yield
        return
    import fcntl

    with open(_lock_path(path), "a+") as handle:
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
