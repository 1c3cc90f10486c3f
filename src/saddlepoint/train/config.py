"""Training settings, checked when built."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from saddlepoint.validation import check_choice, check_number


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, schedule, regularization, early stopping and seed.

    ``weight_decay`` is the L2 penalty (Adam's coupled form, as Keras' kernel_regularizer);
    ``decay_on`` says which parameters it touches: 'all' of them, or only the 'kernels' (the
    weight matrices and convolution filters, as a Keras kernel regularizer does: no biases,
    no batch-norm scales);
    ``patience`` enables early stopping on validation loss and restores the best weights.
    ``schedule`` sets the learning rate per batch: 'constant', 'cosine' decay to zero, or
    'onecycle' (warm-up to ``lr`` over the first 30%, then cosine decay; Smith, 2018).
    ``precision`` 'bf16' or 'fp16' runs forward and backward under autocast with float32 master
    weights (fp16 with a gradient scaler, on CUDA); validation and metrics stay float32.
    ``memory_format`` 'channels_last' stores a convolutional model's weights and batches
    channels-last while training (faster on CPUs, most of all with bf16); the saved weights are
    the same tensors in the usual layout. Float rounding differs from 'contiguous', so the two
    give different (equally valid) models.
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    decay_on: str = "all"
    patience: int | None = None
    schedule: str = "onecycle"
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    memory_format: str = "contiguous"

    def __post_init__(self) -> None:
        owner = "TrainConfig"
        check_number(owner, "epochs", self.epochs, low=1, integer=True)
        check_number(owner, "batch_size", self.batch_size, low=1, integer=True)
        check_choice(owner, "optimizer", self.optimizer, ["adam", "sgd"])
        check_number(owner, "lr", self.lr, low=0, low_open=True)
        check_number(owner, "momentum", self.momentum, low=0, high=1, high_open=True)
        check_number(owner, "weight_decay", self.weight_decay, low=0)
        check_choice(owner, "decay_on", self.decay_on, ["all", "kernels"])
        check_choice(owner, "schedule", self.schedule, ["constant", "cosine", "onecycle"])
        if self.patience is not None:
            check_number(owner, "patience", self.patience, low=1, integer=True)
        check_number(owner, "seed", self.seed, low=0, integer=True)
        check_choice(owner, "precision", self.precision, ["fp32", "bf16", "fp16"])
        check_choice(owner, "memory_format", self.memory_format, ["contiguous", "channels_last"])

    def to_dict(self) -> dict:
        """The settings; precision, layout and decay_on only where not the defaults, so older
        records match."""
        values = asdict(self)
        if values["decay_on"] == "all":
            del values["decay_on"]
        if values["precision"] == "fp32":
            del values["precision"]
        if values["memory_format"] == "contiguous":
            del values["memory_format"]
        return values
