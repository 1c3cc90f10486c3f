"""Shared set-up for benchmarks: the reference MNIST CNN and a timing helper."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from saddlepoint.checkpoint import load_checkpoint, save_checkpoint
from saddlepoint.data import load_dataset
from saddlepoint.train import TrainConfig, train_classifier

REFERENCE = Path("runs/bench/mnist-cnn.safetensors")


def reference_model(path: Path = REFERENCE):
    """DESIGN.md's reference: Conv32-Conv64-FC128 on MNIST, 2 epochs of Adam (~99% test)."""
    data = load_dataset("mnist")
    if not path.is_file():
        result = train_classifier(
            data, "mnist-cnn", TrainConfig(epochs=2, device="cpu"), progress=False
        )
        save_checkpoint(path, result.model, result.metadata)
    model, meta = load_checkpoint(path)
    return model, data, meta


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def floor_loop(model, x, y, passes: int, batch_size: int = 500) -> None:
    """The plain loop every peer uses: ``passes`` forward+backward passes w.r.t. the input,
    batches of ``batch_size``, nothing else."""
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].clone().requires_grad_(True)
            yb = y[start : start + batch_size]
            for _ in range(passes):
                (g,) = torch.autograd.grad(F.cross_entropy(model(xb), yb), xb)
                xb = (xb + 0.0 * g).detach().requires_grad_(True)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


def machine() -> str:
    return f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
