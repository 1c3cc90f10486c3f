"""The training loop: seeded, with per-epoch history, early stopping and a hook for defenses.

Defenses plug in through :class:`saddlepoint.train.defense.TrainingDefense` (or a plain
``transform(model, images, labels) -> (images, labels)`` function): they may change each batch,
the training loss, and prepare at the start of each epoch.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from saddlepoint.attacks.runtime import reproducible_plans
from saddlepoint.data.base import ImageData
from saddlepoint.evaluate.metrics import summarize_logits
from saddlepoint.fileio import write_bytes
from saddlepoint.modes import predict_logits
from saddlepoint.seeding import resolve_device, seeded
from saddlepoint.train.config import TrainConfig
from saddlepoint.train.defense import BatchTransform, TrainingDefense, as_defense
from saddlepoint.train.history import EpochRecord, History

log = logging.getLogger(__name__)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) with L2 weight decay on all parameters or on the kernels
    only (parameters of two or more dimensions), as configured."""
    params: Any = [p for p in model.parameters() if p.requires_grad]
    if config.decay_on == "kernels":
        params = [
            {"params": [p for p in params if p.ndim >= 2]},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-batch learning-rate schedule, or None for a constant rate."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total, pct_start=0.3, cycle_momentum=False
        )
    return None


def _run_epoch(
    model: nn.Module,
    data: ImageData,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    generator: torch.Generator,
    device: torch.device,
    defense: TrainingDefense,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    bar: tqdm,
) -> tuple[float, float, float]:
    """One pass over the training split; returns running (loss, accuracy, confidence)."""
    total_loss = total_correct = total_confidence = 0.0
    seen = 0
    batches = data.train.batches(
        config.batch_size, shuffle=True, generator=generator, with_index=True
    )
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
    channels_last = config.memory_format == "channels_last"
    for images, labels, index in batches:
        images, labels = images.to(device), labels.to(device)
        images, labels = defense.batch(model, images, labels, index)
        if channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        model.train()
        if low is None:
            loss, logits = defense.loss(model, images, labels)
        else:
            with torch.autocast(device.type, dtype=low):
                loss, logits = defense.loss(model, images, labels)
            logits = logits.float()
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:  # fp16's narrow range: scale the loss so gradients do not vanish
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        with torch.no_grad():
            n = labels.shape[0]
            seen += n
            total_loss += float(loss) * n
            total_correct += float((logits.argmax(1) == labels).sum())
            total_confidence += float(logits.softmax(1).gather(1, labels[:, None]).sum())
        bar.update(n)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_correct / seen:.4f}")
    return total_loss / seen, total_correct / seen, total_confidence / seen


