"""Attacks by name. Variants are presets of one class, not subclasses (FGSM is one PGD step);
ensembles are presets of several (``EnsemblePreset``). Every entry is treated alike: its keywords
come from its builder's signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from saddlepoint.attacks.base import COMMON, Adversary, Attack
from saddlepoint.attacks.blackbox import (
    Boundary,
    BoundaryMinimal,
    HopSkipJump,
    HopSkipJumpMinimal,
    OnePixel,
    PixelSweep,
    RandomSearch,
    RayS,
    Square,
)
from saddlepoint.attacks.ensemble import EnsemblePreset
from saddlepoint.attacks.gradient import APGD, PGD, APGDTargeted
from saddlepoint.attacks.minimal import FAB, CarliniWagnerL2, DeepFool, FABMinimal
from saddlepoint.registry import Registry
from saddlepoint.validation import check_keywords, unknown_name_error


@dataclass(frozen=True)
class AttackEntry:
    """A registered attack: the class (or builder), preset arguments and a description."""

    name: str
    builder: Callable[..., Adversary]
    preset: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def minimal(self) -> bool:
        """Whether the attack is minimal-norm (no radius): read from the builder, never built."""
        return bool(getattr(self.builder, "minimal", False))

    @property
    def stackable(self) -> bool:
        """Whether the sweep engine may stack this attack's configurations into one run (the
        builder says so; presets built by functions, such as fgsm, do not)."""
        return bool(getattr(self.builder, "stackable", False))

    def arguments(self) -> dict[str, Any]:
        """Every keyword the attack accepts, with the preset's values over the defaults. A
        builder that passes ``**common`` on to ``Attack`` accepts the keywords in ``COMMON``."""
        params = inspect.signature(self.builder).parameters
        values = {name: p.default for name, p in params.items() if p.kind is p.KEYWORD_ONLY}
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            base = inspect.signature(Attack).parameters
            values.update({k: base[k].default for k in COMMON})
        values.update(self.preset)
        return values


ATTACKS: Registry[AttackEntry] = Registry("attack")


def list_attacks() -> dict[str, str]:
    """Every registered attack's name and one-line description."""
    return {name: entry.description for name, entry in ATTACKS.items()}


def register_attack(
    name: str,
    builder: Callable[..., Any],
    preset: dict[str, Any] | None = None,
    description: str = "",
) -> None:
    """Add an attack to the registry: the CLI, configs and the contract tests pick it up."""
    ATTACKS.register(name, AttackEntry(name, builder, dict(preset or {}), description))


