"""The attack contract: configure once, call on (model, x, y).

The base class owns ``__call__``: it checks inputs, puts the model in eval mode with frozen
parameters (restoring both after), picks the sub-batch size and memory layout, splits the batch,
and guarantees that fixed-budget results lie inside the eps-ball and the bounds. A subclass
writes ``_run`` for one sub-batch. Randomness is drawn in fixed blocks of samples keyed by the
seed, so results do not depend on how the batch is split.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.distribute import current_runner, local
from saddlepoint.attacks.passes import counted_passes
from saddlepoint.attacks.result import AttackResult
from saddlepoint.attacks.runtime import (
    PRECISIONS,
    ExecutionPlan,
    float32_logits,
    measured_layout,
    memory_layout,
    plan_execution,
    precision_scope,
    to_layout,
)
from saddlepoint.autodiff import input_grad
from saddlepoint.losses import get_loss
from saddlepoint.modes import evaluating, model_device
from saddlepoint.progress import note
from saddlepoint.threat import ThreatModel, parse_eps
from saddlepoint.validation import check_choice, check_number

_BLOCK = 64  # samples per random block

# Keywords every attack takes through Attack.__init__ (besides its threat model and loss).
COMMON = ("bounds", "seed", "batch_size", "memory_format", "precision")


@dataclass
class BatchOutput:
    """What ``_run`` returns for one sub-batch. Optional logits are reused when present."""

    adversarial: torch.Tensor
    logits: torch.Tensor | None = None
    clean_logits: torch.Tensor | None = None
    grad_evals: torch.Tensor | None = None
    queries: torch.Tensor | None = None
    trace: torch.Tensor | None = None  # (iterates, 3): summed loss, correct count, sample count
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class BatchContext:
    """Where a sub-batch sits in the whole batch, for partition-independent randomness."""

    offset: int
    seed: int

    def _blocks(
        self, n: int, stream: int, draw: Callable[[int, torch.Generator], torch.Tensor]
    ) -> torch.Tensor:
        first, last = self.offset // _BLOCK, (self.offset + n - 1) // _BLOCK
        parts = []
        for block in range(first, last + 1):
            generator = torch.Generator().manual_seed(
                (self.seed * 1_000_003 + stream * 10_007 + block) % (2**63)
            )
            parts.append(draw(_BLOCK, generator))
        start = self.offset - first * _BLOCK
        return torch.cat(parts)[start : start + n]

    def random_start(
        self, n: int, shape: tuple[int, ...], norm: str, eps: float, stream: int = 0
    ) -> torch.Tensor:
        """Uniform draws from the ball for samples offset..offset+n (CPU tensor)."""
        return self._blocks(n, stream, lambda m, g: lp.random_start(m, shape, norm, eps, g))

    def uniform(self, n: int, shape: tuple[int, ...], stream: int = 0) -> torch.Tensor:
        """U[0, 1) draws of ``shape`` per sample for samples offset..offset+n (CPU tensor)."""
        return self._blocks(n, stream, lambda m, g: torch.rand((m, *shape), generator=g))


def _takes_positional(init: Any) -> bool:
    """Whether a constructor takes any argument by position besides self (most attacks do not)."""
    parameters = list(inspect.signature(init).parameters.values())[1:]
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


@runtime_checkable
class Adversary(Protocol):
    """What every attack and every ensemble of attacks is: configured once, described by its
    settings, and called on ``(model, x, y)`` (targeted with ``targets``) for per-sample
    results. Code that takes "an attack" takes an Adversary."""

    @property
    def name(self) -> str: ...

    def config(self) -> dict: ...

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        targets: torch.Tensor | None = None,
    ) -> AttackResult: ...

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


class Attack:
    """Base class of every attack. Subclasses set ``name`` and implement ``_run``.

    Args:
        norm: the threat model's norm ('linf', 'l2' or 'l1').
        eps: the threat model's radius (a number or a string such as '8/255').
        bounds: the valid input range (low, high), [0, 1] pixels by default.
        loss: name of the loss to ascend ('ce', 'mse', 'cw', 'dlr'), for attacks that use one.
        seed: seeds every random draw; the global RNG is never touched.
        batch_size: sub-batch size, or 'auto' to measure the fastest once per model.
        memory_format: 'auto', 'contiguous' or 'channels_last'.
        precision: of the gradient passes: 'fp32' (default), 'bf16', 'fp16', or 'auto' (bf16
            where the device has it natively, it measures faster and the class allows it:
            ``auto_low_precision``). Only attacks whose ``low_precision`` is True lower it (the
            fixed-budget gradient attacks); iterates, projections and the reported success
            decision stay float32.
    """

    name: ClassVar[str] = "attack"
    minimal: ClassVar[bool] = False  # minimal-norm attacks are clipped to bounds, not projected
    query_only: ClassVar[bool] = False  # black-box: never differentiates, never probes the model
    supported_norms: ClassVar[tuple[str, ...]] = ("linf", "l2")  # L1 only where a class says so
    untargeted_only: ClassVar[bool] = False  # a call with targets is refused (DeepFool, walks)
    # Raised when a change to an attack changes its results: stored sweep rows of an older
    # revision are then stale and re-run (see experiments.store).
    revision: ClassVar[int] = 1
    # Whether gradient passes may run in bf16/fp16 (minimal-norm steps need float32 accuracy).
    low_precision: ClassVar[bool] = False
    # Whether precision='auto' may pick bf16: only once bench/precision.py shows the attack no
    # weaker in bf16 on adversarially trained models (none is yet: see README, Precision).
    auto_low_precision: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give a keyword-only constructor a clear error for a positional argument (the
        torchattacks habit ``PGD(model, eps=...)``); signatures stay as written."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or _takes_positional(init):
            return

        @functools.wraps(init)
        def keywords_only(self: Attack, *args: Any, **options: Any) -> None:
            if args:
                raise TypeError(
                    f"{type(self).__name__} takes keyword arguments only, and no model: configure "
                    f"it once, {type(self).__name__}(eps=..., ...), then call it on a batch, "
                    f"attack(model, x, y). Got {len(args)} positional argument(s), the first a "
                    f"{type(args[0]).__name__} (torchattacks' PGD(model, eps=...) habit)."
                )
            init(self, **options)

        setattr(cls, "__init__", keywords_only)  # noqa: B010 - mypy refuses a method assignment

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float | str = 8 / 255,
        bounds: tuple[float, float] = (0.0, 1.0),
        loss: str = "ce",
        seed: int = 0,
        batch_size: int | str = "auto",
        memory_format: str = "auto",
        precision: str = "fp32",
    ) -> None:
        owner = type(self).__name__
        low, high = bounds
        check_choice(owner, "norm", norm, self.supported_norms)
        self.threat = ThreatModel(norm=norm, eps=parse_eps(eps), bounds=(low, high))
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        check_number(owner, "seed", seed, low=0, integer=True)
        self.seed = seed
        if batch_size != "auto":
            check_number(owner, "batch_size", batch_size, low=1, integer=True)
        self.batch_size = batch_size
        check_choice(owner, "memory_format", memory_format, ["auto", "contiguous", "channels_last"])
        self.memory_format = memory_format
        self.precision = check_choice(owner, "precision", precision, PRECISIONS)

    @property
    def norm(self) -> str:
        return self.threat.norm

    @property
    def eps(self) -> float:
        return self.threat.eps

    @property
    def bounds(self) -> tuple[float, float]:
        return self.threat.bounds

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({settings})"

    def config(self) -> dict:
        """The hyper-parameters, as plain values (for results stores and reports); the precision
        only where it is not the default, so float32 rows keep their identity."""
        config = {"norm": self.norm, "eps": self.eps, "loss": self.loss_name, "seed": self.seed}
        if self.precision != "fp32":
            config["precision"] = self.precision
        return config

    # ---- helpers for subclasses -------------------------------------------------------------

    def objective(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor:
        """Per-sample value to maximize: the loss on the label, or minus the loss on the target."""
        if targets is None:
            return self.loss_fn(logits, labels)
        return -self.loss_fn(logits, targets)

    @staticmethod
    def succeeded(
        logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor:
        predictions = logits.argmax(dim=1)
        return predictions == targets if targets is not None else predictions != labels

    def confirmed(
        self,
        model: nn.Module,
        points: torch.Tensor,
        hit: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> torch.Tensor:
        """``hit`` (decided on a gradient pass's logits), with each hit checked again by a
        float32 pass when that gradient pass ran in low precision: rounding never makes a point
        count as adversarial, so an attack never stops early on a point the model still gets
        right. Under float32 it is ``hit`` itself, at no cost."""
        # autocast first: hit.any() waits for the device, which float32 runs never need
        if not torch.is_autocast_enabled(points.device.type) or not bool(hit.any()):
            return hit
        index = hit.nonzero().squeeze(1)
        logits = float32_logits(model, points[index])
        chosen = targets[index] if targets is not None else None
        result = hit.clone()
        result[index] = self.succeeded(logits, labels[index], chosen)
        return result

    def input_gradient(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, per-sample objective, gradient of the objective w.r.t. x): one pass, input
        gradient only (parameters are frozen, so no weight gradient is ever formed). An attack
        with ``eot`` > 1 averages all three over that many passes (expectation over
        transformation, for randomized models: Athalye et al. 2018)."""
        draws = int(getattr(self, "eot", 1))
        if draws > 1:
            passes = [self._one_gradient(model, x, labels, targets) for _ in range(draws)]
            logits, value, grad = (torch.stack(parts).mean(dim=0) for parts in zip(*passes))
            return logits, value, grad
        return self._one_gradient(model, x, labels, targets)

    def _one_gradient(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        if getattr(model, "averages_loss", False):  # a loss-averaging surrogate ensemble
            members = model.member_logits(x)  # type: ignore[operator]  # a SurrogateEnsemble
            logits = torch.stack(members).mean(dim=0)
            value = torch.stack([self.objective(m.float(), labels, targets) for m in members]).mean(
                dim=0
            )
        else:
            logits = model(x)
            # the objective in float32 even from low-precision logits: APGD compares its values
            value = self.objective(logits.float(), labels, targets)
        grad = input_grad(value.sum(), x)
        return logits.detach(), value.detach(), grad

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        raise NotImplementedError

    # ---- the contract ------------------------------------------------------------------------

    def _check(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        owner = type(self).__name__
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"{owner}: 'model' must be a torch.nn.Module (wrap a plain function in one). "
                f"Got {type(model).__name__} instead."
            )
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
            raise TypeError(f"{owner}: 'x' must be a float tensor with a batch dimension.")
        if len(x) == 0:
            raise ValueError(f"{owner}: 'x' is an empty batch; give at least one image.")
        y = torch.as_tensor(y)
        if y.shape != (x.shape[0],) or y.is_floating_point():
            raise ValueError(
                f"{owner}: 'y' must hold one integer label per input, shape ({x.shape[0]},). "
                f"Got {tuple(y.shape)} ({y.dtype}) instead."
            )
        if targets is not None and self.untargeted_only:
            raise ValueError(f"{owner} is untargeted; call it without 'targets'.")
        if x.numel() and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x.flatten(1))).any(dim=1).sum())
            raise ValueError(
                f"{owner}: 'x' holds NaN or infinite values in {bad} of {len(x)} images; attacks "
                "need finite pixels in the threat model's bounds."
            )
        low, high = self.bounds
        if x.numel() and (float(x.min()) < low - 1e-6 or float(x.max()) > high + 1e-6):
            raise ValueError(
                f"{owner}: inputs must lie in the bounds [{low:g}, {high:g}] of the threat model. "
                f"Got values in [{float(x.min()):g}, {float(x.max()):g}]; attacks work in pixel "
                "space, with any normalization inside the model."
            )
        device = model_device(model)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
        x = x.detach().to(device=device, dtype=dtype)  # float64 images follow the model
        y = y.to(device=device, dtype=torch.long)
        if not self.query_only:  # a query-only attack sends the model no query of its own
            with torch.no_grad(), evaluating(model):
                first = model(x[:1])
            classes = int(first.shape[1])
            self._note_few_classes(classes)
            if not bool(torch.isfinite(first).all()):
                raise ValueError(
                    f"{owner}: the model returns NaN or infinite logits on the first image; no "
                    "robust accuracy computed from them would mean anything (check its weights)."
                )
            for name, labels in (("y", y), ("targets", targets)):
                if labels is None:
                    continue
                labels = torch.as_tensor(labels)
                if int(labels.min()) < 0 or int(labels.max()) >= classes:
                    raise ValueError(
                        f"{owner}: '{name}' must hold class indices in [0, {classes - 1}] for "
                        f"this {classes}-class model. Got values in [{int(labels.min())}, "
                        f"{int(labels.max())}] instead."
                    )
        if targets is not None:
            targets = torch.as_tensor(targets).to(device=device, dtype=torch.long)
            if targets.shape != y.shape:
                raise ValueError(f"{owner}: 'targets' must have shape {tuple(y.shape)}.")
        return x, y, targets

    def _note_few_classes(self, classes: int) -> None:
        """Say when a loss this attack uses changes with the class count (DLR's scale needs
        three classes, the targeted DLR's four, a targeted attack at most classes - 1 targets)."""
        owner = type(self).__name__
        if self.loss_name == "dlr" and classes < 3:
            note("%s: %d classes: the DLR loss uses the CW margin (DLR needs 3)", owner, classes)
        targets = getattr(self, "target_classes", None)
        if isinstance(targets, int) and targets > classes - 1:
            note(
                "%s: %d classes: %d target class(es) tried instead of %d%s",
                owner,
                classes,
                classes - 1,
                targets,
                "; the targeted DLR scales by the classes there are" if classes < 4 else "",
            )

    def _execute(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        targets: torch.Tensor | None,
        offset: int = 0,
    ) -> tuple[list[BatchOutput], torch.Tensor, ExecutionPlan]:
        """Run ``_run`` over sub-batches under the measured (or configured) execution plan.
        Query-only attacks get a fixed plan (measuring would send the model extra queries) in
        the layout an earlier gradient attack measured for the model, if one has."""
        if self.query_only:
            size = 256 if self.batch_size == "auto" else int(self.batch_size)
            layout = self.memory_format == "channels_last" or (
                self.memory_format == "auto" and measured_layout(model, x)
            )
            plan = ExecutionPlan(max(min(size, len(x)), 1), layout)
        else:
            plan = plan_execution(
                model,
                x[: min(len(x), 2)],
                len(x),
                batch_size=self.batch_size,
                memory_format=self.memory_format,
                precision=self._precision(),
            )
        outputs = []
        with memory_layout(model, plan.channels_last), precision_scope(x.device, plan.precision):
            for start in range(0, len(x), plan.batch_size):
                stop = start + plan.batch_size
                xb = to_layout(x[start:stop], plan.channels_last)
                tb = targets[start:stop] if targets is not None else None
                context = BatchContext(offset + start, self.seed)
                outputs.append(self._run(model, xb, y[start:stop], tb, context))
        adversarial = torch.cat([o.adversarial.contiguous() for o in outputs]) if outputs else x
        return outputs, adversarial, plan

    def _precision(self) -> str:
        """The precision to plan with: float32 where the class may not lower it (or may not
        let 'auto' lower it), else the configured one."""
        if not self.low_precision or (self.precision == "auto" and not self.auto_low_precision):
            return "fp32"
        return self.precision

    def _guarantee(self, adversarial: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Project into the ball and the bounds (fixed budget), or clip to bounds (minimal-norm)."""
        low, high = self.bounds
        flat = adversarial.flatten(1)
        feasible = (flat >= low).all(1) & (flat <= high).all(1)
        if self.minimal:
            fixed = lp.clip(adversarial, self.bounds)
        else:
            size = lp.norms(adversarial - x, self.norm)
            feasible &= size <= self.eps * (1 + 1e-6)
            fixed = lp.project_and_clip(adversarial, x, self.norm, self.eps, self.bounds)
        # Samples already feasible are kept bit for bit, so logits computed for them stay valid.
        keep = feasible.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(keep, adversarial, fixed)

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Only the adversarial batch, on the model's device, with no extra pass for metrics:
        the form adversarial training uses."""
        x, y, targets = self._check(model, x, y, targets)
        with evaluating(model, freeze=True), torch.enable_grad():
            _, adversarial, _ = self._execute(model, x, y, targets)
        return self._guarantee(adversarial, x).detach()

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        targets: torch.Tensor | None = None,
        offset: int = 0,
    ) -> AttackResult:
        """Attack ``model`` on inputs ``x`` (in bounds) with labels ``y``; targeted when
        ``targets`` is given. Returns per-sample results on the CPU. ``offset`` is the position
        of ``x[0]`` in a larger batch this is a shard of: the shard is then attacked exactly as
        it would be there. Inside ``distributed(runner)`` the runner splits the call."""
        check_number(type(self).__name__, "offset", offset, low=0, integer=True)
        runner = current_runner()
        if runner is not None:
            with counted_passes(model) as checked:
                x, y, targets = self._check(model, x, y, targets)
            with local():  # the runner's own calls attack here
                joined = runner(self, model, x.cpu(), y.cpu(), _cpu(targets), offset)
            joined.passes = joined.passes + checked
            return joined
        start = time.perf_counter()
        with counted_passes(model) as passes:  # the check's probe of one image included
            x, y, targets = self._check(model, x, y, targets)
            with evaluating(model, freeze=True), torch.enable_grad():
                outputs, adversarial, plan = self._execute(model, x, y, targets, offset)
                final = self._guarantee(adversarial, x)
                size = plan.batch_size
                # Logits from low-precision passes are not reused: success is decided in fp32.
                reusable = outputs if plan.precision == "fp32" else []
                with torch.no_grad(), memory_layout(model, plan.channels_last):
                    logits = self._logits_for(model, final, adversarial, reusable, size, "logits")
                    clean = self._logits_for(model, x, x, reusable, size, "clean_logits")
        seconds = time.perf_counter() - start
        n = len(x)
        grad_evals = _gather(outputs, "grad_evals", n)
        queries = _gather(outputs, "queries", n)
        extras = {}
        for key in outputs[0].extras if outputs else ():
            extras[key] = torch.cat([o.extras[key].detach().cpu() for o in outputs])
        return AttackResult(
            attack=self.name,
            inputs=x.cpu(),
            adversarial=final.detach().cpu(),
            labels=y.cpu(),
            logits=logits.float().cpu(),
            clean_logits=clean.float().cpu(),
            grad_evals=grad_evals,
            queries=queries,
            targets=targets.cpu() if targets is not None else None,
            seconds=seconds,
            trace=_merge_trace(outputs),
            extras=extras,
            precision=plan.precision,
            passes=passes,
        )

    @staticmethod
    def _logits_for(
        model: nn.Module,
        points: torch.Tensor,
        produced: torch.Tensor,
        outputs: list[BatchOutput],
        size: int,
        key: str,
    ) -> torch.Tensor:
        """Reuse the logits the attack computed when they belong to exactly these points;
        otherwise run one forward pass."""
        known = [getattr(o, key) for o in outputs]
        if outputs and all(k is not None for k in known) and torch.equal(points, produced):
            return torch.cat(known)
        parts = [model(points[i : i + size]) for i in range(0, len(points), max(size, 1))]
        return torch.cat(parts) if parts else points.new_zeros((0, 0))


def _cpu(values: torch.Tensor | None) -> torch.Tensor | None:
    return values.cpu() if values is not None else None


def _gather(outputs: list[BatchOutput], key: str, n: int) -> torch.Tensor:
    values = [getattr(o, key) for o in outputs]
    if not values or any(v is None for v in values):
        return torch.zeros(n, dtype=torch.long)
    return torch.cat([v.detach().cpu().long() for v in values])


def _merge_trace(outputs: list[BatchOutput]) -> list[dict[str, float]] | None:
    traces = [o.trace for o in outputs if o.trace is not None]
    if not traces or len(traces) < len(outputs):
        return None
    total = torch.stack([t.detach().cpu().double() for t in traces]).sum(dim=0)
    return [
        {"iteration": i, "loss": float(row[0] / row[2]), "accuracy": float(row[1] / row[2])}
        for i, row in enumerate(total)
    ]
