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
from pathlib import Path

import torch
from torch import nn

from ..errors import ForecastError
from .custom import is_dotted
from .recurrent import MeanNetwork, NetShape, RecurrentNet, ScaledNetwork

FORMAT = 1
WEIGHTS, SPEC = "weights.pt", "network.json"


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


def read_spec(folder: Path) -> dict:
    try:
        spec = json.loads((folder / SPEC).read_text())
    except (OSError, ValueError) as err:
        raise ForecastError(f"{folder / SPEC} is missing or unreadable ({type(err).__name__})") from None
    if spec.get("format") != FORMAT:
        raise ForecastError(f"{folder / SPEC} has format {spec.get('format')!r}; this toolkit reads format {FORMAT}")
    return spec


def load_network(folder: Path, allowed_cells: tuple[str, ...] = ()) -> nn.Module:
    """Rebuild the network of ``network.json`` and load ``weights.pt`` as tensors only."""
    spec = read_spec(folder)
    shape = NetShape(**spec["shape"])
    if is_dotted(shape.cell) and shape.cell not in allowed_cells:
        raise ForecastError(f"this model is your own cell {shape.cell}; name it to allow importing it "
                            f"(--model {shape.cell})")
    members = []
    for _ in range(int(spec["members"])):
        f = shape.input_size
        members.append(ScaledNetwork(RecurrentNet(shape), torch.zeros(f), torch.ones(f), 0.0, 1.0))
    network = members[0] if len(members) == 1 else MeanNetwork(members)
    try:
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except Exception as err:
        raise ForecastError(f"{folder / WEIGHTS} does not hold this network's weights ({type(err).__name__})") from None
    return network.eval()
