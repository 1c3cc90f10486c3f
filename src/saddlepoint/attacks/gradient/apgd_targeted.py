"""APGD-T (Croce & Hein, 2020): APGD on the targeted DLR loss, over the top target classes.

Threat model: Linf or L2 ball of radius eps, inside the bounds.
For each sample the target classes are the ``target_classes`` highest-scoring wrong classes of
the clean logits, taken in order; each target gets ``restarts`` APGD runs of ``steps`` iterations
on the samples that no earlier target broke. The loss pulls the target's logit above the label's,
-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), but success is untargeted (any wrong class), as in
AutoAttack, whose reference settings are the defaults: 9 targets, 100 steps, 1 restart. Samples
that no target breaks keep the point with the highest untargeted DLR loss.

Args (beyond APGD's): target_classes: how many of the top wrong classes to try (default 9; fewer
when the model has fewer classes; on 2 or 3 classes the targeted DLR scales by the classes there
are, see ``losses.dlr_targeted``, and the attack says so). Called with ``targets``, it refuses:
it picks its own.

Example:
    >>> result = APGDTargeted(eps=0.3)(model, images, labels)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saddlepoint.attacks.base import BatchContext, BatchOutput
from saddlepoint.attacks.gradient.apgd import APGD
from saddlepoint.attacks.gradient.restarts import StrongestSoFar
from saddlepoint.attacks.runtime import float32_logits
from saddlepoint.losses import dlr, dlr_targeted
from saddlepoint.validation import check_number


class APGDTargeted(APGD):
    """APGD on the targeted DLR loss over the top ``target_classes`` wrong classes."""

    name = "apgd-t"

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float | str = 8 / 255,
        steps: int = 100,
        restarts: int = 1,
        target_classes: int = 9,
        rho: float = 0.75,
        momentum: float = 0.75,
        early_stop: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(
            norm=norm,
            eps=eps,
            steps=steps,
            restarts=restarts,
            loss="dlr",
            rho=rho,
            momentum=momentum,
            early_stop=early_stop,
            **common,
        )
        check_number(type(self).__name__, "target_classes", target_classes, low=1, integer=True)
        self.target_classes = target_classes

    def config(self) -> dict:
        config = {**super().config(), "target_classes": self.target_classes}
        config["loss"] = "dlr-targeted"
        return config

    def objective(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor:
        """The targeted DLR towards ``targets`` (the class being tried), untargeted without."""
        return dlr(logits, labels) if targets is None else dlr_targeted(logits, labels, targets)

    def succeeded(  # type: ignore[override]  # success is untargeted whatever the target
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor:
        return logits.argmax(dim=1) != labels

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        if targets is not None:
            raise ValueError(
                "APGDTargeted chooses its own target classes and is untargeted; call it "
                "without 'targets' (use APGD with loss='dlr' for a targeted attack)."
            )
        n = x.shape[0]
        clean = float32_logits(model, x)
        ranked = clean.argsort(dim=1, descending=True)
        others = ranked[ranked != labels[:, None]].view(n, -1)  # wrong classes, best first
        count = min(self.target_classes, others.shape[1])
        strongest = StrongestSoFar(x)
        strongest.success |= clean.argmax(dim=1) != labels  # nothing to do for these
        evals = torch.zeros(n, dtype=torch.long, device=x.device)
        shape = tuple(x.shape[1:])
        for rank in range(count):
            for restart in range(self.restarts):
                todo = strongest.pending(early_stop=True)
                if todo.numel() == 0:
                    break
                stream = rank * self.restarts + restart
                start = context.random_start(n, shape, self.norm, self.eps, stream).to(x)
                target = others[todo, rank]
                adv, run_evals = self._single(model, x[todo], labels[todo], target, start[todo])
                evals[todo] += run_evals
                logits = float32_logits(model, adv)
                value = dlr(logits, labels[todo])
                strongest.update(todo, adv, logits, value, logits.argmax(dim=1) != labels[todo])
        if strongest.logits is None:  # every sample was misclassified from the start
            return BatchOutput(adversarial=x.clone(), logits=clean, clean_logits=clean)
        kept = strongest.value == float("-inf")  # misclassified before the attack: x itself
        logits = torch.where(kept[:, None], clean, strongest.logits)
        return BatchOutput(
            adversarial=strongest.adversarial,
            logits=logits,
            clean_logits=clean,
            grad_evals=evals,
        )
