"""Per-epoch training history, saved with checkpoints and plottable."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field


@dataclass
class EpochRecord:
    """Metrics of one epoch: train (running, in train mode) and validation (eval mode), and
    what a caller's after-epoch measurement returned (``measures``; empty when none ran)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    train_confidence: float
    val_loss: float
    val_accuracy: float
    val_confidence: float
    seconds: float
    measures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The record; ``measures`` only when some were taken, so older records match."""
        values = asdict(self)
        if not values["measures"]:
            del values["measures"]
        return values


@dataclass
class History:
    """The epochs run, and which one's weights were kept."""

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return {
            "epochs": [record.to_dict() for record in self.epochs],
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(
            epochs=[EpochRecord(**record) for record in data.get("epochs", [])],
            best_epoch=data.get("best_epoch"),
            stopped_early=bool(data.get("stopped_early", False)),
        )

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Save loss, accuracy and confidence curves (train vs validation) as an image."""
        from saddlepoint.viz.style import plt, save_figure

        x = [record.epoch for record in self.epochs]
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        for ax, key, title in zip(
            axes,
            ("loss", "accuracy", "confidence"),
            ("Loss", "Accuracy", "Mean true-class confidence"),
        ):
            ax.plot(x, [getattr(r, f"train_{key}") for r in self.epochs], "o-", label="train")
            ax.plot(x, [getattr(r, f"val_{key}") for r in self.epochs], "s-", label="validation")
            if self.best_epoch is not None:
                ax.axvline(self.best_epoch, color="grey", ls="--", lw=1, label="kept")
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.tight_layout()
        save_figure(fig, path)
