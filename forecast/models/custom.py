"""Your own recurrent cell, named by its import path: ``--model mypackage.cells:MyCell``.

The toolkit constructs it as ``MyCell(input_size, hidden_size, num_layers, dropout)``;
its ``forward`` takes batch-first ``x [B, L, F]`` and returns ``(out [B, L, hidden_size],
state)``, as ``torch.nn.LSTM(batch_first=True)`` does. The current folder is importable
(as for ``python -m``). A user's module is imported only when the user names it: on the
command line, or in code; never because a tracking store says so.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from ..errors import ForecastError

DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def is_dotted(name: str) -> bool:
    """``module.path:ClassName``: the form of a user's cell (registry names have no colon)."""
    return bool(DOTTED.match(name.strip()))


def load_cell(path: str) -> type:
    """Import ``module:Class`` and check it is a ``torch.nn.Module`` class; a one-line error otherwise."""
    import torch

    module_name, _, class_name = path.strip().partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ForecastError(f"--model {path}: cannot import {module_name!r} ({err}); run from the folder that holds "
                            f"it, or install it") from None
    except Exception as err:
        raise ForecastError(f"--model {path}: importing {module_name!r} failed: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ForecastError(f"--model {path}: module {module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ForecastError(f"--model {path}: {class_name!r} is not a torch.nn.Module class")
    return cls


def build_cell(path: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, lookback: int = 5):
    """The user's cell, constructed and checked on a tiny batch: ``(out [B, L, D], state)`` or a one-line error."""
    import torch

    cls = load_cell(path)
    try:
        cell = cls(input_size, hidden_size, num_layers, dropout)
    except Exception as err:
        raise ForecastError(f"--model {path}: {cls.__name__}(input_size, hidden_size, num_layers, dropout) failed: "
                            f"{type(err).__name__}: {err}") from None
    x = torch.zeros(2, max(lookback, 2), input_size)
    try:
        with torch.no_grad():
            result = cell(x)
    except Exception as err:
        raise ForecastError(f"--model {path}: its forward failed on x [2, {x.size(1)}, {input_size}]: "
                            f"{type(err).__name__}: {err}") from None
    shape = (2, x.size(1), hidden_size)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.Tensor)
            and tuple(result[0].shape) == shape):
        got = tuple(result[0].shape) if isinstance(result, tuple) and isinstance(result[0], torch.Tensor) else type(result).__name__
        raise ForecastError(f"--model {path}: forward must return (out [B, L, hidden_size], state) like "
                            f"torch.nn.LSTM(batch_first=True); expected out of shape {list(shape)}, got {got}")
    return cell


def check_custom_cells(entries, n_features: int, network, lookback: int) -> None:
    """Build each user cell of ``entries`` once on a tiny batch (``network``: the shared network settings):
    a broken one is a one-line error before any run opens."""
    for entry in entries:
        if entry.custom:
            build_cell(entry.cell, n_features, network.hidden_size, network.num_layers, network.dropout, lookback)
