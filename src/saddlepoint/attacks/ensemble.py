"""Run several attacks and keep, per sample, the first that breaks it (AutoAttack's scheme).

Each attack only sees the samples still classified correctly after the previous ones, so the
ensemble costs little more than its first attack on a weak model. ``extras['broken_by']`` holds
the index of the attack that broke each sample (-1: none; -2: misclassified before any attack).

A member may be *focused*: it runs only on the given share of the still-robust samples whose
smallest margin so far (true-class logit minus the best other, over every earlier member) is
lowest. Points an attack leaves close to the boundary are the ones a stronger attack still
breaks (measured in bench/autoattack.py); spending the expensive members on them alone is what
makes the ``adaptive`` evaluation cheap (the idea of discarding hopeless points is from
Adaptive Auto Attack, Liu et al. 2022). The share is of the survivors of one call: split a
dataset into calls and each call's closest share runs (bench/autoattack.py calls 250 at a time).
A focused *query-only* member (Square) also runs on every survivor whose input gradient is zero
or not finite (one gradient pass over the survivors tells): no gradient member could have moved
those, so their margins say nothing about how close they are, and a masked model is attacked
by queries on every image it still gets right. A query-only member with share 0 runs on those
alone (a masked model's survivors can get a larger query budget than the closest share).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks.base import COMMON, Attack
from saddlepoint.attacks.blackbox.common import margin_to_success
from saddlepoint.attacks.health import flat_gradients
from saddlepoint.attacks.passes import counted_passes
from saddlepoint.attacks.result import AttackResult
from saddlepoint.modes import model_device
from saddlepoint.progress import bar, note


class Ensemble:
    """The per-sample strongest of several attacks with one threat model."""

    name = "ensemble"

    def __init__(
        self, attacks: Sequence[Attack], shares: Sequence[float | None] | None = None
    ) -> None:
        if not attacks:
            raise ValueError("The 'attacks' parameter of Ensemble must list at least one attack.")
        shares = list(shares) if shares is not None else [None] * len(attacks)
        if len(shares) != len(attacks):
            raise ValueError(
                f"The 'shares' parameter of Ensemble must give one entry per attack "
                f"({len(attacks)}); got {len(shares)}."
            )
        for attack, share in zip(attacks, shares):
            if share is not None and not 0 <= share <= 1:
                raise ValueError(
                    f"Each entry of Ensemble's 'shares' must be None or in [0, 1]; got {share!r}."
                )
            if share == 0 and not attack.query_only:
                raise ValueError(
                    "A share of 0 (only the survivors without an input gradient) is for "
                    f"query-only attacks; {attack.name!r} follows gradients."
                )
        if shares[0] is not None:
            raise ValueError(
                "The first attack of an Ensemble runs on every sample: its 'shares' entry "
                f"must be None; got {shares[0]!r}."
            )
        self.shares = shares
        budgets = {(a.norm, a.eps) for a in attacks if not a.minimal}
        if len(budgets) > 1:
            raise ValueError(
                "The attacks of an Ensemble must share one threat model (norm and eps). "
                f"Got {sorted(budgets)} instead."
            )
        self.attacks = list(attacks)

    def config(self) -> dict:
        return {
            "attacks": [
                {"name": a.name, **a.config(), **({"share": s} if s is not None else {})}
                for a, s in zip(self.attacks, self.shares)
            ]
        }

    def __repr__(self) -> str:
        return f"Ensemble({self.attacks!r}, shares={self.shares!r})"

    def labels(self) -> list[str]:
        """A readable name per member: 'apgd-ce', 'apgd-dlr', 'apgd-t', 'fab-t', 'square'."""
        names: list[str] = []
        for attack in self.attacks:
            config = attack.config()
            name = attack.name
            if name == "apgd":
                name = f"apgd-{attack.loss_name}"
            elif config.get("targeted"):
                name = f"{name}-t"
            share = self.shares[len(names)]
            if share == 0:
                name = f"{name} (no gradient)"
            elif share is not None:
                name = f"{name} (closest {share:.0%})"
            names.append(name)
        return names

    def progression(self, result: AttackResult) -> list[tuple[str, float]]:
        """Robust accuracy after each member, as the reference AutoAttack prints it: the share of
        samples classified correctly before the attacks that no member up to this one broke."""
        broken_by = result.extras["broken_by"]
        n = max(len(broken_by), 1)
        steps = []
        for index, label in enumerate(self.labels()):
            robust = (broken_by == -1) | (broken_by > index)
            steps.append((label, float(robust.sum()) / n))
        return steps

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Only the adversarial batch, on the model's device (the form adversarial training
        uses, as ``Attack.perturb``)."""
        result = self(model, x, y, targets=targets)
        return result.adversarial.to(model_device(model))

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        targets: torch.Tensor | None = None,
    ) -> AttackResult:
        start = time.perf_counter()
        names = self.labels()
        with bar(len(self.attacks), desc=self.name, unit="attack") as members:
            merged = self.attacks[0](model, x, y, targets=targets)
            broken_by = torch.where(merged.clean_correct, -1, -2)
            broken_by[merged.success & merged.clean_correct] = 0
            self._report(members, names[0], merged.success, merged.clean_correct, start)
            self._rest(model, merged, broken_by, targets, members, names, start)
        merged.attack = self.name
        merged.seconds = time.perf_counter() - start
        merged.trace = None
        merged.extras["broken_by"] = broken_by
        return merged

    def _report(
        self,
        members: Any,
        name: str,
        success: torch.Tensor,
        clean_correct: torch.Tensor,
        start: float,
    ) -> None:
        """Robust accuracy so far, after each member, as the reference AutoAttack prints it."""
        robust = float((clean_correct & ~success).float().mean())
        members.set_postfix_str(f"robust {robust:.1%}")
        members.update()
        note(
            "%s: robust accuracy %.2f%% after %s (%.0f s)",
            self.name,
            100 * robust,
            name,
            time.perf_counter() - start,
        )

    def _rest(
        self,
        model: nn.Module,
        merged: AttackResult,
        broken_by: torch.Tensor,
        targets: torch.Tensor | None,
        members: Any,
        names: list[str],
        start: float,
    ) -> None:
        """Every member after the first, each on the points still robust (focused members on
        the given share of those closest to the boundary)."""
        closest = margin_to_success(merged.logits.float(), merged.labels, merged.targets)
        flat: torch.Tensor | None = None
        for index, attack in enumerate(self.attacks[1:], start=1):
            todo = (~merged.success).nonzero().squeeze(1)
            share = self.shares[index]
            if share is not None and todo.numel() > 0:
                keep = math.ceil(share * todo.numel())  # 0: the gradient-free ones only
                chosen = todo[closest[todo].argsort(stable=True)[:keep]]
                if attack.query_only:
                    flat = self._flat(model, merged, flat, todo)
                    chosen = torch.cat([chosen, todo[flat[todo]]]).unique()
                todo = chosen
            if todo.numel() == 0:
                break
            sub_targets = targets[todo.to(targets.device)] if targets is not None else None
            result = attack(model, merged.inputs[todo], merged.labels[todo], targets=sub_targets)
            won = todo[result.success]
            merged.adversarial[won] = result.adversarial[result.success]
            merged.logits[won] = result.logits[result.success]
            merged.grad_evals[todo] += result.grad_evals
            merged.queries[todo] += result.queries
            merged.passes = merged.passes + result.passes
            broken_by[won] = index
            closest[todo] = torch.minimum(
                closest[todo],
                margin_to_success(result.logits.float(), result.labels, result.targets),
            )
            self._report(members, names[index], merged.success, merged.clean_correct, start)

    @staticmethod
    def _flat(
        model: nn.Module, merged: AttackResult, flat: torch.Tensor | None, todo: torch.Tensor
    ) -> torch.Tensor:
        """Per sample, whether its input gradient is zero or not finite: measured once, on the
        survivors ``todo`` (False for the others), and kept for the later members."""
        if flat is not None:
            return flat
        with counted_passes(model) as passes:  # part of the ensemble's cost
            zero, nonfinite = flat_gradients(model, merged.inputs[todo], merged.labels[todo])
        merged.passes = merged.passes + passes
        found = torch.zeros(len(merged.labels), dtype=torch.bool)
        found[todo] = zero | nonfinite
        return found


