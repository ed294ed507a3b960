"""``forecast`` command line: parse, call the library, print.

Heavy libraries (torch, Lightning, MLflow) are imported inside the commands that
need them, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from dataclasses import MISSING

from . import config as C
from .errors import ForecastError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the nearest flag; no abbreviated flags
    (``--model`` must not silently mean ``--models``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        if "unrecognized arguments" in message:
            flags = [s for a in self._actions for s in a.option_strings]
            wrong = message.split(":", 1)[1].split()
            hints = [difflib.get_close_matches(w.split("=")[0], flags, n=1) for w in wrong if w.startswith("-")]
            hint = next((f" (did you mean {h[0]}?)" for h in hints if h), "")
            message += hint
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _add_fields(parser: argparse.ArgumentParser, cls: type, title: str, skip: tuple[str, ...] = (),
                defaults: object | None = None) -> None:
    group = parser.add_argument_group(title)
    for f in C.scalar_fields(cls):
        if f.name in skip:
            continue
        tp = C.field_type(cls, f.name)
        default = getattr(defaults, f.name) if defaults is not None else (f.default if f.default is not MISSING else None)
        help_text = f.metadata.get("help", "") + ("" if default in (None, "") else f" (default: {default})")
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        if tp is bool:
            group.add_argument(C.flag_name(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            group.add_argument(C.flag_name(f.name), type=tp, choices=f.metadata.get("choices"),
                               metavar=tp.__name__.upper(), **kwargs)


def _add_config_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Every field of a (nested) config class as a flag, grouped by section."""
    parser.add_argument("--config", metavar="YAML", help="YAML file of settings (see configs/); flags override it")
    for f in C.section_fields(cls):
        base = C.section_defaults(cls, f.name)
        _add_fields(parser, type(base), f"{f.name} settings", skip, base)
    _add_fields(parser, cls, "output", skip)


def _resolve(cls: type, args: argparse.Namespace):
    values = vars(args).copy()
    values.pop("command", None)
    values.pop("handler", None)
    values.pop("what", None)
    path = values.pop("config", None)
    return C.resolve(cls, path, values)


# ---------------------------------------------------------------- commands

def cmd_fit(args) -> int:
    from .pipeline import run_fit

    run_fit(_resolve(C.FitConfig, args))
    return 0


def cmd_predict(args) -> int:
    from .pipeline import run_predict

    data = C.DataConfig(ticker=args.ticker, csv=args.csv, offline=args.offline, cache_dir=args.cache_dir)
    run_predict(data, args.run_id)
    return 0


def cmd_backtest(args) -> int:
    from .pipeline_backtest import run_backtest

    run_backtest(_resolve(C.BacktestConfig, args))
    return 0


def cmd_compare(args) -> int:
    from .pipeline_backtest import run_compare

    run_compare(ticker=args.ticker, experiment=args.experiment, metric=args.metric)
    return 0


def cmd_diagnose(args) -> int:
    from .laboratory import gradient_flow
    from .laboratory_config import DiagnoseConfig

    gradient_flow(_resolve(DiagnoseConfig, args))
    return 0


def cmd_bench(args) -> int:
    from .laboratory import known_optimum_bench
    from .laboratory_config import BenchConfig

    known_optimum_bench(_resolve(BenchConfig, args))
    return 0


def cmd_models(args) -> int:
    from .models import REGISTRY

    width = max(len(n) for n in REGISTRY)
    for name, e in REGISTRY.items():
        print(f"{name.ljust(width)}  {e.kind:<8}  {e.doc}  [targets: {', '.join(e.targets)}]")
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="forecast", description=(
        "Forecast stock index series (S&P 500 by default) with recurrent networks (RNN, LSTM, GRU), "
        "backtest them walk-forward against honest baselines, and track every run in MLflow."),
        epilog="Data: downloads from Yahoo, else the local cache, else the bundled ^GSPC 1999-2018 history. "
               "Runs go to ./mlflow.db and ./mlruns (or $MLFLOW_TRACKING_URI): `mlflow ui --backend-store-uri sqlite:///mlflow.db`.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    fit = sub.add_parser("fit", help="train one model, score it on the test period next to the naive forecast",
                         description="Train a model on the train part, early-stop on validation, report test metrics "
                                     "next to the naive (zero return) forecast, and log the run to MLflow.")
    _add_config_flags(fit, C.FitConfig)
    fit.set_defaults(handler=cmd_fit)

    predict = sub.add_parser("predict", help="forecast the next trading day with a logged model",
                             description="Load a model logged by `forecast fit` (default: the newest finished run for "
                                         "the ticker), take the latest data and forecast the next trading day.")
    predict.add_argument("--ticker", default="^GSPC", help="ticker whose latest fit run to use (default: ^GSPC)")
    predict.add_argument("--csv", help="take the latest data from this CSV instead of downloading")
    predict.add_argument("--run-id", help="MLflow run id of the model (default: the newest fit of the ticker)")
    predict.add_argument("--offline", action="store_true", help="do not try to download; use cache or bundled data")
    predict.add_argument("--cache-dir", help="download cache folder")
    predict.set_defaults(handler=cmd_predict)

    backtest = sub.add_parser("backtest", help="walk-forward backtest of several models, with report and MLflow runs",
                              description="Refit every model on data strictly before each fold, forecast the fold "
                                          "one step ahead, and compare all models with the naive forecast.")
    _add_config_flags(backtest, C.BacktestConfig, skip=("model",))  # --models picks them
    backtest.set_defaults(handler=cmd_backtest)

    compare = sub.add_parser("compare", help="leaderboard across backtests stored in MLflow",
                             description="Read finished backtests from MLflow and rank every model run by a metric.")
    compare.add_argument("--ticker", help="only runs of this ticker (or data source)")
    compare.add_argument("--experiment", help="only this MLflow experiment")
    compare.add_argument("--metric", default="r2_oos", help="metric to rank by (default: r2_oos, higher is better)")
    compare.set_defaults(handler=cmd_compare)

    from .laboratory_config import BenchConfig, DiagnoseConfig

    diagnose = sub.add_parser("diagnose", help="laboratory diagnostics of the recurrent networks",
                              description="Diagnostics that show how recurrent networks learn.")
    what = diagnose.add_subparsers(dest="what", metavar="WHAT", parser_class=Parser, required=True)
    gradients = what.add_parser("gradients", help="gradient of the last output w.r.t. inputs k steps back",
                                description="For a batch of windows, the norm of the gradient of the last output "
                                            "with respect to the input k steps back, at initialisation and after "
                                            "training: the vanishing gradient of plain RNNs, made visible.")
    _add_config_flags(gradients, DiagnoseConfig, skip=("model",))
    gradients.set_defaults(handler=cmd_diagnose)

    bench = sub.add_parser("bench", help="models on simulated series with a known best possible error",
                           description="Fit models on simulated series (rw, ar2, longmem) and print RMSE divided by "
                                       "the noise's standard deviation, the best any forecast can do.")
    _add_config_flags(bench, BenchConfig, skip=("model",))
    bench.set_defaults(handler=cmd_bench)

    models = sub.add_parser("models", help="list the models in the registry")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # let the subcommand's parser report it, so the hint names its own flags
        chosen = parser._subparsers._group_actions[0].choices.get(getattr(args, "command", None), parser)
        chosen.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except ForecastError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
