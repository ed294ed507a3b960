"""Training throughput of each LSTM variant against torch.nn.LSTM of the same size (CPU or GPU).

Random windows (lookback 30, one feature), batch 64, hidden 64, a plain training loop
for every model so that only the cell differs. The models take turns: each round times
``--steps`` training steps of every model, and each model keeps its best round, so that
load from other processes hits the reference and the variants alike. Prints windows/s
and the ratio to torch.nn.LSTM (targets on CPU: >= 0.5, lstm-fgr >= 0.35), or with
``--json`` one object per line: ``{"model", "windows_per_s", "ratio"}``.

    python benchmarks/variants.py [--steps 10] [--repeats 15] [--device cpu|cuda] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from forecast.models import VARIANT_DOCS
from forecast.models.recurrent import make_recurrent

HIDDEN, LOOKBACK = 64, 30


class Trainer:
    """One model, its head and its optimiser; ``run(steps)`` times that many training steps."""

    def __init__(self, cell: str, x: torch.Tensor, y: torch.Tensor, batch: int):
        torch.manual_seed(0)
        self.rnn = make_recurrent(cell, x.shape[-1], HIDDEN, 1, 0.0).to(x.device)
        self.head = nn.Linear(HIDDEN, 1).to(x.device)
        self.opt = torch.optim.Adam(list(self.rnn.parameters()) + list(self.head.parameters()), lr=1e-3)
        self.x, self.y, self.batch, self.i = x, y, batch, 0
        self.run(10)  # warm-up: allocator, first-call dispatch

    def step(self) -> None:
        lo = (self.i * self.batch) % (len(self.x) - self.batch)
        self.i += 1
        self.opt.zero_grad()
        out, _ = self.rnn(self.x[lo:lo + self.batch])              # [B, L, D]
        nn.functional.mse_loss(self.head(out[:, -1]), self.y[lo:lo + self.batch]).backward()
        self.opt.step()

    def run(self, steps: int) -> float:
        """Windows per second over ``steps`` steps."""
        cuda = self.x.is_cuda
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        if cuda:
            torch.cuda.synchronize()
        return steps * self.batch / (time.perf_counter() - start)


def measure(cells: list[str], x: torch.Tensor, y: torch.Tensor, steps: int, repeats: int, batch: int) -> dict:
    """Best windows/s of each cell over ``repeats`` interleaved rounds (the order rotates each round)."""
    trainers = {cell: Trainer(cell, x, y, batch) for cell in cells}
    best = dict.fromkeys(cells, 0.0)
    for r in range(repeats):
        order = cells[r % len(cells):] + cells[:r % len(cells)]
        for cell in order:
            best[cell] = max(best[cell], trainers[cell].run(steps))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="training steps per model and round")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds; each model keeps its best")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="", help="comma-separated lstm-* names (default: every variant)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, LOOKBACK, 1, generator=gen).to(device)
    y = torch.randn(4096, 1, generator=gen).to(device)
    variants = [m.strip() for m in args.models.split(",") if m.strip()] or [f"lstm-{v}" for v in VARIANT_DOCS]
    best = measure(["lstm"] + variants, x, y, args.steps, args.repeats, args.batch_size)
    reference = best["lstm"]
    if args.json:
        for cell, rate in best.items():
            print(json.dumps({"model": cell, "windows_per_s": round(rate, 1), "ratio": round(rate / reference, 3)}))
        return
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch_size}, "
          f"lookback {LOOKBACK}, hidden {HIDDEN}; best of {args.repeats} interleaved rounds of {args.steps} steps")
    print(f"{'torch.nn.LSTM':<14} {reference:9.0f} windows/s  ratio 1.00")
    for cell in variants:
        rate = best[cell]
        print(f"{cell:<14} {rate:9.0f} windows/s  ratio {rate / reference:.2f}  ({VARIANT_DOCS[cell[len('lstm-'):]]})")


if __name__ == "__main__":
    main()
