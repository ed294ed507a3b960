"""Sweep workers as real processes: a worker killed mid-trial, Ctrl-C of a parallel sweep, and two
workers sharing one study on a real PostgreSQL server (started here on 127.0.0.1, torn down after).

Each test starts ``forecast sweep`` as a user would, with tiny networks on a short simulated series.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import psutil
import pytest

from forecast.tracking import store
from forecast.cli import main

STUDY = "synthetic-ar2-lstm-return"
WORKER = ["sweep", "--synthetic", "ar2", "--synthetic-length", "700", "--models", "lstm", "--hidden-sizes", "8,16",
          "--layer-counts", "1", "--lookbacks", "8", "--batch-sizes", "64", "--val-folds", "2", "--fold-days", "60",
          "--accelerator", "cpu"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "forecast", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def trials(storage: str) -> list:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    path = Path(storage[len("sqlite:///"):]) if storage.startswith("sqlite:///") else None
    if path is not None and not path.is_file():
        return []                                   # not yet made by the sweep: do not make it here
    try:
        # Under the sweep's own creation lock: opening a storage creates missing tables, which must not
        # race a worker that is creating them this moment.
        with store.creation_lock(path) if path is not None else contextlib.nullcontext():
            return optuna.load_study(study_name=STUDY, storage=storage).trials
    except KeyError:
        return []


def wait_for(condition, processes: list[subprocess.Popen], timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for process in processes:
            assert process.poll() is None, process.communicate()
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def running_on(storage: str, pids: set[int]) -> list:
    """The RUNNING trials whose worker (as the trial says) is one of ``pids``, once their MLflow run exists."""
    return [t for t in trials(storage) if t.state.name == "RUNNING"
            and int(t.user_attrs.get("forecast.worker", {}).get("forecast.pid", -1)) in pids
            and "mlflow_run" in t.user_attrs.get("forecast.worker", {})]


def trial_runs() -> dict[int, object]:
    runs = mlflow.search_runs(search_all_experiments=True)
    runs = runs[runs["tags.forecast.kind"] == "sweep-trial"]
    return {int(r["tags.optuna.trial"]): r for _, r in runs.iterrows()}


def test_a_killed_workers_trial_is_retried_by_the_other_and_the_study_completes(isolated):
    storage = f"sqlite:///{isolated / 'shared.db'}"
    args = [*WORKER, "--trials", "3", "--max-epochs", "60", "--patience", "60", "--storage", storage,
            "--heartbeat", "1", "--grace-period", "3"]
    doomed, survivor = start([*args, "--out", "a"], isolated), start([*args, "--out", "b"], isolated)
    # Both busy: the survivor is past its start (where it would fail a dead local worker's trials at once),
    # so only the missing heartbeat can tell it that the other died.
    both = lambda: running_on(storage, {doomed.pid}) if running_on(storage, {survivor.pid}) else []
    [victim] = wait_for(both, [doomed, survivor])
    doomed.kill()                                           # SIGKILL, mid-trial: no handler runs
    doomed.communicate(timeout=10)
    out, err = survivor.communicate(timeout=180)
    assert survivor.returncode == 0, err
    by_number = {t.number: t for t in trials(storage)}
    assert by_number[victim.number].state.name == "FAIL"
    retries = [t for t in by_number.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert [t.state.name for t in retries] == ["COMPLETE"]
    assert f"trial {retries[0].number:>3} complete" in out        # run by the survivor
    assert sum(t.state.name == "COMPLETE" for t in by_number.values()) == 3
    runs = trial_runs()
    assert runs[victim.number]["status"] == "FAILED" and "no heartbeat" in runs[victim.number]["tags.forecast.ended_by"]
    assert {runs[t.number]["status"] for t in retries} == {"FINISHED"}


def test_ctrl_c_leaves_the_study_consistent_and_the_runs_killed_then_it_resumes(isolated):
    args = [*WORKER, "--trials", "2", "--max-epochs", "60", "--patience", "60", "--out", "sw"]
    process = start([*args, "--jobs", "2"], isolated)
    storage = f"sqlite:///{isolated / 'sw' / 'study.db'}"

    def both_busy():
        workers = {p.pid for p in psutil.Process(process.pid).children(recursive=True)}
        return len(running_on(storage, workers)) == 2 and workers
    workers = wait_for(both_busy, [process])
    os.killpg(process.pid, signal.SIGINT)                   # what Ctrl-C in a terminal does
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert "trial(s) 0, 1 stopped unfinished: marked failed and queued again" in out
    assert not psutil.wait_procs([psutil.Process(p) for p in workers if psutil.pid_exists(p)], timeout=10)[1]
    states = sorted(t.state.name for t in trials(storage))
    assert states == ["FAIL", "FAIL", "WAITING", "WAITING"]          # nothing left RUNNING
    parent = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`forecast.kind` = 'sweep'")
    assert list(parent["status"]) == ["KILLED"]
    assert {r["status"] for r in trial_runs().values()} <= {"KILLED"}

    # Run again: it runs the stopped trials; the same parent run, now finished.
    assert main(args) == 0
    done = trials(storage)
    assert sorted(t.state.name for t in done) == ["COMPLETE"] * 2 + ["FAIL"] * 2
    assert {t.system_attrs.get("failed_trial") for t in done if t.state.name == "COMPLETE"} == {0, 1}
    parent = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`forecast.kind` = 'sweep'")
    assert list(parent["status"]) == ["FINISHED"]


# ---------------------------------------------------------------- PostgreSQL


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own on 127.0.0.1 (a free port, a temporary folder), and a database in it."""
    bindir = _postgres_bin()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but PostgreSQL is not installed (no initdb); `make test` installs Debian's postgresql")
        pytest.skip("PostgreSQL is not installed (no initdb); `make test` installs Debian's postgresql package")
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="forecast-pg-"))      # not under pytest's root-only folders
    if as_root:
        shutil.chown(folder, "postgres", "postgres")           # PostgreSQL refuses to run as root

    def run(*command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, text=True, timeout=120)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "sweeps")
        yield f"postgresql://postgres@127.0.0.1:{port}/sweeps"
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_study_on_postgresql(isolated, postgres):
    url = postgres.replace("postgres@", "postgres:secret@")     # (trust: any password does) never written down
    args = [*WORKER, "--trials", "6", "--max-epochs", "10", "--storage", url]
    workers = [start([*args, "--out", name], isolated) for name in ("a", "b")]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        outputs.append(out)
    ran = [{int(n) for n in re.findall(r"lstm trial +(\d+) complete", out)} for out in outputs]
    study = trials(postgres.replace("postgresql://", "postgresql+psycopg2://"))     # the driver the toolkit ships
    complete = {t.number for t in study if t.state.name == "COMPLETE"}
    # The trials add up: each ran by exactly one worker, none lost; at most one extra when both start
    # their last trial at the same instant.
    assert ran[0] and ran[1], outputs                        # both worked on it
    assert not ran[0] & ran[1] and ran[0] | ran[1] == complete == {t.number for t in study}
    assert 6 <= len(complete) <= 7
    runs = trial_runs()
    assert sorted(runs) == sorted(complete) and len({r["tags.mlflow.parentRunId"] for r in runs.values()}) == 1
    assert "this run:" in outputs[0] and "this run:" in outputs[1]
    # Both wrote the best settings, the same ones.
    body = lambda name: [line for line in (isolated / name / "best" / "lstm.yaml").read_text().splitlines()
                         if not line.startswith("#")]
    assert body("a") == body("b")
    written = [p.read_bytes() for p in isolated.rglob("*") if p.is_file() and p.suffix != ".db" and "mlruns" not in p.parts]
    assert written and not any(b"secret" in data for data in written)
    params = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`forecast.kind` = 'sweep'")
    assert params.iloc[0]["params.sweep.storage"] == url.replace("secret", "***")
