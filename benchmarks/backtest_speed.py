"""Wall time and peak memory of the reference backtest, with 1 and 2 jobs, cold and warm starts.

    forecast backtest --ticker ^GSPC --models rnn,lstm,gru,naive,ridge --test-start 2015-01-01
    (bundled data, yearly refits: 4 folds, 64-unit networks, early stopping; MLflow and report included)

    python benchmarks/backtest_speed.py [--variants "1,cold" "2,cold" "1,warm" "2,warm"] [--extra "--no-position"]
                                        [--seeds 42 0,1,2] [--boards]

``--extra`` adds flags to every variant: ``--extra "--no-position"`` measures the recipe before the
position inputs, in the same run (``--variants "2,cold" --extra ""`` and ``--extra "--no-position"``
one after the other, so both see the same machine load). ``--seeds 42 0,1,2``: each variant with one
seed and with a three-seed ensemble. ``--boards`` prints every run's leaderboard (``--extra
"--population 1" ""``: one network at a time against populations).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

COMMAND = ["backtest", "--ticker", "^GSPC", "--models", "rnn,lstm,gru,naive,ridge", "--test-start", "2015-01-01"]
# Runs the command as a child and prints the peak resident memory of the largest process it waited for.
PROBE = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def run(jobs: int, warm: bool, extra: list[str] = ()) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FORECAST_CACHE_DIR": os.path.join(tmp, "cache")}
        args = [sys.executable, "-c", PROBE, sys.executable, "-m", "forecast", *COMMAND, "--jobs", str(jobs),
                "--out", "out"] + (["--warm-start"] if warm else []) + list(extra)
        start = time.perf_counter()
        done = subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"backtest failed: {done.stderr.strip()[-500:]}")
    peak_mib = int(done.stderr.strip().splitlines()[-1]) / 1024
    board = [line for line in done.stdout.splitlines() if line.split(" ")[0] in ("rnn", "lstm", "gru", "ridge", "naive")]
    return wall, peak_mib, "\n".join(board)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["1,cold", "2,cold", "1,warm", "2,warm"])
    parser.add_argument("--extra", nargs="+", default=[""], help="flag sets to add, each measured in turn")
    parser.add_argument("--seeds", nargs="+", default=[""], help="seed lists, each measured in turn (42, 0,1,2)")
    parser.add_argument("--boards", action="store_true", help="print every run's leaderboard")
    args = parser.parse_args()
    print(f"forecast {' '.join(COMMAND)}  (cores: {os.cpu_count()})")
    for variant in args.variants:
        jobs, start = variant.split(",")
        for seeds in args.seeds:
            for extra in args.extra:
                flags = extra.split() + (["--seeds", seeds] if seeds else [])
                wall, peak, board = run(int(jobs), start == "warm", flags)
                print(f"--jobs {jobs} {'--warm-start' if start == 'warm' else '            '} {' '.join(flags):<30}: "
                      f"{wall:6.1f} s wall, peak memory {peak:5.0f} MiB (largest process)", flush=True)
                if args.boards:
                    print(board, flush=True)
    if not args.boards:
        print("last leaderboard:\n" + board)


if __name__ == "__main__":
    main()
