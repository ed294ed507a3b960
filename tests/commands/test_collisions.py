"""Nothing lost when runs collide: outputs are transactions, a folder in use is refused, default names
never clash, and an interrupted rerun leaves the earlier output whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from forecast.cli import main
from forecast.tracking import outputs
from forecast.tracking.outputs import StagedOutput

FIT = ["fit", "--synthetic", "ar2", "--synthetic-length", "400", "--lookback", "5", "--model", "gru",
       "--hidden-size", "4", "--accelerator", "cpu"]


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_interrupted_overwrite_leaves_the_earlier_output_whole_and_a_folder_in_use_is_refused(isolated, capsys):
    assert main([*FIT, "--max-epochs", "1", "--out", "run"]) == 0
    earlier = files_of(isolated / "run")
    assert "manifest.json" in earlier
    capsys.readouterr()

    # A long rerun with --overwrite, interrupted while it trains.
    rerun = subprocess.Popen([sys.executable, "-m", "forecast", *FIT, "--max-epochs", "500", "--patience", "500",
                              "--out", "run", "--overwrite"], cwd=isolated, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    def training() -> bool:       # its staging folder made and its MLflow run open
        return bool(list(isolated.glob(".run.staging-*"))) and "RUNNING" in {
            r.info.status for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    deadline = time.time() + 60
    while not training() and time.time() < deadline:
        assert rerun.poll() is None, rerun.communicate()
        time.sleep(0.2)
    assert training(), "the rerun never started"
    assert files_of(isolated / "run") == earlier                   # started: nothing of the old output touched

    # A second command given the same folder meanwhile: one line, and it changes nothing.
    assert main([*FIT, "--max-epochs", "1", "--out", "run", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"--out run is in use by another command (pid {rerun.pid})" in err and len(err.strip().splitlines()) == 1

    os.killpg(rerun.pid, signal.SIGINT)
    _, err = rerun.communicate(timeout=30)
    assert rerun.returncode == 130, err
    assert files_of(isolated / "run") == earlier                   # the earlier output, whole
    assert not [p.name for p in isolated.iterdir() if p.name.startswith(".run.")]   # no staging, no lock left
    statuses = sorted(r.info.status for r in mlflow.search_runs(search_all_experiments=True, output_format="list"))
    assert statuses == ["FINISHED", "KILLED"]

    # Once free, --overwrite replaces it, at the end.
    assert main([*FIT, "--max-epochs", "1", "--out", "run", "--overwrite"]) == 0
    manifest = json.loads((isolated / "run" / "manifest.json").read_text())
    assert manifest["run_id"] != json.loads(earlier["manifest.json"])["run_id"]
    assert set(manifest["files"]) | {"manifest.json"} == {p.name for p in (isolated / "run").iterdir()}


def test_default_names_are_unique_however_many_commands_start_in_the_same_second(isolated, monkeypatch, capsys):
    monkeypatch.setattr(outputs.time, "strftime", lambda *a: "20260102-030405")    # every command: one second
    held = StagedOutput(Path("runs/synthetic-ar2-gru-20260102-030405"), unique=True)
    assert held.claim().name == "synthetic-ar2-gru-20260102-030405"                # a command still running
    assert main([*FIT, "--max-epochs", "1", "--no-track"]) == 0
    assert main([*FIT, "--max-epochs", "1", "--no-track"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic-ar2-gru-20260102-030405-2", "synthetic-ar2-gru-20260102-030405-3"):
        assert f"outputs: runs/{name}/" in out
        assert (isolated / "runs" / name / "manifest.json").is_file()
    held.discard()
    assert sorted(p.name for p in (isolated / "runs").iterdir()) == ["synthetic-ar2-gru-20260102-030405-2",
                                                                    "synthetic-ar2-gru-20260102-030405-3"]


def test_a_given_folder_held_by_another_process_is_refused_before_anything_runs(isolated, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from forecast.tracking.outputs import StagedOutput; "
                               "StagedOutput(Path('fit')).claim(); print('held', flush=True); time.sleep(60)"],
                              cwd=isolated, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*FIT, "--max-epochs", "1", "--out", "fit"]) == 2
        err = capsys.readouterr().err
        assert "in use by another command" in err and "Traceback" not in err
        assert not (isolated / "mlflow.db").exists() or not mlflow.search_runs(search_all_experiments=True,
                                                                                output_format="list")
    finally:
        holder.kill()
        holder.wait()
    assert main([*FIT, "--max-epochs", "1", "--out", "fit"]) == 0       # a dead holder's lock is gone with it
    assert (isolated / "fit" / "manifest.json").is_file()


@pytest.mark.parametrize("stage", ["_train", "_write"])
def test_a_command_that_fails_leaves_no_output_and_no_staging(isolated, monkeypatch, capsys, stage):
    import forecast.commands.fit as fit

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fit, stage, boom)
    with pytest.raises(OSError):           # not a user's mistake: it surfaces as it is
        main([*FIT, "--max-epochs", "1", "--out", "run"])
    assert not (isolated / "run").exists() and not list(isolated.glob(".run.*"))
    assert [r.info.status for r in mlflow.search_runs(search_all_experiments=True, output_format="list")] == ["FAILED"]
