"""Backtests and sweeps on Ray (``--executor ray``): a real two-node cluster on 127.0.0.1, never a mock.

Ray's own ``ray.cluster_utils.Cluster`` starts the nodes; ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` set before it
puts every node on 127.0.0.1, and the first test fails if a node has another address.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"      # read when Ray is imported: every node on 127.0.0.1
if os.environ.get("CI", "").lower() == "true":
    import ray                                  # CI installs the extra (`make test`): missing, it fails, never skips
else:
    ray = pytest.importorskip("ray", reason="Ray is the optional extra forecast[ray]; `make test` installs it")

from forecast.cli import main  # noqa: E402

PANEL = ["backtest", "--synthetic", "panel", "--synthetic-length", "500", "--covariates", "panel", "--models",
         "gru,gru-global,ridge", "--lookback", "5", "--hidden-size", "4", "--max-epochs", "3", "--accelerator", "cpu",
         "--refit-every", "60", "--no-track"]


@pytest.fixture(scope="module")
def cluster():
    """A head and one more node, one CPU each, on 127.0.0.1; shut down after the module."""
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    made.add_node(num_cpus=1)
    made.wait_for_nodes()
    try:
        yield made
    finally:
        made.shutdown()


def test_every_node_is_on_loopback_and_a_panel_backtest_gives_the_local_predictions(cluster, tmp_path, capsys):
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        addresses = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    finally:
        ray.shutdown()
    assert addresses == {"127.0.0.1"}, f"a Ray node is bound to {addresses}: the tests send nothing off this host"
    assert main([*PANEL, "--out", "local"]) == 0
    tracked = [a for a in PANEL if a != "--no-track"]
    assert main([*tracked, "--executor", "ray", "--ray-address", cluster.address, "--out", "ray"]) == 0
    out = capsys.readouterr().out
    assert f"ray: the Ray cluster at {cluster.address}: 2 node(s) on 1 machine(s), 2 CPU(s)" in out
    assert "left)" in out                                  # progress: done / total and the time left
    local, remote = ((tmp_path / name / "predictions.csv").read_bytes() for name in ("local", "ray"))
    assert local == remote
    import mlflow                                          # epoch losses streamed from the tasks to the run

    [run] = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`forecast.kind` = 'backtest'",
                               output_format="list")
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epochs.gru.fold1.sim-follow.seed42.val_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert "epochs.gru-global.fold1.seed42.val_loss" in run.data.metrics


def test_a_node_lost_mid_run_changes_no_result(cluster, tmp_path):
    """The second node is removed once the first unit is back: its tasks run again on the head, same numbers."""
    from forecast.config.settings import BacktestConfig
    from forecast.config.yaml_io import resolve
    from forecast.commands.backtest import backtest

    args = ["--synthetic", "ar2", "--synthetic-length", "800", "--models", "gru,rnn", "--lookback", "5",
            "--hidden-size", "8", "--max-epochs", "6", "--accelerator", "cpu", "--refit-every", "40", "--no-track"]
    assert main(["backtest", *args, "--out", "local"]) == 0
    [worker] = [n for n in cluster.list_all_nodes() if not n.head]
    lines = []

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith("  [1/") and worker in cluster.list_all_nodes():
            cluster.remove_node(worker)

    cfg = resolve(BacktestConfig, None, {"synthetic": "ar2", "synthetic_length": 800, "models": ["gru", "rnn"],
                                         "lookback": 5, "hidden_size": 8, "max_epochs": 6, "accelerator": "cpu",
                                         "refit_every": 40, "track": False, "executor": "ray",
                                         "ray_address": cluster.address, "out": "ray"})
    try:
        backtest(cfg, echo)
        assert worker not in cluster.list_all_nodes() and any("node(s)" in line for line in lines)
        assert (tmp_path / "local" / "predictions.csv").read_bytes() == (tmp_path / "ray" / "predictions.csv").read_bytes()
    finally:
        if len(cluster.list_all_nodes()) < 2:
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()


def test_a_unit_failing_on_its_own_fails_the_command_in_one_line_naming_it(cluster, capsys):
    assert main(["backtest", "--synthetic", "ar2", "--synthetic-length", "600", "--models", "gru", "--lookback", "5",
                 "--learning-rate", "1e6", "--max-epochs", "2", "--accelerator", "cpu", "--refit-every", "60",
                 "--executor", "ray", "--ray-address", cluster.address, "--no-track"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: gru fold") and "diverged" in err, err


def test_a_sweep_runs_its_trial_workers_as_ray_tasks(cluster, capsys):
    from forecast.commands.sweep import sweep
    from forecast.config.sweep_settings import SweepConfig
    from forecast.config.yaml_io import resolve

    cfg = resolve(SweepConfig, None, {"synthetic": "ar2", "synthetic_length": 700, "models": ["gru"], "trials": 4,
                                      "hidden_sizes": [4], "lookbacks": [5], "batch_sizes": [64], "max_epochs": 2,
                                      "val_folds": 2, "fold_days": 60, "accelerator": "cpu", "jobs": 2,
                                      "executor": "ray", "ray_address": cluster.address, "out": "sw"})
    result = sweep(cfg)
    import optuna

    study = optuna.load_study(study_name="synthetic-ar2-gru-return", storage=f"sqlite:///{Path('sw/study.db').resolve()}")
    complete = len([t for t in study.trials if t.state.name == "COMPLETE"])
    assert 4 <= complete <= 5            # two workers may both start the last trial, as local workers may
    assert len({row["worker"] for row in result.this_run}) == 2      # two workers, each a Ray task
    import mlflow

    trials = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`forecast.kind` = 'sweep-trial'")
    assert len(trials) == complete and set(trials["status"]) == {"FINISHED"}   # logged by the tasks to this store


def test_an_unreachable_cluster_is_one_line_within_seconds(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                      # free: nothing listens there
    started = time.perf_counter()
    assert main(["backtest", "--synthetic", "ar2", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                 "--no-track"]) == 2
    assert time.perf_counter() - started < 15
    assert f"--ray-address 127.0.0.1:{port}: nothing answers there" in capsys.readouterr().err
    assert main(["backtest", "--synthetic", "ar2", "--ray-address", f"127.0.0.1:{port}", "--no-track"]) == 2
    assert "--ray-address is for --executor ray" in capsys.readouterr().err


def test_ctrl_c_stops_every_task_and_the_ray_the_command_started(tmp_path):
    """SIGINT to a backtest on a Ray it started: exit 130 within seconds, the MLflow run KILLED, and none of that
    Ray's processes (its head, raylet, workers) left alive."""
    import psutil

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONUNBUFFERED": "1"}   # no cluster
    cmd = [sys.executable, "-m", "forecast", "backtest", "--synthetic", "ar2", "--synthetic-length", "1500",
           "--models", "lstm,gru", "--lookback", "10", "--max-epochs", "200", "--patience", "200", "--accelerator",
           "cpu", "--refit-every", "100", "--executor", "ray", "--jobs", "2", "--out", "stopped"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    family: set = set()
    try:
        deadline = time.time() + 120
        for line in proc.stdout:
            if line.startswith("ray: a local Ray"):
                break
            assert time.time() < deadline, "the local Ray did not start"
        time.sleep(3)                                  # tasks running on its workers
        family = {p for p in psutil.Process(proc.pid).children(recursive=True)}
        assert any("raylet" in " ".join(p.cmdline()) for p in family), [p.cmdline()[:2] for p in family]
        proc.send_signal(signal.SIGINT)
        stopped = time.perf_counter()
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 130, rest
        assert time.perf_counter() - stopped < 30
    finally:
        if proc.poll() is None:
            proc.kill()
    gone, alive = psutil.wait_procs(list(family), timeout=20)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline() for p in alive]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")     # not the session's store
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and {r.info.status for r in runs} == {"KILLED"}
    assert not (tmp_path / "stopped" / "predictions.csv").exists()


def test_a_sweep_across_machines_needs_stores_every_machine_reaches(monkeypatch):
    """A cluster whose nodes are on two machines: a SQLite study or tracking store (a file on one of them) is one
    line; PostgreSQL and a tracking server pass."""
    from forecast.commands.sweep import _check_cluster_stores
    from forecast.engine.cluster import RaySession
    from forecast.errors import ForecastError

    two = RaySession("10.0.0.5:6379", False, nodes=3, machines=2, cpus=48, gpus=0)
    with pytest.raises(ForecastError, match="the study storage sqlite:///x.db is a file on this one"):
        _check_cluster_stores(two, "sqlite:///x.db", tracked=False)
    with pytest.raises(ForecastError, match="set MLFLOW_TRACKING_URI to a tracking server"):
        _check_cluster_stores(two, "postgresql://u@db/s", tracked=True)     # the test's store is a SQLite file
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    _check_cluster_stores(two, "postgresql://u@db/s", tracked=True)
    _check_cluster_stores(RaySession("127.0.0.1:1", True, 2, 1, 2, 0), "sqlite:///x.db", tracked=True)   # one machine
