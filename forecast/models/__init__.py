"""The one model registry, plain data: name -> what it is (network or baseline), the targets it
forecasts, and how to build it.

Import-light (no torch here): the CLI lists and validates names without loading the
networks. ``forecast.forecasters.make_forecaster`` turns an entry into something with
``fit``/``predict``. Besides the names below, a network can be your own cell, named by
its import path (``mypackage.cells:MyCell``, see ``models/custom.py``). Extending the
toolkit with a cell of its own is one row here and one branch in ``make_recurrent``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ForecastError
from .custom import is_dotted
from .variants.specs import VARIANT_SPECS


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str                      # "network" or "baseline"
    doc: str
    targets: tuple[str, ...] = ("return", "volatility")
    cell: str | None = None        # networks: recurrent cell name (or a user's module:Class)
    baseline: str | None = None    # baselines: class name in models.baselines
    dist_baseline: str | None = None  # distribution baselines of the return: class in models.distribution_baselines
    scope: str = "local"           # networks of a panel: "local" (one per series) or "global" (one for all series)

    @property
    def custom(self) -> bool:
        """A user's own cell, imported from its dotted path."""
        return self.cell is not None and is_dotted(self.cell)


_ENTRIES = [
    ModelEntry("rnn", "network", "vanilla (Elman) RNN, tanh", cell="rnn"),
    ModelEntry("lstm", "network", "LSTM (torch.nn.LSTM, cuDNN on GPU)", cell="lstm"),
    ModelEntry("gru", "network", "GRU (torch.nn.GRU)", cell="gru"),
    ModelEntry("naive", "baseline", "random walk: zero return / last volatility", baseline="NaiveBaseline"),
    ModelEntry("mean", "baseline", "historical mean of the training targets", baseline="MeanBaseline"),
    ModelEntry("ridge", "baseline", "ridge regression on the same lags", baseline="RidgeBaseline"),
    ModelEntry("ewma", "baseline", "RiskMetrics EWMA volatility, lambda 0.94", ("volatility",), baseline="EwmaBaseline"),
    ModelEntry("garch", "baseline", "GARCH(1,1) volatility (arch package)", ("volatility",), baseline="GarchBaseline"),
    ModelEntry("har", "baseline", "HAR volatility (Corsi 2009), in logs; on the return target a zero-mean "
               "distribution (normal, or --distribution's)",
               ("return", "volatility"), baseline="HarBaseline", dist_baseline="HarDistribution"),
    ModelEntry("riskmetrics", "baseline", "distribution: zero mean, EWMA volatility (lambda 0.94), normal",
               ("return",), dist_baseline="RiskMetrics"),
    ModelEntry("garch-t", "baseline", "distribution: GARCH(1,1) with Student-t innovations (arch package)",
               ("return",), dist_baseline="GarchT"),
    ModelEntry("hist", "baseline", "distribution: historical simulation, the last 250 returns", ("return",),
               dist_baseline="HistoricalSimulation"),
]
# Greff et al.'s LSTM variants: rows of the torch-free table in models/variant_specs.py.
VARIANT_DOCS = {name: spec.doc for name, spec in VARIANT_SPECS.items()}
_ENTRIES[3:3] = [ModelEntry(f"lstm-{v}", "network", f"LSTM variant: {doc}", cell=f"lstm-{v}") for v, doc in VARIANT_DOCS.items()]
# Global networks of a panel: one network of a cell for every series (engine/global_networks.py).
_ENTRIES[3 + len(VARIANT_DOCS):3 + len(VARIANT_DOCS)] = [
    ModelEntry("rnn-global", "network", "panels: one RNN trained on every series (--series-embedding: a learned code "
               "per series); on one series, the rnn", cell="rnn", scope="global"),
    ModelEntry("lstm-global", "network", "panels: one LSTM trained on every series; on one series, the lstm",
               cell="lstm", scope="global"),
    ModelEntry("gru-global", "network", "panels: one GRU trained on every series; on one series, the gru", cell="gru",
               scope="global"),
]
REGISTRY: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}


def get_entry(name: str, target: str | None = None) -> ModelEntry:
    """The registry entry of ``name`` (or a user's ``module:Class``); unknown names list the valid ones."""
    if is_dotted(name):
        return ModelEntry(name.strip(), "network", "your own recurrent cell", cell=name.strip())
    entry = REGISTRY.get(name.strip().lower())
    if entry is None:
        raise ForecastError(f"unknown model {name!r}; valid models: {', '.join(REGISTRY)}, or your own cell as "
                            f"module:Class")
    if target is not None and target not in entry.targets:
        valid = [n for n, e in REGISTRY.items() if target in e.targets]
        raise ForecastError(f"model {name!r} does not forecast the {target} target; for it use: {', '.join(valid)}")
    return entry


def parse_models(names: list[str] | str, target: str | None = None) -> list[ModelEntry]:
    """Model names (a list, or ``"rnn,lstm,naive"``) -> entries, in order, each name validated."""
    if isinstance(names, str):
        names = names.split(",")
    entries = [get_entry(n, target) for n in names if n.strip()]
    if not entries:
        raise ForecastError(f"--models needs at least one name; valid models: {', '.join(REGISTRY)}")
    return entries


def unique_models(names: list[str], echo=print) -> list[str]:
    """Each model once, in order: a repeated name would count its forecast days twice."""
    stripped = [n.strip() for n in names if n.strip()]
    unique = list(dict.fromkeys(stripped))
    repeated = sorted({n for n in unique if stripped.count(n) > 1})
    if repeated:
        echo(f"note: --models lists {', '.join(repeated)} more than once; each model runs once")
    return unique
