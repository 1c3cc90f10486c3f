"""Attacks: configured once, called on (model, x, y); see ``ATTACKS`` for the registry.

Grouped by family: ``gradient`` (fixed-budget gradient attacks: PGD and its presets, APGD),
``minimal`` (minimal-norm: DeepFool, CW, FAB), ``blackbox`` (query-only: random search, one-pixel,
Square, and the label-only RayS, HopSkipJump and Boundary), and, beside the machinery (``base``, ``result``, ``runtime``, ``registry``), the
attacks built from other attacks or models (``ensemble``, ``transfer``, ``generative``).
"""

from saddlepoint.attacks.base import Adversary, Attack, BatchContext, BatchOutput
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
    pixel_flip_map,
)
from saddlepoint.attacks.ensemble import Ensemble, EnsemblePreset
from saddlepoint.attacks.generative import GenerativeAttack, PerturbationGenerator
from saddlepoint.attacks.gradient import APGD, PGD, APGDTargeted, bim, fgm, fgsm
from saddlepoint.attacks.minimal import FAB, CarliniWagnerL2, DeepFool, FABMinimal
from saddlepoint.attacks.registry import ATTACKS, build_attack, list_attacks, register_attack
from saddlepoint.attacks.result import AttackResult
from saddlepoint.attacks.transfer import SurrogateEnsemble, TransferResult, transfer_attack

__all__ = [
    "APGD",
    "Adversary",
    "APGDTargeted",
    "ATTACKS",
    "Attack",
    "AttackResult",
    "BatchContext",
    "BatchOutput",
    "CarliniWagnerL2",
    "DeepFool",
    "Ensemble",
    "EnsemblePreset",
    "FAB",
    "FABMinimal",
    "GenerativeAttack",
    "Boundary",
    "BoundaryMinimal",
    "HopSkipJump",
    "HopSkipJumpMinimal",
    "OnePixel",
    "PGD",
    "PerturbationGenerator",
    "PixelSweep",
    "RandomSearch",
    "RayS",
    "Square",
    "SurrogateEnsemble",
    "TransferResult",
    "bim",
    "build_attack",
    "fgm",
    "fgsm",
    "list_attacks",
    "pixel_flip_map",
    "register_attack",
    "transfer_attack",
]
