"""The record of one command's run: its output folder and its MLflow run, opened and closed together.

``RunRecord`` is the one ending of every command that writes results: an output folder written
as a transaction (a staging folder beside it, locked against a second command, renamed into
place when complete with its ``manifest.json`` written last: ``outputs.StagedOutput``), and an MLflow run opened when the
work starts (params first, losses as they come, exactly the files written as artifacts at the
end) and closed FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..config.yaml_io import to_flat_dict, to_yaml
from ..console import Echo
from ..errors import Interrupted
from . import runs as tracking
from .outputs import MANIFEST, StagedOutput, default_out_dir


def data_tags(history, series) -> dict[str, str]:
    """Where the data came from and what it spans (a ``PriceHistory`` and its ``FeatureSeries``)."""
    return {"data_source": history.source, "data_start": f"{series.dates[0]:%Y-%m-%d}",
            "data_end": f"{series.dates[-1]:%Y-%m-%d}", "data_digest": history.digest(), "target": series.target_name}


def series_slug(series: str) -> str:
    """A series name as the start of an MLflow metric name or a file name (letters, digits, _ - . only):
    ``^GSPC`` -> ``GSPC``."""
    return re.sub(r"[^\w.\-]", "", series) or "series"


def panel_tags(panel) -> dict[str, str]:
    """What a panel's runs say of their data (a ``data.panels.Panel``): the series, the span of all of them, the target."""
    return {"series": ",".join(panel.names)[:500], "n_series": str(len(panel)),
            "data_start": f"{min(s.dates[0] for s in panel.series):%Y-%m-%d}",
            "data_end": f"{max(s.dates[-1] for s in panel.series):%Y-%m-%d}", "target": panel.series[0].target_name}


