"""Training throughput of each LSTM variant against torch.nn.LSTM of the same size (CPU or GPU).

Same windows (^GSPC bundled data, lookback 30), batch 64, hidden 64, a plain training
loop for every model so that only the cell differs. Prints windows/s and the ratio
to torch.nn.LSTM (target on CPU: within 3x, i.e. ratio >= 0.33).

    python benchmarks/variants.py [--steps 150] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from forecast.models import VARIANT_DOCS
from forecast.models.recurrent import make_recurrent


def throughput(cell: str, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    rnn = make_recurrent(cell, x.shape[-1], 64, 1, 0.0).to(x.device)
    head = nn.Linear(64, 1).to(x.device)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def step(i: int) -> None:
        lo = (i * batch) % (len(x) - batch)
        opt.zero_grad()
        out, _ = rnn(x[lo:lo + batch])
        nn.functional.mse_loss(head(out[:, -1]), y[lo:lo + batch]).backward()
        opt.step()

    for i in range(10):  # warm-up: TorchScript profiles and optimises the loop on its first calls
        step(i)
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    if x.is_cuda:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 30, 1, generator=gen).to(device)
    y = torch.randn(4096, 1, generator=gen).to(device)
    reference = throughput("lstm", x, y, args.steps, args.batch_size)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch_size}, "
          f"lookback 30, hidden 64")
    print(f"{'torch.nn.LSTM':<14} {reference:9.0f} windows/s  ratio 1.00")
    for variant in VARIANT_DOCS:
        rate = throughput(f"lstm-{variant}", x, y, args.steps, args.batch_size)
        print(f"{'lstm-' + variant:<14} {rate:9.0f} windows/s  ratio {rate / reference:.2f}  ({VARIANT_DOCS[variant]})")


if __name__ == "__main__":
    main()
