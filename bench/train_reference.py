"""Measure issue 2's training targets on this machine and print them as a table.

- `saddlepoint train --dataset mnist --model small-cnn --epochs 2` (seed 002's CNN): >= 98% test
- `saddlepoint train` defaults on digits (model cnn): >= 95% test

Run: .venv/bin/python bench/train_reference.py
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

JOBS = [
    ("mnist", "small-cnn", ["--dataset", "mnist", "--model", "small-cnn", "--epochs", "2"], 0.98),
    ("mnist", "mnist-cnn", ["--dataset", "mnist", "--model", "mnist-cnn", "--epochs", "2"], 0.98),
    ("digits", "cnn", [], 0.95),
]


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for dataset, model, argv, target in JOBS:
            out = Path(folder) / f"{dataset}-{model}.safetensors"
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "saddlepoint.cli.main",
                    "--quiet",
                    "train",
                    *argv,
                    "--out",
                    str(out),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            seconds = time.perf_counter() - start
            meta = json.loads(out.with_suffix(".json").read_text())
            accuracy = meta["metrics"]["test"]["accuracy"]
            rows.append((dataset, model, accuracy, target, seconds))
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print("| dataset | model | test accuracy | target | wall time (s) |")
    print("|---|---|---|---|---|")
    for dataset, model, accuracy, target, seconds in rows:
        mark = "ok" if accuracy >= target else "MISSED"
        print(f"| {dataset} | {model} | {accuracy:.4f} ({mark}) | {target:.2f} | {seconds:.0f} |")
    return 0 if all(r[2] >= r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