def train_model(
    model: nn.Module,
    data: ImageData,
    config: TrainConfig | None = None,
    *,
    transform: TrainingDefense | BatchTransform | None = None,
    progress: bool = True,
    resume: Path | None = None,
    resume_tag: str = "",
    after_epoch: Callable[[nn.Module], dict[str, float]] | None = None,
) -> History:
    """Train ``model`` on ``data.train``, validating on ``data.val`` after each epoch.

    ``after_epoch`` measures the model after each epoch (say, an attack's rho_adv on held-out
    images); what it returns is kept in that epoch's record. It must leave the model's weights,
    modes and the global random state as it found them (attacks do), so that training with and
    without it gives the same weights.

    Deterministic on CPU for a given ``config.seed``, across processes too (attacks inside
    training take their memory layout from a fixed rule, not from timing); the caller's RNG
    state is untouched.
    With ``config.patience``, training stops when validation loss has not improved for that
    many epochs and the best weights are restored. The model ends in eval mode.

    With ``resume``, the whole loop state (weights, optimizer, schedule, every random state,
    history, the defense's kept tensors) is written there atomically after each epoch, and a
    run that finds a state file with the same ``resume_tag`` (say, a digest of the recipe)
    continues after its last epoch, ending with the weights an uninterrupted run has. The last
    epoch (or the one early stopping ends on) is kept too and the file stays: the caller removes
    it once it has saved the trained model, so a process that dies in between (evaluating,
    saving) returns to the finished weights without training again. A file with another tag is
    ignored and overwritten.
    """
    config = config or TrainConfig()
    defense = as_defense(transform)
    device = resolve_device(config.device)
    model.to(device)
    if config.memory_format == "channels_last":  # before the optimizer (its state follows);
        # Module.to(memory_format=) is missing from torch's stubs
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = make_optimizer(model, config)
    steps_per_epoch = -(-len(data.train) // config.batch_size)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)
    history = History()
    best_loss = float("inf")
    best_state = None
    stale = 0
    generator = torch.Generator().manual_seed(config.seed)
    first = 1
    # the training attack's layout by rule, not by the clock: rounding feeds into the weights
    with seeded(config.seed, device), reproducible_plans():
        saved = _load_state(resume, resume_tag) if resume is not None else None
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(saved["scheduler"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["rng"])
            if device.type == "cuda" and saved.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(saved["cuda_rng"], device)
            defense.load_state(saved["defense"])
            history = History.from_dict(saved["history"])
            best_loss, best_state, stale = saved["best_loss"], saved["best_state"], saved["stale"]
            # a run that stopped early is finished: nothing is left to train
            first = config.epochs + 1 if history.stopped_early else int(saved["epoch"]) + 1
            message = f"resuming after epoch {saved['epoch']}/{config.epochs} from {resume}"
            if progress:
                tqdm.write(message)
            else:
                log.info(message)
        for epoch in range(first, config.epochs + 1):
            start = time.perf_counter()
            defense.start_epoch(model, data, epoch, config.epochs)
            with tqdm(
                total=len(data.train),
                desc=f"epoch {epoch}/{config.epochs}",
                unit="img",
                disable=not progress,
                leave=False,
                mininterval=0.5,
            ) as bar:
                train_loss, train_acc, train_conf = _run_epoch(
                    model, data, optimizer, config, generator, device, defense, scheduler, bar
                )
            val = summarize_logits(predict_logits(model, data.val.images), data.val.labels)
            seconds = time.perf_counter() - start  # training and validation, not the measures
            measures = after_epoch(model) if after_epoch is not None else {}
            record = EpochRecord(
                epoch=epoch,
                train_loss=train_loss,
                train_accuracy=train_acc,
                train_confidence=train_conf,
                val_loss=val["loss"],
                val_accuracy=val["accuracy"],
                val_confidence=val["mean_confidence"],
                seconds=seconds,
                measures=measures,
            )
            history.epochs.append(record)
            message = (
                f"epoch {epoch}/{config.epochs}: loss {train_loss:.4f} acc {train_acc:.4f} | "
                f"val loss {val['loss']:.4f} acc {val['accuracy']:.4f} ({record.seconds:.1f}s)"
                + "".join(f" | {k} {v:.4g}" for k, v in measures.items())
            )
            if progress:
                tqdm.write(message)
            else:
                log.info(message)
            if val["loss"] < best_loss:
                best_loss, stale = val["loss"], 0
                history.best_epoch = epoch
                if config.patience is not None:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    history.stopped_early = True
            if resume is not None:  # the stopping epoch too, so a resumed run does not redo it
                _save_state(
                    resume,
                    {
                        "tag": resume_tag,
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "generator": generator.get_state(),
                        "rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state(device)
                        if device.type == "cuda"
                        else None,
                        "defense": defense.state(),
                        "history": history.to_dict(),
                        "best_loss": best_loss,
                        "best_state": best_state,
                        "stale": stale,
                    },
                )
            if history.stopped_early:
                break
    if config.patience is not None and best_state is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = len(history.epochs)
    if config.memory_format == "channels_last":
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    model.eval()
    return history


def recipe_tag(recipe: Mapping[str, Any]) -> str:
    """A digest of everything that shapes the weights, for ``train_model``'s ``resume_tag``: a
    saved state is resumed only by a run with the same recipe."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the loop state atomically: a run killed while saving keeps the previous epoch's."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def _load_state(path: Path, tag: str) -> dict[str, Any] | None:
    """The saved loop state, or None when there is none, it is unreadable or has another tag."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: start over, say why
        log.warning("ignoring the training state %s (%s); training from the start", path, error)
        return None
    if not isinstance(state, dict) or state.get("tag") != tag:
        log.info("the training state %s is for other settings; training from the start", path)
        return None
    return state