class EnsemblePreset:
    """A registered ensemble: attacks under fixed settings, run in order on still-robust points.

    Built from (attack class, settings) pairs, it makes an :class:`Ensemble` whose members share
    the keywords it is called with and differ in their own settings:
    ``EnsemblePreset((APGD, {'loss': 'ce'}), (APGD, {'loss': 'dlr'}))`` is APGD-CE then
    APGD-DLR. It accepts every keyword some member accepts (less the ones a member fixes) and
    hands each one to the members that take it: ``steps`` reaches the gradient attacks,
    ``queries`` the query-only ones, ``norm``, ``eps`` and the common keywords all of them. Its
    signature lists them, so the registry, the CLI and configs read it like any attack's.
    A member given as (attack class, settings, share) is focused on that share of the
    still-robust samples closest to the boundary (see :class:`Ensemble`).
    """

    def __init__(
        self,
        *members: tuple[type[Attack], Mapping[str, Any]]
        | tuple[type[Attack], Mapping[str, Any], float],
    ) -> None:
        if not members:
            raise ValueError("EnsemblePreset needs at least one (attack class, settings) pair.")
        self.members = [(member[0], dict(member[1])) for member in members]
        self.shares: list[float | None] = [
            float(member[2]) if len(member) > 2 else None for member in members
        ]
        fixed = {key for _, settings in self.members for key in settings}
        self._accepted = [_keywords(attack) for attack, _ in self.members]
        parameters: dict[str, inspect.Parameter] = {}
        for attack, _ in self.members:
            for name, p in inspect.signature(attack).parameters.items():
                if p.kind is p.KEYWORD_ONLY and name not in fixed and name not in parameters:
                    parameters[name] = p
        if any(_takes_common(attack) for attack, _ in self.members):
            parameters["common"] = inspect.Parameter("common", inspect.Parameter.VAR_KEYWORD)
        self.__signature__ = inspect.Signature(list(parameters.values()))

    @property
    def minimal(self) -> bool:
        return all(attack.minimal for attack, _ in self.members)

    @property
    def revision(self) -> tuple[int, ...]:
        """The members' revisions, in order: a member whose results change makes the
        ensemble's stored results stale too (read where an attack's revision is)."""
        return tuple(attack.revision for attack, _ in self.members)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"({attack.__name__}, {settings!r}" + (f", {share!r})" if share is not None else ")")
            for (attack, settings), share in zip(self.members, self.shares)
        )
        return f"EnsemblePreset({inner})"

    def __call__(self, **kwargs: Any) -> Ensemble:
        built = []
        for (attack, settings), accepted in zip(self.members, self._accepted):
            own = {key: value for key, value in kwargs.items() if key in accepted}
            built.append(attack(**{**own, **settings}))
        return Ensemble(built, self.shares)


def _takes_common(attack: type[Attack]) -> bool:
    parameters = inspect.signature(attack).parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in parameters)


def _keywords(attack: type[Attack]) -> set[str]:
    """The keywords an attack class accepts: its own, plus the common ones when it passes
    ``**common`` on to ``Attack``."""
    parameters = inspect.signature(attack).parameters
    names = {name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    if _takes_common(attack):
        names |= set(COMMON)
    return names
