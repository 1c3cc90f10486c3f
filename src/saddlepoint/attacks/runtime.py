"""Pick the fastest memory layout, sub-batch size and gradient precision for a model, by
measuring once.

Measured on a 2-core CPU (DESIGN.md): channels_last plus sub-batches of about 125 cut the cost of
PGD's forward+backward passes by ~40% against one big batch, because large activations are
returned to the OS and faulted in again every pass. The best choice depends on the model and
the machine, so it is measured per (model, input shape, device, dtype) and cached.

Precision: gradient passes may run under autocast in bfloat16 (or float16 on CUDA), where the
hardware computes in it natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs with bf16). Only the
passes that produce gradients are lowered; the attacks keep their iterates, projections and the
final success decision in float32.

Reproducibility: a measured choice depends on the clock, so two runs on a loaded machine may
pick different layouts, and the layout changes float32 rounding. One attack call barely notices;
adversarial training, which feeds every rounding back into the weights, does (the same seed gave
two models 1.2 points apart). Inside ``reproducible_plans()`` (the trainer enters it) 'auto' is
decided by a fixed rule instead: channels_last for convolutional models on the CPU (0.71x the
contiguous cost for PGD on DESIGN.md's MNIST CNN), and bf16 where the device computes it
natively.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint.attacks.passes import uncounted
from saddlepoint.autodiff import input_grad

log = logging.getLogger(__name__)

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[_PlanKey, ExecutionPlan]] = (
    weakref.WeakKeyDictionary()
)
_PROBE = 256
_ACTIVATION_BUDGET = 16 * 2**20
_reproducible = 0  # > 0 inside reproducible_plans()


PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ExecutionPlan:
    """How to run passes: sub-batch size, whether to use channels_last, and the precision of
    the gradient passes ('fp32', 'bf16' or 'fp16')."""

    batch_size: int
    channels_last: bool
    precision: str = "fp32"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CPU: AVX512-BF16 or AMX; CUDA: bf16)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


@contextlib.contextmanager
def precision_scope(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast to ``precision`` ('bf16' / 'fp16') on ``device``; nothing for 'fp32'."""
    if precision not in _LOW:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_LOW[precision]):
        yield


