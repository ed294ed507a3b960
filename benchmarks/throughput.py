"""Training throughput of the toolkit against a plain PyTorch loop, and the default fit's wall time.

Same model (1-layer LSTM, 64 units, linear head), same windows (^GSPC bundled data,
lookback 30, scaled), same batch size, same epochs, validation after every epoch in
both. Prints windows per second for each and the ratio (target: >= 0.9).

    python benchmarks/throughput.py [--epochs 10] [--accelerator cpu|gpu] [--skip-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

from forecast.config.settings import NetworkSettings, TrainSettings
from forecast.data.datamodule import WindowDataModule
from forecast.data.ingest import load_ticker
from forecast.data.windows import build_series, time_split
from forecast.engine.forecasters import FitContext, make_forecaster
from forecast.models import get_entry


def plain_loop(dm: WindowDataModule, epochs: int, batch: int, device: str, seed: int) -> float:
    """The reference: a hand-written loop over tensors already in memory."""
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.LSTM(1, 64, batch_first=True), nn.Linear(64, 1)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    net = Net().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = dm.train_x.to(device), dm.train_y.to(device)
    vx, vy = dm.val_x.to(device), dm.val_y.to(device)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen).to(device)
        xs, ys = x[order], y[order]
        for i in range(0, len(xs), batch):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(xs[i:i + batch]), ys[i:i + batch])
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        net.eval()
        with torch.no_grad():
            float(nn.functional.mse_loss(net(vx), vy))
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def toolkit(series, split, epochs: int, batch: int, accelerator: str, seed: int) -> float:
    train = TrainSettings(max_epochs=epochs, batch_size=batch, patience=epochs + 1, accelerator=accelerator, seed=seed)
    model = make_forecaster(get_entry("lstm"), NetworkSettings(hidden_size=64), train,
                            FitContext(series.feature_names, "return", 30, 1), progress=False)
    start = time.perf_counter()
    model.fit(series, split)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each side")
    parser.add_argument("--skip-cli", action="store_true", help="skip timing the default `forecast fit`")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object {"plain": ..., "toolkit": ..., "ratio": ...} (windows/s)')
    args = parser.parse_args()

    series = build_series(load_ticker("^GSPC", offline=True), "return", ["returns"])
    split = time_split(len(series), 30, 1, 0.15, 0.15)
    dm = WindowDataModule(series, 30, 1, args.batch_size, split=split)
    dm.setup("fit")
    device = "cuda" if args.accelerator == "gpu" else "cpu"
    n = len(split.train) * args.epochs
    toolkit(series, split, 1, args.batch_size, args.accelerator, 0)  # warm-up (first Trainer, kernels)
    plain_times, our_times = [], []
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits both sides
        plain_times.append(plain_loop(dm, args.epochs, args.batch_size, device, 0))
        our_times.append(toolkit(series, split, args.epochs, args.batch_size, args.accelerator, 0))
    plain, ours = min(plain_times), min(our_times)
    if args.json:
        result = {"plain": round(n / plain, 1), "toolkit": round(n / ours, 1), "ratio": round(plain / ours, 3),
                  "device": device, "threads": torch.get_num_threads()}
        if not args.skip_cli:
            result["fit_wall_s"] = round(time_default_fit(args.accelerator)[0], 1)
        print(json.dumps(result))
        return
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"windows: {len(split.train)} train x {args.epochs} epochs, batch {args.batch_size}, LSTM 64 units")
    print(f"plain PyTorch loop : {n / plain:8.0f} windows/s ({plain:.2f} s)")
    print(f"forecast (Lightning): {n / ours:8.0f} windows/s ({ours:.2f} s)")
    print(f"ratio toolkit/plain: {plain / ours:.2f}  (target >= 0.90)")

    if not args.skip_cli:
        wall, status = time_default_fit(args.accelerator)
        print(f"`forecast fit --ticker ^GSPC` wall time, imports and MLflow included: {wall:.1f} s ({status}; target < 30 s)")


def time_default_fit(accelerator: str) -> tuple[float, str]:
    """Wall time of the default `forecast fit --ticker ^GSPC` in a fresh folder and interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FORECAST_CACHE_DIR": os.path.join(tmp, "cache")}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "forecast", "fit", "--ticker", "^GSPC", "--out", "out",
                               "--accelerator", accelerator], cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    return wall, "ok" if done.returncode == 0 else f"failed: {done.stderr.strip()[-300:]}"


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
