"""``forecast`` command line: one table from command name to settings and entry function.

Every command is a typed entry function in ``forecast/commands/`` (callable from a
notebook too) that takes one settings object from ``config.py``. The parser is built
from those settings, so choices and defaults are declared once. Heavy libraries
(torch, Lightning, MLflow) are imported by the commands, so ``--help`` and argument
errors answer at once. Logging and warning settings are made here, in ``main``, never
on import.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import signal
import sys
from dataclasses import MISSING, dataclass

from .config import settings as C
from .config.sweep_settings import SweepConfig
from .console import configure_output
from .errors import ForecastError, Interrupted
from .config.yaml_io import field_type, flag_name, resolve, scalar_fields, section_defaults, section_fields, to_yaml


@dataclass(frozen=True)
class Command:
    settings: type | None        # the settings class the entry function takes
    entry: str                   # "module:function" under forecast.commands
    help: str
    description: str
    print_config: bool = False   # offers --print-config


COMMANDS: dict[str, Command] = {
    "fit": Command(C.FitConfig, "fit:fit", "train one model, score it on the test period next to the naive forecast",
                   "Train a model on the train part, early-stop on validation, report test metrics next to the naive "
                   "(zero return) forecast, and log the run to MLflow.", print_config=True),
    "predict": Command(C.PredictConfig, "predict:predict", "forecast the next trading day with a logged model",
                       "Load a model logged by `forecast fit` (default: the newest finished run for the ticker), take "
                       "the latest data and forecast the next NYSE trading day."),
    "backtest": Command(C.BacktestConfig, "backtest:backtest",
                        "walk-forward backtest of several models, with report and MLflow runs",
                        "Refit every model on data strictly before each fold, forecast the fold one step ahead, and "
                        "judge all models against the naive forecast (SPA, model confidence set, Diebold-Mariano).",
                        print_config=True),
    "compare": Command(C.CompareConfig, "compare:compare", "leaderboard across backtests stored in MLflow",
                       "Read finished backtests from MLflow and rank every model run by a metric."),
    "bench": Command(C.BenchConfig, "lab:bench", "models on simulated series with a known best possible error",
                     "Fit models on simulated series (rw, ar2, longmem at several lags, tar) with the same training "
                     "recipe as every other command, and print RMSE divided by the noise's standard deviation, the "
                     "best any forecast can do. --family tune|report|all judges the recipe on 36 simulated processes "
                     "(lags 2-50, AR(2), threshold AR, random walks), split once into a part the recipe may be tuned "
                     "on and a part only reported, every (process, model, seed) counted.", print_config=True),
    "diagnose gradients": Command(C.DiagnoseConfig, "lab:gradients",
                                  "gradient of the last output w.r.t. inputs k steps back",
                                  "For a batch of windows, the norm of the gradient of the last output with respect "
                                  "to the input k steps back, at initialisation and after training: the vanishing "
                                  "gradient of plain RNNs, made visible.", print_config=True),
    "sweep": Command(SweepConfig, "sweep:sweep", "tune each network by walk-forward validation, studies shared by many machines",
                     "Tune every network with Optuna on walk-forward folds strictly before --test-start, one study per "
                     "model (SQLite in --out, or a PostgreSQL URL shared by many machines), each trial a nested MLflow "
                     "run; write the best settings per model (best/<model>.yaml, for fit, backtest and "
                     "`backtest --from-sweep`), hyperparameter importances and figures. Running it again resumes it.",
                     print_config=True),
    "models": Command(None, "", "list the models in the registry", "List the model registry: networks and baselines."),
}


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


def _add_fields(parser: argparse.ArgumentParser, cls: type, title: str, defaults: object | None = None) -> None:
    group = parser.add_argument_group(title)
    for f in scalar_fields(cls):
        ft = field_type(cls, f.name)
        default = getattr(defaults, f.name) if defaults is not None else (
            f.default if f.default is not MISSING else f.default_factory() if f.default_factory is not MISSING else None)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        allowed = ft.describe() if ft.choices or ft.is_list else ""
        help_text = f.metadata.get("help", "") + (f"; {allowed}" if allowed else "") + (
            "" if shown in (None, "") else f" (default: {shown})")
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        if ft.scalar is bool and not ft.is_list:
            group.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        elif ft.is_list or ft.choices:
            group.add_argument(flag_name(f.name), type=str, metavar=ft.metavar, **kwargs)
        else:
            group.add_argument(flag_name(f.name), type=ft.scalar, metavar=ft.metavar, **kwargs)


def _add_settings(parser: argparse.ArgumentParser, command: Command) -> None:
    """Every field of a (nested) settings class as a flag, grouped by section."""
    parser.add_argument("--config", metavar="YAML", help="YAML file of settings (see configs/); flags override it")
    if command.print_config:
        parser.add_argument("--print-config", action="store_true",
                            help="print the resolved settings as YAML (what --config reads) and exit")
    cls = command.settings
    _add_fields(parser, cls, "run settings" if section_fields(cls) else "settings")
    for f in section_fields(cls):
        if f.metadata.get("yaml_only"):      # e.g. a sweep's per-model search spaces: their keys repeat the space's
            continue
        base = section_defaults(cls, f.name)
        _add_fields(parser, type(base), f"{f.name} settings", base)


def build_parser() -> Parser:
    parser = Parser(prog="forecast", description=(
        "Forecast stock index series (S&P 500 by default) with recurrent networks (RNN, LSTM, GRU, Greff's LSTM "
        "variants), backtest them walk-forward against honest baselines, and track every run in MLflow."),
        epilog="Data: downloads from Yahoo, else the local cache, else the bundled ^GSPC 1999-2018 history. "
               "Runs go to ./mlflow.db and ./mlruns (or $MLFLOW_TRACKING_URI): `mlflow ui --backend-store-uri sqlite:///mlflow.db`.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, command in COMMANDS.items():
        head, _, tail = name.partition(" ")
        where = sub
        if tail:  # a command with a sub-command, e.g. `diagnose gradients`
            if head not in groups:
                group = sub.add_parser(head, help="laboratory diagnostics of the recurrent networks",
                                       description="Diagnostics that show how recurrent networks learn.")
                groups[head] = group.add_subparsers(dest="what", metavar="WHAT", parser_class=Parser, required=True)
            where = groups[head]
        child = where.add_parser(tail or head, help=command.help, description=command.description)
        if command.settings is not None:
            _add_settings(child, command)
        child.set_defaults(command_name=name, command_parser=child)
    return parser


def list_models(echo=print) -> None:
    from .models import REGISTRY

    width = max(len(n) for n in REGISTRY)
    for name, e in REGISTRY.items():
        echo(f"{name.ljust(width)}  {e.kind:<8}  {e.doc}  [targets: {', '.join(e.targets)}]")


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM raise ``Interrupted`` at once; a second one leaves at once, workers included."""
    def handler(signum, frame):
        if getattr(handler, "fired", False):
            from .engine.workers import kill_workers

            kill_workers()
            os._exit(128 + signum)
        handler.fired = True
        raise Interrupted(signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    name = getattr(args, "command_name", None)
    if extra:  # let the subcommand's parser report it, so the hint names its own flags
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if name is None:
        parser.print_help()
        return 0
    command = COMMANDS[name]
    configure_output()
    stop_on_signals()
    try:
        if command.settings is None:
            list_models()
            return 0
        values = {k: v for k, v in vars(args).items() if k not in ("command", "command_name", "command_parser", "what",
                                                                     "config", "print_config")}
        settings = resolve(command.settings, getattr(args, "config", None), values)
        if getattr(args, "print_config", False):
            print(to_yaml(settings), end="")
            return 0
        module, function = command.entry.split(":")
        getattr(importlib.import_module(f"forecast.commands.{module}"), function)(settings)
        return 0
    except ForecastError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as stop:
        code = stop.exit_code if isinstance(stop, Interrupted) else 130
        what = "terminated (SIGTERM)" if code == 143 else "interrupted"
        print(f"{what}: stopped; a run it had started is marked KILLED, and an output folder without "
              f"manifest.json is incomplete", file=sys.stderr)
        return code


def entry() -> None:
    """The ``forecast`` executable: ``main``, then leave. After Ctrl-C or SIGTERM it leaves at once
    (``os._exit``), so that a second Ctrl-C during the interpreter's own shutdown cannot turn the
    exit status into a death by signal, and nothing waits on a thread of a killed worker pool."""
    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