def float32_logits(model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """Logits of one float32 forward pass without gradient, whatever autocast the caller runs
    under: every decision that a point is adversarial is made on these, never on rounded ones."""
    with torch.no_grad(), torch.autocast(device_type=points.device.type, enabled=False):
        return model(points).float()


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@contextlib.contextmanager
def memory_layout(model: nn.Module, channels_last: bool) -> Iterator[None]:
    """Temporarily store the model's 4-d weights channels_last; the original tensors come back."""
    if not channels_last:
        yield
        return
    saved: list[tuple[torch.Tensor, torch.Tensor]] = [
        (p, p.data) for p in model.parameters() if p.dim() == 4
    ]
    saved += [(b, b.data) for b in model.buffers() if b.dim() == 4]
    for tensor, data in saved:
        tensor.data = data.contiguous(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for tensor, data in saved:
            tensor.data = data


@contextlib.contextmanager
def reproducible_plans() -> Iterator[None]:
    """Within: 'auto' layout and precision follow a fixed rule (channels_last for conv models on
    the CPU; bf16 where native) instead of timing, so a seeded run repeats bit for bit."""
    global _reproducible
    _reproducible += 1
    try:
        yield
    finally:
        _reproducible -= 1


def _rule_layout(model: nn.Module, sample: torch.Tensor) -> bool:
    """The layout ``reproducible_plans`` uses: channels_last for conv models on the CPU."""
    return _has_conv(model) and sample.dim() == 4 and sample.device.type == "cpu"


def to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _time_pass(
    model: nn.Module, probe: torch.Tensor, labels: torch.Tensor, plan: ExecutionPlan
) -> float:
    """Seconds for one forward+backward (w.r.t. the input) over ``probe`` under ``plan``."""
    start = time.perf_counter()
    for i in range(0, probe.shape[0], plan.batch_size):
        x = to_layout(probe[i : i + plan.batch_size], plan.channels_last).requires_grad_(True)
        with precision_scope(probe.device, plan.precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels[i : i + plan.batch_size], reduction="sum")
        input_grad(loss, x)
    if probe.is_cuda:
        torch.cuda.synchronize(probe.device)
    return time.perf_counter() - start


def largest_activation_bytes(model: nn.Module, sample: torch.Tensor) -> int:
    """Bytes of the largest tensor any module outputs for one input like ``sample[:1]``."""
    sizes = [sample[:1].numel() * sample.element_size()]

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(sample[:1])
    finally:
        for handle in handles:
            handle.remove()
    return max(sizes)


def cache_friendly_batch(model: nn.Module, sample: torch.Tensor) -> int:
    """The largest power of two whose biggest activation stays under ``_ACTIVATION_BUDGET``
    (so glibc keeps reusing the memory instead of returning it to the OS), within [16, 512]."""
    per_sample = max(largest_activation_bytes(model, sample), 1)
    size = 16
    while size * 2 <= 512 and size * 2 * per_sample <= _ACTIVATION_BUDGET:
        size *= 2
    return size


class _PlanKey(NamedTuple):
    """What a cached plan was made for: input shape, device and dtype, and the settings asked."""

    shape: tuple[int, ...]
    device: str
    dtype: torch.dtype
    batch_size: int | str
    memory_format: str
    precision: str


def plan_execution(
    model: nn.Module,
    sample: torch.Tensor,
    n: int,
    *,
    batch_size: int | str = "auto",
    memory_format: str = "auto",
    precision: str = "fp32",
) -> ExecutionPlan:
    """The sub-batch size, layout and gradient precision for ``n`` inputs shaped like ``sample``.

    Explicit ``batch_size`` / ``memory_format`` ('contiguous' or 'channels_last') / ``precision``
    ('fp32', 'bf16', 'fp16') win. With 'auto', the sub-batch is the largest power of two whose
    biggest activation fits in 16 MB, the layout is measured (a few passes over 256 probe inputs
    in each layout), and the precision is bf16 only where the device has it natively and its
    passes measure at least 10% faster; the choice is cached per model and input shape. Inside
    ``reproducible_plans()`` the 'auto' choices follow its fixed rule without timing. The model
    must be in eval mode with frozen parameters.
    """
    conv = _has_conv(model) and sample.dim() == 4
    fixed_layout = None if memory_format == "auto" else memory_format == "channels_last"
    size = int(batch_size) if batch_size != "auto" else None
    if _reproducible:  # the rule settles what timing would have
        if fixed_layout is None:
            fixed_layout = _rule_layout(model, sample)
        if precision == "auto":
            precision = "bf16" if native_bf16(sample.device) else "fp32"
        memory_format = "channels_last" if fixed_layout else "contiguous"
    if size is not None and fixed_layout is not None and precision != "auto":
        return ExecutionPlan(size, fixed_layout and conv, precision)
    key = _PlanKey(
        tuple(sample.shape[1:]),
        str(sample.device),
        sample.dtype,
        batch_size,
        memory_format,
        precision,
    )
    cached = _CACHE.setdefault(model, {})
    if key not in cached:
        with uncounted():  # measuring the plan is not an attack's work
            if size is None:
                size = cache_friendly_batch(model, sample)
            layout = fixed_layout
            if layout is None:
                layout = _faster_layout(model, sample, size) if conv else False
            chosen = precision
            if precision == "auto":
                chosen = _faster_precision(model, sample, ExecutionPlan(size, layout))
        cached[key] = ExecutionPlan(size, layout, chosen)
        log.debug("execution plan %s", cached[key])
    plan = cached[key]
    return ExecutionPlan(max(min(plan.batch_size, n), 1), plan.channels_last, plan.precision)


def measured_layout(model: nn.Module, sample: torch.Tensor) -> bool:
    """Whether an earlier 'auto' plan for this model and input shape measured channels_last as
    faster; False when none was measured. Query-only attacks take the layout from here: they
    may not probe the model themselves, but a gradient attack before them (in an ensemble, say)
    already has. Inside ``reproducible_plans()``, its fixed rule."""
    if _reproducible:
        return _rule_layout(model, sample)
    shape, device = tuple(sample.shape[1:]), str(sample.device)
    return any(
        (key.shape, key.device, key.dtype) == (shape, device, sample.dtype)
        and key.memory_format == "auto"
        and plan.channels_last
        for key, plan in _CACHE.get(model, {}).items()
    )


def _probe(model: nn.Module, sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed random inputs like ``sample`` and labels for timing passes."""
    generator = torch.Generator().manual_seed(0)
    probe = torch.rand((_PROBE, *sample.shape[1:]), generator=generator).to(sample)
    with torch.no_grad():
        classes = model(probe[:2]).shape[1]
    labels = torch.randint(0, classes, (_PROBE,), generator=generator).to(sample.device)
    return probe, labels


def _faster_precision(model: nn.Module, sample: torch.Tensor, plan: ExecutionPlan) -> str:
    """'bf16' when the device has it natively and its passes are clearly faster, else 'fp32'."""
    if not native_bf16(sample.device):
        return "fp32"
    probe, labels = _probe(model, sample)
    timings = {}
    with memory_layout(model, plan.channels_last):
        for precision in ("fp32", "bf16"):
            trial = ExecutionPlan(plan.batch_size, plan.channels_last, precision)
            _time_pass(model, probe, labels, trial)  # warm-up
            timings[precision] = min(_time_pass(model, probe, labels, trial) for _ in range(2))
    return "bf16" if timings["bf16"] < 0.9 * timings["fp32"] else "fp32"


def _faster_layout(model: nn.Module, sample: torch.Tensor, size: int) -> bool:
    """True when channels_last passes are clearly faster (by 10%, above timing noise)."""
    probe, labels = _probe(model, sample)
    timings = {}
    for channels_last in (False, True):
        plan = ExecutionPlan(size, channels_last)
        with memory_layout(model, channels_last):
            _time_pass(model, probe, labels, plan)  # warm-up
            timings[channels_last] = min(_time_pass(model, probe, labels, plan) for _ in range(2))
    return timings[True] < 0.9 * timings[False]