@dataclass
class RunRecord:
    """One command's output folder and MLflow run; use as a context manager.

    ``kind`` (fit, backtest, bench, diagnose) and ``source`` (the data's name) become
    tags that ``predict`` and ``compare`` search by.
    """

    out: Path
    kind: str
    source: str
    experiment: str | None = None      # None: not tracked
    run_name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    echo: Echo = print
    overwrite: bool = False
    files: list[Path] = field(default_factory=list)      # written so far, relative to the output folder
    run_id: str | None = None
    unique: bool = False               # a default name: the next free suffix when taken
    work: Path | None = None           # where files are written until the output is complete
    staged: StagedOutput | None = None

    @classmethod
    def for_settings(cls, cfg, kind: str, source: str, run_name: str, out_parts: tuple[str, ...],
                     echo: Echo = print) -> "RunRecord":
        out = Path(cfg.out) if cfg.out else default_out_dir(*out_parts)
        experiment = tracking.experiment_name(source, cfg.experiment) if cfg.track else None
        return cls(out, kind, source, experiment, run_name, to_flat_dict(cfg), echo, cfg.overwrite,
                   unique=not cfg.out)

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> "RunRecord":
        self.prepare()
        try:
            if self.experiment:
                self.run_id = self.start_run()
        except BaseException:
            self.discard()
            raise
        return self

    def prepare(self) -> None:
        """Claim the output folder (new, empty, or an earlier output to replace with ``overwrite``) and
        stage the files beside it."""
        self.staged = StagedOutput(self.out, tracked=self.experiment is not None, overwrite=self.overwrite,
                                   unique=self.unique)
        self.out = self.staged.claim()
        self.work = self.staged.staging

    def publish(self) -> None:
        """The output is complete: it takes its place (replacing an earlier one now, not before)."""
        self.staged.publish()

    def discard(self) -> None:
        if self.staged is not None:
            self.staged.discard()

    def start_run(self) -> str:
        """Open this command's MLflow run (active in this process); its id."""
        tags = {tracking.TAG_KIND: self.kind, tracking.TAG_SOURCE: self.source, "ticker": self.source}
        return tracking.start_run(self.experiment, self.run_name, tags, self.params).info.run_id

    def __exit__(self, kind, error, trace) -> None:
        try:
            if error is None:
                self.json(MANIFEST, {"files": [p.as_posix() for p in self.files],
                                     "run_id": self.run_id, "written": time.strftime("%Y-%m-%dT%H:%M:%S")})
                self.publish()
        except BaseException as failed:      # e.g. interrupted at the last moment: the run says so
            error = failed
            raise
        finally:
            if error is not None:
                self.discard()
            if self.run_id:
                stopped = isinstance(error, (KeyboardInterrupt, Interrupted))
                status = "FINISHED" if error is None else "KILLED" if stopped else "FAILED"
                if error is None:
                    tracking.log_files([self.out / p for p in self.files], self.out)
                if error is not None:
                    # The error's finished frames hold what they used, an interrupted write's database connection
                    # (and its lock) among them: let them go before the run is marked.
                    traceback.clear_frames(error.__traceback__)
                try:
                    tracking.end_run(status)
                except Exception as trouble:
                    if error is None:
                        raise
                    # Already failing or stopped: say so, keep the first error (and its exit code).
                    self.echo(f"note: the MLflow run could not be marked {status} ({type(trouble).__name__}); the "
                              f"next command that opens the store marks it FAILED, its process being gone")
        if error is None:
            listed = ", ".join(p.as_posix() for p in self.files if p.name != MANIFEST)
            self.echo(f"\noutputs: {self.out}/ ({listed})")
            if self.run_id:
                self.echo(f"mlflow: run {self.run_id} in experiment {self.experiment!r} ({tracking.shown_uri()}); "
                          f"browse with `mlflow ui --backend-store-uri {tracking.shown_uri()}`")

    # -------------------------------------------------------------- tracking

    def tags(self, tags: dict[str, Any]) -> None:
        if self.run_id:
            tracking.set_tags(tags)

    def metrics(self, values: dict[str, float], step: int | None = None) -> None:
        if self.run_id:
            tracking.log_metrics(values, step)

    def epoch_logger(self, per_seed: bool = False) -> Callable[[dict], None]:
        """A hook for the training loop: each epoch's losses logged as they come (step = epoch);
        with several seeds, one curve per seed (``val_loss_seed0``...), and one per restart (``val_loss_restart1``)."""
        def log(row: dict) -> None:
            suffix = (f"_seed{row['seed']}" if per_seed else "") + (f"_restart{row['restart']}" if row.get("restart") else "")
            self.metrics({f"{k}{suffix}": v for k, v in row.items() if k not in ("epoch", "seed", "restart")},
                         int(row["epoch"]))
        return log

    def unit_epochs(self, names: list[str] | None = None) -> Callable[[list[dict]], None] | None:
        """A backtest's hook for the epoch rows of its units (``engine.epochs``), logged to this run as they come:
        ``epochs.<model>.fold<k>[.<series>][.seed<s>][.restart<r>].val_loss`` (and ``train_loss``), step = epoch.
        None when nothing is tracked."""
        if not self.run_id:
            return None

        def log(rows: list[dict]) -> None:
            metrics = []
            for row in rows:
                where = f".{series_slug(names[row['series']])}" if names and row.get("series") is not None else ""
                key = (f"epochs.{row['model']}.fold{row['fold']}{where}.seed{row.get('seed', 0)}"
                       + (f".restart{row['restart']}" if row.get("restart") else ""))
                metrics += [(f"{key}.{loss}", row[loss], int(row["epoch"])) for loss in ("train_loss", "val_loss")
                            if loss in row]
            tracking.log_metric_rows(metrics)
        return log

    # -------------------------------------------------------------- files

    def commit(self, name: str, write: Callable[[Path], Any]) -> Path:
        """Write ``name`` under a temporary name, then rename: a file is either complete or absent."""
        final = self.work / name
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.stem}.partial{final.suffix}")  # keeps the suffix: savefig reads it
        write(partial)
        os.replace(partial, final)
        if Path(name) not in self.files:
            self.files.append(Path(name))
        return final

    def csv(self, name: str, frame: pd.DataFrame) -> Path:
        return self.commit(name, lambda p: frame.to_csv(p, index=False, date_format="%Y-%m-%d"))

    def json(self, name: str, data: Any) -> Path:
        """Strict JSON: a number that is not finite is written as null (no NaN or Infinity tokens)."""
        text = json.dumps(tracking.clean(data), indent=2, allow_nan=False)
        return self.commit(name, lambda p: p.write_text(text, encoding="utf-8"))

    def text(self, name: str, text: str) -> Path:
        return self.commit(name, lambda p: p.write_text(text, encoding="utf-8"))

    def config(self, cfg) -> Path:
        return self.text("config.yaml", to_yaml(cfg))

    def figure(self, name: str, draw: Callable[..., Any], *args, **kwargs) -> Path:
        """A PNG drawn by ``draw(*args, path, **kwargs)`` from the report module."""
        return self.commit(name, lambda p: draw(*args, p, **kwargs))
