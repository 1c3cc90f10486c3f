"""Issue 41's speed-up row: a study part with two independent trainings, run in one process and
on a two-worker local Ray cluster, in one run.

The study is `convergence` (each model trained, then PGD run on it until its loss settles) with
two models of about the same training cost (cnn and small-cnn by default), on the first
--train-limit MNIST training images. The study runs three times, each into a fresh run folder
(nothing reused): in one process at one thread (each Ray task's thread count, so the records
must equal the Ray run's), in one process at torch's default thread count (every core), and on
a local Ray cluster of --workers workers, started before the clock starts (a cluster outlives a
study).

Run: .venv/bin/python bench/ray_study.py [--train-limit N] [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import machine  # noqa: E402
from saddlepoint.data import load_dataset  # noqa: E402
from saddlepoint.experiments.studies import run_study  # noqa: E402
from saddlepoint.runlog import RunLog  # noqa: E402


def records(folder: Path) -> dict:
    with RunLog(folder) as log:
        return {s.key: {t.name: t.rows for t in s.tables} for s in log.sections()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs=2, default=["cnn", "small-cnn"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import ray

    print(f"# {machine()}", flush=True)
    data = load_dataset(args.dataset, seed=0)
    study = {
        "study": "convergence",
        "dataset": {"name": args.dataset},
        "seed": 0,
        "train_limit": args.train_limit,
        "params": {
            "models": args.models,
            "epochs": args.epochs,
            "images": 100,
            "steps": 20,
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        seconds = {}
        for name, threads in (("one-thread", 1), ("all-threads", None)):
            start = time.perf_counter()
            run_study(study, root / name, progress=False, data=data, threads=threads)
            seconds[name] = time.perf_counter() - start
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter()
        run_study(study, root / "ray", progress=False, data=data, executor="ray")
        seconds["ray"] = time.perf_counter() - start
        ray.shutdown()
        same = "yes" if records(root / "one-thread") == records(root / "ray") else "NO"
    threads = torch.get_num_threads()
    print(
        f"# {args.dataset}, convergence study, models {study['params']['models']}, "
        f"{args.epochs} epochs on {args.train_limit} images"
    )
    print("| run | seconds | Ray's speed-up over it | records equal Ray's |")
    print("|---|---|---|---|")
    for name, label in (
        ("one-thread", "one process, 1 thread (each Ray task's count)"),
        ("all-threads", f"one process, {threads} threads (torch's default)"),
    ):
        ratio = seconds[name] / seconds["ray"]
        equal = same if name == "one-thread" else "-"
        print(f"| {label} | {seconds[name]:.1f} | {ratio:.2f}x | {equal} |")
    print(f"| Ray, {args.workers} workers of 1 thread | {seconds['ray']:.1f} | 1.00x | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
