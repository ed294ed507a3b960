"""A trained network on disk in a form that loads without running anybody's code.

Two files: ``weights.pt``, a plain state dict (tensors only; read back with
``torch.load(weights_only=True)``, which refuses anything else), and ``network.json``,
the settings that rebuild the network from the toolkit's own classes (``NetShape`` per
seed, the lookback, the feature names, the target). The scaler is in the weights, as
buffers of ``ScaledNetwork``. Nothing is unpickled. A user's own cell (``module:Class``)
is rebuilt only when the caller names that same class: a tracking store never decides
what gets imported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from dataclasses import fields

from ..errors import ForecastError, shorten
from . import REGISTRY
from .custom import is_dotted
from .recurrent import POSITION_CHANNELS, MeanNetwork, NetShape, RecurrentNet, ScaledNetwork

FORMAT = 1
WEIGHTS, SPEC = "weights.pt", "network.json"
SPEC_KEYS = ("format", "shape", "members", "lookback", "features", "target")
# What a saved network may ask for: the bounds of forecast.config.settings (NetworkSettings, TrainSettings,
# DataSettings), as plain numbers because models may not import config. Keep the two in step.
MAX_HIDDEN_SIZE = 4096       # NetworkSettings.hidden_size
MAX_LAYERS = 16              # NetworkSettings.num_layers
MAX_MEMBERS = 64             # TrainSettings.seeds: a seed ensemble's networks
MAX_LOOKBACK = 10_000        # DataSettings.lookback (>= 2)
MAX_HORIZON = 1_000          # DataSettings.horizon (>= 1)
FEATURES = ("returns", "range", "volume", "volatility")   # DataSettings.features, and the volatility target's own
# A covariate's two inputs (data/covariates.py): "<ticker or file stem>:<transform>" and "<...>:age".
COVARIATE_FEATURE = re.compile(r"^[\w^.=\- ]{1,100}:(return|diff|level|age)$")
MAX_COVARIATES = 50
TARGETS = ("return", "volatility")
FAMILIES = ("normal", "student-t")


def _members(network: nn.Module) -> list[ScaledNetwork]:
    return list(network.networks) if isinstance(network, MeanNetwork) else [network]


def save_network(network: nn.Module, folder: Path, lookback: int, features: list[str], target: str) -> list[Path]:
    """Write ``weights.pt`` and ``network.json`` for a ``ScaledNetwork`` or a seed ensemble of them."""
    folder.mkdir(parents=True, exist_ok=True)
    members = _members(network)
    spec = {"format": FORMAT, "shape": members[0].net.shape.to_dict(), "members": len(members),
            "lookback": lookback, "features": list(features), "target": target}
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, folder / WEIGHTS)
    (folder / SPEC).write_text(json.dumps(spec, indent=2))
    return [folder / WEIGHTS, folder / SPEC]


def read_spec(folder: Path, name: str | None = None, allowed_cells: tuple[str, ...] = ()) -> dict:
    """``network.json`` of ``folder``, checked as user input is (``check_spec``) before anything is built.
    ``name``: how messages name it (a run, say; default the file's path)."""
    name = name or str(folder / SPEC)
    try:
        spec = json.loads((folder / SPEC).read_text())
    except (OSError, ValueError) as err:
        raise ForecastError(f"{name}: {SPEC} is missing or unreadable ({type(err).__name__})") from None
    check_spec(spec, name, allowed_cells)
    return spec


def _bad(name: str, field: str, value, why: str) -> ForecastError:
    return ForecastError(f"{name}: {SPEC} has {field} {shorten(value)}, which {why}; it was not written by "
                         f"`forecast fit` as it is (a damaged or tampered store?): refit")


def _int_in(name: str, field: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(name, field, value, f"must be a whole number from {low} to {high:,}")
    return value


def check_spec(spec, name: str, allowed_cells: tuple[str, ...] = ()) -> None:
    """A saved network's settings read back from a store, validated like user input: known keys only,
    sizes within what the settings allow, a cell of the registry (or the user's own cell that the caller
    names in ``allowed_cells``). One ``ForecastError`` naming ``name`` and the field, nothing allocated."""
    if not isinstance(spec, dict):
        raise _bad(name, "a top level", type(spec).__name__, "must be an object")
    if spec.get("format") != FORMAT:
        raise ForecastError(f"{name}: {SPEC} has format {shorten(spec.get('format'))}; this toolkit reads "
                            f"format {FORMAT}")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise _bad(name, "the key", unknown[0], f"is not one of {', '.join(SPEC_KEYS)}")
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        raise _bad(name, "no key", missing[0], "it needs")
    shape = spec["shape"]
    if not isinstance(shape, dict):
        raise _bad(name, "shape", type(shape).__name__, "must be an object")
    known = [f.name for f in fields(NetShape)]
    unknown = [k for k in shape if k not in known]
    if unknown:
        raise _bad(name, "the key", f"shape.{unknown[0]}", f"is not one of {', '.join(known)}")
    cell = shape.get("cell")
    cells = [e.cell for e in REGISTRY.values() if e.kind == "network"]
    if not isinstance(cell, str) or (cell not in cells and not is_dotted(cell)):
        raise _bad(name, "shape.cell", cell, f"is not a cell of this toolkit ({', '.join(cells)}) nor module:Class")
    if is_dotted(cell) and cell not in allowed_cells:
        raise ForecastError(f"{name}: this model is your own cell {cell}; name it to allow importing it (--model {cell})")
    for field, low, high in (("input_size", 1, len(FEATURES) + 2 * MAX_COVARIATES), ("horizon", 1, MAX_HORIZON),
                             ("hidden_size", 1, MAX_HIDDEN_SIZE), ("num_layers", 1, MAX_LAYERS)):
        if field not in shape:
            raise _bad(name, "no key", f"shape.{field}", "it needs")
        _int_in(name, f"shape.{field}", shape[field], low, high)
    if shape.get("position", 0) not in (0, POSITION_CHANNELS) or isinstance(shape.get("position"), bool):
        raise _bad(name, "shape.position", shape.get("position"), f"must be 0 or {POSITION_CHANNELS}")
    dropout = shape.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise _bad(name, "shape.dropout", dropout, "must be in [0, 1)")
    if shape.get("distribution") not in (None, *FAMILIES):
        raise _bad(name, "shape.distribution", shape.get("distribution"), f"must be null, {' or '.join(FAMILIES)}")
    _int_in(name, "members", spec["members"], 1, MAX_MEMBERS)
    _int_in(name, "lookback", spec["lookback"], 2, MAX_LOOKBACK)
    features = spec["features"]
    if (not isinstance(features, list) or len(set(map(str, features))) != len(features)
            or not all(isinstance(f, str) and (f in FEATURES or COVARIATE_FEATURE.match(f)) for f in features)):
        raise _bad(name, "features", features, f"must list distinct names of {', '.join(FEATURES)} or covariate "
                                               f"inputs (TICKER:return|diff|level|age)")
    if len(features) != shape["input_size"]:
        raise _bad(name, "features", features, f"must name shape.input_size = {shape['input_size']} inputs")
    if spec["target"] not in TARGETS:
        raise _bad(name, "target", spec["target"], f"must be {' or '.join(TARGETS)}")


def _least_bytes(spec: dict) -> int:
    """A lower bound on the size of the weights that ``spec`` asks for (one gate per layer, float32)."""
    s = spec["shape"]
    h, inputs = s["hidden_size"], s["input_size"] + s.get("position", 0)
    per_member = h * (inputs + h) + (s["num_layers"] - 1) * 2 * h * h + h * s["horizon"]
    return 4 * spec["members"] * per_member


def load_network(folder: Path, allowed_cells: tuple[str, ...] = (), name: str | None = None) -> nn.Module:
    """Rebuild the network of ``network.json`` and load ``weights.pt`` as tensors only. Both are checked
    first: the settings as user input, the weights' size against what the settings ask for (a tampered
    size fails before anything is allocated)."""
    name = name or str(folder)
    spec = read_spec(folder, name, allowed_cells)
    shape = NetShape(**spec["shape"])
    try:
        size = (folder / WEIGHTS).stat().st_size
    except OSError as err:
        raise ForecastError(f"{name}: {WEIGHTS} is missing or unreadable ({type(err).__name__})") from None
    if not is_dotted(shape.cell) and _least_bytes(spec) > size:
        raise ForecastError(f"{name}: {SPEC} asks for at least {_least_bytes(spec):,} bytes of weights (hidden_size "
                            f"{shape.hidden_size}, num_layers {shape.num_layers}, members {spec['members']}) but "
                            f"{WEIGHTS} holds {size:,}: the two do not belong together; refit")
    members = []
    for _ in range(spec["members"]):
        f = shape.input_size
        members.append(ScaledNetwork(RecurrentNet(shape), torch.zeros(f), torch.ones(f), 0.0, 1.0))
    network = members[0] if len(members) == 1 else MeanNetwork(members)
    try:
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except Exception as err:
        raise ForecastError(f"{name}: {WEIGHTS} does not hold this network's weights ({type(err).__name__})") from None
    return network.eval()