register_attack(
    "fgsm", PGD, {"norm": "linf", "steps": 1, "random_start": False}, "FGSM: one signed step of eps"
)
register_attack(
    "fgm",
    PGD,
    {"norm": "l2", "steps": 1, "random_start": False},
    "FGM: one L2-normalized step of eps",
)
register_attack(
    "fgsm-rs",
    PGD,
    {"steps": 1, "random_start": True, "rel_step": 1.25},
    "FGSM from a random start, step 1.25 eps ('fast' adversarial training, Wong et al. 2020)",
)
register_attack("bim", PGD, {"random_start": False}, "BIM / I-FGSM: PGD from x (no random start)")
register_attack("pgd", PGD, {}, "PGD (Madry et al. 2018): random start, restarts, any loss")
register_attack("apgd", APGD, {"loss": "ce"}, "Auto-PGD (Croce & Hein 2020), CE loss, 100 steps")
register_attack("apgd-dlr", APGD, {"loss": "dlr"}, "Auto-PGD with the DLR loss")
register_attack(
    "apgd-ensemble",
    EnsemblePreset((APGD, {"loss": "ce"}), (APGD, {"loss": "dlr"})),
    {"early_stop": True},  # a broken sample stays broken: stopping it changes no number
    "APGD-CE then APGD-DLR on still-robust points (AutoAttack's first two attacks)",
)
register_attack(
    "apgd-t",
    APGDTargeted,
    {},
    "APGD-T: APGD on the targeted DLR loss over the top 9 wrong classes (AutoAttack's)",
)
register_attack(
    "apgd-ce-t",
    EnsemblePreset((APGD, {"loss": "ce"}), (APGDTargeted, {})),
    {},
    "APGD-CE then APGD-T on still-robust points (the APGD half of AutoAttack 'standard')",
)
register_attack(
    "apgd-strong",
    EnsemblePreset((APGD, {"loss": "ce"}), (APGDTargeted, {}), (APGD, {"loss": "dlr"})),
    {"early_stop": True},  # a broken sample stays broken: stopping it changes no number
    "APGD-CE, then APGD-T, then APGD-DLR on still-robust points (one run each; 'strongest' adds "
    "restarts, FAB-T and Square)",
)
register_attack(
    "autoattack",
    EnsemblePreset(
        (APGD, {"loss": "ce"}), (APGDTargeted, {}), (FAB, {"targeted": True}), (Square, {})
    ),
    {"early_stop": True},
    "AutoAttack 'standard' (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square (5,000 queries), "
    "each on the points the previous ones left",
)
register_attack(
    "strongest",
    EnsemblePreset(
        (APGD, {"loss": "ce", "restarts": 5}),
        (APGD, {"loss": "dlr", "restarts": 5}),
        (APGDTargeted, {}),
        (FAB, {"targeted": True}),
        (Square, {}),
    ),
    {"early_stop": True},
    "AutoAttack 'standard' with restarts and APGD-DLR: APGD-CE and APGD-DLR with 5 random "
    "restarts each, APGD-T, FAB-T, Square 5,000, each on the points the previous ones left (the "
    "evaluation every defense number comes from)",
)
register_attack(
    "adaptive",
    EnsemblePreset(
        (APGD, {"loss": "ce"}),
        (APGD, {"loss": "dlr"}),
        (APGDTargeted, {"target_classes": 3}),
        (APGD, {"loss": "ce", "restarts": 7}, 0.25),
        (APGDTargeted, {"target_classes": 9}, 0.1),
        (Square, {}, 0.1),
    ),
    {"early_stop": True, "queries": 5000},
    "a cheaper evaluation aiming at AutoAttack's number: APGD-CE, APGD-DLR and APGD-T over the "
    "top 3 targets on still-robust points; then APGD-CE with 7 random restarts on the quarter "
    "of the survivors closest to the boundary, APGD-T over 9 targets and Square 5,000 on the "
    "closest tenth (measured beside AutoAttack in bench/autoattack.py)",
)
register_attack(
    "autoattack-rand",
    EnsemblePreset((APGD, {"loss": "ce", "eot": 20}), (APGD, {"loss": "dlr", "eot": 20})),
    {"early_stop": True},
    "AutoAttack 'rand', for randomized defenses: APGD-CE then APGD-DLR, gradients averaged "
    "over 20 draws (EOT)",
)
register_attack(
    "fab", FAB, {}, "FAB (Croce & Hein 2020) within eps: boundary projections, Linf/L2/L1"
)
register_attack(
    "fab-t", FAB, {"targeted": True}, "FAB-T: FAB towards each of the top 9 wrong classes"
)
register_attack(
    "fab-minimal", FABMinimal, {}, "FAB as a minimal-norm attack: the closest point it finds"
)
register_attack("deepfool", DeepFool, {}, "DeepFool (2016): minimal L2/Linf perturbation")
register_attack("cw", CarliniWagnerL2, {}, "Carlini-Wagner L2 (2017) with a search over c")
register_attack(
    "random-search", RandomSearch, {}, "query-only: keep random steps that lower p(y) (seed 002)"
)
register_attack("square", Square, {}, "Square attack (2020), query-only, Linf or L2")
register_attack(
    "rays", RayS, {}, "RayS (2020): hard-label ray search, the model's label only, Linf"
)
register_attack(
    "hsj",
    HopSkipJump,
    {},
    "HopSkipJump (2020): hard-label boundary walk, the model's label only, L2 or Linf",
)
register_attack(
    "hsj-minimal",
    HopSkipJumpMinimal,
    {},
    "HopSkipJump spending its whole budget: the closest boundary point (minimal-norm)",
)
register_attack(
    "boundary",
    Boundary,
    {},
    "Boundary attack (2018): hard-label random walk along the boundary, the model's label only, L2",
)
register_attack(
    "boundary-minimal",
    BoundaryMinimal,
    {},
    "the Boundary attack spending its whole budget: the closest point it reached (minimal-norm)",
)
register_attack(
    "one-pixel", OnePixel, {}, "differential evolution over 1 (or k) pixels (Su et al. 2019)"
)
register_attack(
    "pixel-sweep", PixelSweep, {}, "set each pixel in turn to a colour; counts flipping positions"
)


def build_attack(name: str, **kwargs: Any) -> Adversary:
    """Configure attack ``name``; ``kwargs`` override its preset (unknown ones: TypeError)."""
    if name not in ATTACKS:
        raise unknown_name_error("attack", name, ATTACKS)
    entry = ATTACKS[name]
    check_keywords(f"attack {name!r}", kwargs, entry.arguments())
    built = entry.builder(**{**entry.preset, **kwargs})
    # A preset's results carry its own name ('fgsm', 'strongest'), not its class's ('pgd').
    setattr(built, "name", name)  # noqa: B010 - Attack.name is a class default
    return built
