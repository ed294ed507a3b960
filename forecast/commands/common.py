"""What every command shares: loading the data it names, and the record of a run.

``RunRecord`` is the one ending of every command that writes results: an output
folder whose files are written under a temporary name and renamed when complete,
a ``manifest.json`` written last (a folder without one is visibly incomplete), and
an MLflow run opened when the work starts (params first, losses as they come,
exactly the files written as artifacts at the end) and closed FINISHED, FAILED or
KILLED.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .. import store, tracking
from ..config import DataConfig
from ..data.history import PriceHistory
from ..data.ingest import load_csv, load_ticker
from ..data.synthetic import simulate
from ..data.windows import Series, build_series
from ..errors import ForecastError, Interrupted
from ..settings_io import to_flat_dict, to_yaml

Echo = Callable[[str], None]
MANIFEST = "manifest.json"


def load_history(cfg: DataConfig) -> PriceHistory:
    """The history the settings name: a CSV, a simulation, or a ticker (download -> cache -> bundled)."""
    if cfg.csv:
        return load_csv(cfg.csv, cfg.date_format)
    if cfg.synthetic:
        return simulate(cfg.synthetic, cfg.synthetic_length, cfg.synthetic_noise, cfg.synthetic_seed, cfg.synthetic_lag)
    return load_ticker(cfg.ticker, cfg.cache_dir, cfg.offline)


def load_data(cfg: DataConfig, echo: Echo = print) -> tuple[PriceHistory, Series]:
    """Load, say where the data came from, and build features and target."""
    history = load_history(cfg)
    echo(f"data: {history.describe()}")
    series = build_series(history, cfg.target, cfg.features)
    for note in history.notes:
        echo(f"note: {note}")
    return history, series


def unique_models(names: list[str], echo: Echo = print) -> list[str]:
    """Each model once, in order: a repeated name would count its forecast days twice."""
    stripped = [n.strip() for n in names if n.strip()]
    unique = list(dict.fromkeys(stripped))
    repeated = sorted({n for n in unique if stripped.count(n) > 1})
    if repeated:
        echo(f"note: --models lists {', '.join(repeated)} more than once; each model runs once")
    return unique


def check_custom_cells(entries, n_features: int, network, lookback: int) -> None:
    """Build each user cell once on a tiny batch: a broken one is a one-line error before any run opens."""
    from ..models.custom import build_cell

    for entry in entries:
        if entry.custom:
            build_cell(entry.cell, n_features, network.hidden_size, network.num_layers, network.dropout, lookback)


def folder_name(*parts: str) -> str:
    """``parts`` joined by "-", fit for a folder name: no ``^`` (index tickers), no ``/``."""
    return "-".join(p.replace("^", "").replace("/", "_") for p in parts)


def default_out_dir(*parts: str) -> Path:
    return Path("runs") / f"{folder_name(*parts)}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_tags(history: PriceHistory, series: Series) -> dict[str, str]:
    return {"data_source": history.source, "data_start": f"{series.dates[0]:%Y-%m-%d}",
            "data_end": f"{series.dates[-1]:%Y-%m-%d}", "data_digest": history.digest(), "target": series.target_name}


def prepare_out(out: Path, overwrite: bool = False, tracked: bool = True) -> None:
    """Make ``out`` ready, or refuse in one line: it must be new, empty, or an earlier output of this
    toolkit (its ``manifest.json`` lists every file in it; ``overwrite`` removes them first), never a
    folder that holds the tracking store, and writable."""
    guard_out(out, tracked)
    if out.is_dir() and any(out.iterdir()):
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
    make_writable(out)


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
    files: list[Path] = field(default_factory=list)
    run_id: str | None = None

    @classmethod
    def for_settings(cls, cfg, kind: str, source: str, run_name: str, out_parts: tuple[str, ...],
                     echo: Echo = print) -> "RunRecord":
        out = Path(cfg.out) if cfg.out else default_out_dir(*out_parts)
        experiment = tracking.experiment_name(source, cfg.experiment) if cfg.track else None
        return cls(out, kind, source, experiment, run_name, to_flat_dict(cfg), echo, cfg.overwrite)

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> "RunRecord":
        self.prepare()
        if self.experiment:
            self.run_id = self.start_run()
        return self

    def prepare(self) -> None:
        """Make the output folder ready: new, empty, or an earlier output (``overwrite``)."""
        prepare_out(self.out, self.overwrite, tracked=self.experiment is not None)

    def start_run(self) -> str:
        """Open this command's MLflow run (active in this process); its id."""
        tags = {tracking.TAG_KIND: self.kind, tracking.TAG_SOURCE: self.source, "ticker": self.source}
        return tracking.start_run(self.experiment, self.run_name, tags, self.params).info.run_id

    def __exit__(self, kind, error, trace) -> None:
        if error is None:
            self.json(MANIFEST, {"files": [p.relative_to(self.out).as_posix() for p in self.files],
                                 "run_id": self.run_id, "written": time.strftime("%Y-%m-%dT%H:%M:%S")})
        if self.run_id:
            stopped = isinstance(error, (KeyboardInterrupt, Interrupted))
            status = "FINISHED" if error is None else "KILLED" if stopped else "FAILED"
            if error is None:
                tracking.log_files(self.files, self.out)
            tracking.end_run(status)
        if error is None:
            listed = ", ".join(p.relative_to(self.out).as_posix() for p in self.files if p.name != MANIFEST)
            self.echo(f"\noutputs: {self.out}/ ({listed})")
            if self.run_id:
                self.echo(f"mlflow: run {self.run_id} in experiment {self.experiment!r} ({tracking.tracking_uri()}); "
                          f"browse with `mlflow ui --backend-store-uri {tracking.tracking_uri()}`")

    # -------------------------------------------------------------- tracking

    def tags(self, tags: dict[str, Any]) -> None:
        if self.run_id:
            tracking.set_tags(tags)

    def metrics(self, values: dict[str, float], step: int | None = None) -> None:
        if self.run_id:
            tracking.log_metrics(values, step)

    def epoch_logger(self, per_seed: bool = False) -> Callable[[dict], None]:
        """A hook for the training loop: each epoch's losses logged as they come (step = epoch);
        with several seeds, one curve per seed (``val_loss_seed0``...)."""
        def log(row: dict) -> None:
            suffix = f"_seed{row['seed']}" if per_seed else ""
            self.metrics({f"{k}{suffix}": v for k, v in row.items() if k not in ("epoch", "seed")}, int(row["epoch"]))
        return log

    # -------------------------------------------------------------- files

    def commit(self, name: str, write: Callable[[Path], Any]) -> Path:
        """Write ``name`` under a temporary name, then rename: a file is either complete or absent."""
        final = self.out / name
        partial = final.with_name(f".{final.stem}.partial{final.suffix}")  # keeps the suffix: savefig reads it
        write(partial)
        os.replace(partial, final)
        if final not in self.files:
            self.files.append(final)
        return final

    def csv(self, name: str, frame: pd.DataFrame) -> Path:
        return self.commit(name, lambda p: frame.to_csv(p, index=False, date_format="%Y-%m-%d"))

    def json(self, name: str, data: Any) -> Path:
        return self.commit(name, lambda p: p.write_text(json.dumps(data, indent=2), encoding="utf-8"))

    def text(self, name: str, text: str) -> Path:
        return self.commit(name, lambda p: p.write_text(text, encoding="utf-8"))

    def config(self, cfg) -> Path:
        return self.text("config.yaml", to_yaml(cfg))

    def figure(self, name: str, draw: Callable[..., Any], *args, **kwargs) -> Path:
        """A PNG drawn by ``draw(*args, path, **kwargs)`` from the report module."""
        return self.commit(name, lambda p: draw(*args, p, **kwargs))
