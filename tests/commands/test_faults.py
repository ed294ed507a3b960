"""Real processes, real signals: commands stop within seconds, workers included, and runs never lie.

Each test starts ``forecast`` as a user would (a fresh interpreter in its own process
group) and uses tiny models; all of them together stay under about two minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest

SLOW_BACKTEST = ["backtest", "--offline", "--models", "lstm,gru", "--jobs", "2", "--test-start", "2016-01-04",
                 "--hidden-size", "32", "--max-epochs", "300", "--patience", "300", "--accelerator", "cpu"]
SLOW_FIT = ["fit", "--offline", "--hidden-size", "32", "--max-epochs", "300", "--patience", "300",
            "--accelerator", "cpu"]


def start(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "forecast", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def wait_for_training(process: subprocess.Popen, store: Path, workers: int = 0, timeout: float = 60) -> list:
    """Until the run is open in the store (and the workers are busy): what a user sees as 'running'."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()
        children = psutil.Process(process.pid).children(recursive=True)
        if store.exists() and len(children) >= workers and "RUNNING" in _statuses(store):
            time.sleep(1.0)   # inside training
            return psutil.Process(process.pid).children(recursive=True)
        time.sleep(0.3)
    raise AssertionError("the command never started training")


def _statuses(store: Path) -> list[str]:
    from forecast.tracking.store import creation_lock

    try:
        with creation_lock():   # the command may be creating the store this very moment
            client = mlflow.MlflowClient(f"sqlite:///{store}")
            client.search_experiments(max_results=1)
        return [r.info.status for e in client.search_experiments()
                for r in client.search_runs([e.experiment_id], "", max_results=10)
                if "mlflow.parentRunId" not in r.data.tags]
    except Exception:
        return []


def stopped_within(process: subprocess.Popen, seconds: float) -> tuple[int, str]:
    started = time.time()
    _, err = process.communicate(timeout=seconds)
    assert time.time() - started < seconds
    return process.returncode, err


def gone(processes: list, seconds: float = 10) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=seconds)
    return not alive


def test_ctrl_c_stops_a_parallel_backtest_and_its_workers(isolated):
    process = start([*SLOW_BACKTEST, "--out", "bt"], isolated)
    workers = wait_for_training(process, isolated / "mlflow.db", workers=2)
    os.killpg(process.pid, signal.SIGINT)            # what Ctrl-C in a terminal does
    code, err = stopped_within(process, 15)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert gone(workers)
    assert _statuses(isolated / "mlflow.db") == ["KILLED"]
    assert not (isolated / "bt" / "manifest.json").exists()      # visibly incomplete


def test_a_second_ctrl_c_never_hangs(isolated):
    process = start([*SLOW_BACKTEST, "--out", "bt"], isolated)
    workers = wait_for_training(process, isolated / "mlflow.db", workers=2)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    code, _ = stopped_within(process, 15)
    assert code == 130 and gone(workers)


def test_sigterm_exits_143_and_kill_leaves_no_orphans_and_no_running_run(isolated):
    process = start([*SLOW_BACKTEST, "--out", "a"], isolated)
    workers = wait_for_training(process, isolated / "mlflow.db", workers=2)
    process.send_signal(signal.SIGTERM)              # the main process only
    code, err = stopped_within(process, 15)
    assert code == 143 and "terminated" in err and gone(workers)

    process = start([*SLOW_BACKTEST, "--out", "b"], isolated)
    workers = wait_for_training(process, isolated / "mlflow.db", workers=2)
    process.kill()                                    # SIGKILL: no handler runs
    process.communicate(timeout=10)
    assert gone(workers), "workers must exit on their own when the main process dies"
    assert sorted(_statuses(isolated / "mlflow.db")) == ["KILLED", "RUNNING"]
    # The next command that touches the store finds the run's process gone and marks it FAILED.
    listing = subprocess.run([sys.executable, "-m", "forecast", "compare"], cwd=isolated, capture_output=True,
                             text=True, timeout=60)
    assert listing.returncode == 2                    # no finished backtests, said in one line
    assert sorted(_statuses(isolated / "mlflow.db")) == ["FAILED", "KILLED"]


def test_ctrl_c_during_fit_exits_130_and_marks_the_run_killed(isolated):
    process = start([*SLOW_FIT, "--out", "fit"], isolated)
    wait_for_training(process, isolated / "mlflow.db")
    os.killpg(process.pid, signal.SIGINT)
    code, err = stopped_within(process, 10)
    assert code == 130 and "interrupted" in err
    assert _statuses(isolated / "mlflow.db") == ["KILLED"]


def test_an_unreachable_tracking_server_fails_before_training(isolated):
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "forecast", *SLOW_FIT], cwd=isolated, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9/"})
    assert done.returncode == 2 and time.time() - started < 20
    assert "tracking server http://127.0.0.1:9/ does not answer" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "trained" not in done.stdout


def test_a_read_only_folder_fails_before_training(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                                                   capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores file permissions and this sandbox cannot mount a read-only folder")
        folder.chmod(0o555)
    try:
        done = subprocess.run([sys.executable, "-m", "forecast", *SLOW_FIT], cwd=folder, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "MLFLOW_TRACKING_URI": ""})
        assert done.returncode == 2 and "cannot be written" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "trained" not in done.stdout
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        else:
            folder.chmod(0o755)


def test_two_first_runs_in_a_fresh_folder_both_land(isolated):
    fits = [start(["fit", "--offline", "--lookback", "5", "--hidden-size", "4", "--max-epochs", "1",
                   "--accelerator", "cpu", "--out", f"fit{k}"], isolated) for k in range(2)]
    for process in fits:
        _, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
    assert _statuses(isolated / "mlflow.db") == ["FINISHED", "FINISHED"]
