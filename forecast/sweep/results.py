"""What a sweep leaves: the best settings per model, tables, importances and figures; and reading them back.

Fixed names in the sweep's folder (``forecast backtest --from-sweep`` reads them):
``sweep.json`` (what the studies are and where), ``best/<model>.yaml`` (settings for ``fit --config`` and
``backtest --config``), ``best_trials.csv``, ``trials_<model>.csv``, ``importance_<model>.csv`` and
``.png``, ``history_<model>.png``.

Importances follow Greff et al.: fANOVA (Optuna's evaluator: a random forest over complete trials,
each hyperparameter's share of the variance of the validation loss); with fewer than
``FANOVA_MIN`` complete trials, PED-ANOVA, which needs fewer.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..config.settings import DataSettings, RunConfig
from ..config.sweep_settings import SweepConfig
from ..errors import ForecastError
from ..report.figures import pyplot, save_figure
from ..config.yaml_io import resolve, to_yaml
from ..engine.walkforward import ModelSetup
from .space import describe

SWEEP_FILE = "sweep.json"
BEST_DIR = "best"
FANOVA_MIN = 10


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, value, the sampled values, seconds, and the last fold reached."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        rows.append({"trial": t.number, "state": t.state.name, "val_loss": t.value, **t.params,
                     "folds": max(t.intermediate_values) if t.intermediate_values else 0,
                     "last_fold_loss": t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None,
                     "seconds": seconds, "fit_seconds": t.user_attrs.get("fit_seconds"),
                     "retry_of": t.system_attrs.get("failed_trial"), "error": t.user_attrs.get("error")})
    return pd.DataFrame(rows)


def best_trial(study):
    """The complete trial with the lowest validation loss, or None."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(complete, key=lambda t: (t.value, t.number)) if complete else None


OPTIONAL_FACTS = ("series", "covariates")   # data facts kept only where a sweep has them


def data_facts(data: DataSettings) -> dict[str, str]:
    """The data a sweep tunes on, as its studies and ``sweep.json`` keep it: a backtest --from-sweep must match."""
    facts = {"source": data.source_name, "target": data.target, "horizon": str(data.horizon),
             "features": ",".join(data.features)}
    if data.tickers:                   # a panel's every series, not only the first one its source names
        facts["series"] = ",".join(data.tickers)
    if data.covariates or data.covariate_csv:
        facts["covariates"] = ",".join(data.covariates + data.covariate_csv)
    return facts


def best_settings(cfg: SweepConfig, setup: ModelSetup) -> RunConfig:
    """The sweep's settings with the best trial's (``setup``): what ``fit`` and ``backtest`` read with --config."""
    return RunConfig(data=replace(cfg.data, lookback=setup.lookback), network=setup.network, train=setup.train)


def best_yaml(settings: RunConfig, model: str, study: str, trial, test_start: str, n_finished: int,
              folder: Path, loss: str) -> str:
    head = [f"# best {model} of sweep study {study!r}: trial {trial.number} of {n_finished} finished, validation loss "
            f"{trial.value:.4f} ({loss}, on the folds before {test_start})",
            f"#   forecast fit --config {folder / BEST_DIR / (model + '.yaml')} --model {model}",
            f"#   forecast backtest --config {folder / BEST_DIR / (model + '.yaml')} --models {model},naive "
            f"--test-start {test_start}",
            f"#   every model at its best: forecast backtest --from-sweep {folder}"]
    return "\n".join(head) + "\n" + to_yaml(settings)


def importances(study) -> tuple[pd.DataFrame, str] | None:
    """Each varying hyperparameter's importance for the validation loss (summing to 1), and the method."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varying = sorted({name for t in complete for name, dist in t.distributions.items() if not dist.single()})
    n = len(complete)
    if n < 3 or not varying:
        return None
    method, evaluator = (("fanova", FanovaImportanceEvaluator(seed=0)) if n >= FANOVA_MIN else
                         ("ped-anova", PedAnovaImportanceEvaluator(target_quantile=0.34)))
    try:
        values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varying)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None
    frame = pd.DataFrame({"param": list(values), "importance": list(values.values())})
    frame["method"], frame["complete_trials"] = method, n
    return frame, method


def plot_importance(frame: pd.DataFrame, path: Path, title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(frame) + 1.4))
    order = frame.iloc[::-1]
    ax.barh(order["param"], order["importance"], color="tab:blue")
    ax.set_xlabel(f"importance for the validation loss ({frame['method'].iloc[0]}, "
                  f"{frame['complete_trials'].iloc[0]} complete trials)")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_history(trials: pd.DataFrame, path: Path, title: str, loss: str, naive: float | None = 1.0) -> Path:
    """Validation loss per trial (pruned: the last fold's loss), the best so far, and naive's level."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    complete = trials[trials["state"] == "COMPLETE"]
    pruned = trials[trials["state"] == "PRUNED"]
    ax.scatter(complete["trial"], complete["val_loss"], s=18, label="complete")
    if len(pruned):
        ax.scatter(pruned["trial"], pruned["last_fold_loss"], s=18, marker="x", color="0.5",
                   label="pruned (last fold reached)")
    if len(complete):
        best = complete.sort_values("trial")["val_loss"].cummin()
        ax.step(complete.sort_values("trial")["trial"], best, where="post", color="tab:red", label="best so far")
    if naive is not None:
        ax.axhline(naive, color="k", lw=0.6, ls="--", label="naive forecast")
    ax.set_xlabel("trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(f"validation loss\n({loss})", fontsize=9)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------- reading a sweep back


def load_sweep(folder: str | Path) -> tuple[dict[str, Any], dict[str, RunConfig]]:
    """``(sweep.json, {model: best settings})`` of a sweep's folder; a one-line error when it is not one."""
    folder = Path(folder)
    path = folder / SWEEP_FILE
    if not path.is_file():
        raise ForecastError(f"--from-sweep {folder}: no {SWEEP_FILE}; give the --out folder of a `forecast sweep`")
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
        models = list(facts["studies"])
    except (ValueError, KeyError, TypeError):
        raise ForecastError(f"--from-sweep {folder}: its {SWEEP_FILE} is unreadable; run the sweep again") from None
    best = {m: resolve(RunConfig, folder / BEST_DIR / f"{m}.yaml", {}) for m in models
            if (folder / BEST_DIR / f"{m}.yaml").is_file()}
    if not best:
        raise ForecastError(f"--from-sweep {folder}: no {BEST_DIR}/<model>.yaml yet (no complete trial); run the "
                            f"sweep (longer) first")
    return facts, best


def from_sweep(cfg, echo=print) -> tuple[Any, dict]:
    """``(backtest settings, {network: ModelSetup})`` for ``forecast backtest --from-sweep DIR``: the sweep's
    networks, each with its best settings, next to the baselines of --models, from the sweep's test start on.
    Where the backtest trains (accelerator, devices, strategy) stays the backtest's own."""
    from ..models import get_entry

    d, b = cfg.data, cfg.backtest
    facts, best = load_sweep(b.from_sweep)
    wanted = data_facts(d)
    for key in [*wanted, *(k for k in OPTIONAL_FACTS if k in facts and k not in wanted)]:
        value = wanted.get(key, "none")
        if facts.get(key, "none") != value:
            raise ForecastError(f"--from-sweep {b.from_sweep} tuned on {key} {facts.get(key)!r}, this backtest has "
                                f"{value!r}; use the sweep's data settings")
    start = b.test_start or facts["test_start"]
    if start < facts["test_start"]:
        raise ForecastError(f"--test-start {start} is before the sweep's test start {facts['test_start']}: the "
                            f"backtest would score days the sweep tuned on; leave it out or give a later day")
    baselines = [m for m in b.models if get_entry(m, d.target).kind != "network"]
    dropped = [m for m in b.models if m not in baselines and m not in best]
    if dropped:
        echo(f"note: --from-sweep compares the sweep's networks ({', '.join(best)}); {', '.join(dropped)} left out")
    tuned = {c.network.distribution for c in best.values()}
    if tuned != {cfg.network.distribution}:
        family = next(iter(tuned))
        raise ForecastError(f"--from-sweep {b.from_sweep} tuned networks " + (
            f"with --distribution {family}; add it" if family else "that forecast a point; drop --distribution"))
    where = {k: getattr(cfg.train, k) for k in ("accelerator", "devices", "strategy")}
    setups = {m: ModelSetup(c.network, replace(c.train, **where), c.data.lookback) for m, c in best.items()}
    best_of = facts.get("best", {})
    echo(f"from sweep {b.from_sweep} (tuned before {facts['test_start']}): " + "; ".join(
        f"{m} trial {best_of.get(m, {}).get('trial', '?')}: {describe(s)}" for m, s in setups.items()))
    return replace(b, models=list(best) + baselines, test_start=start), setups
