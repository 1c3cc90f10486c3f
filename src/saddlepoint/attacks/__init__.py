"""Attacks: configured once, called on (model, x, y); see ``ATTACKS`` for the registry."""

from saddlepoint.attacks.apgd import APGD
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.attacks.cw import CarliniWagnerL2
from saddlepoint.attacks.deepfool import DeepFool
from saddlepoint.attacks.ensemble import Ensemble
from saddlepoint.attacks.pgd import PGD, bim, fgm, fgsm
from saddlepoint.attacks.registry import ATTACKS, build_attack, register_attack
from saddlepoint.attacks.result import AttackResult

__all__ = [
    "APGD",
    "ATTACKS",
    "Attack",
    "AttackResult",
    "BatchContext",
    "BatchOutput",
    "CarliniWagnerL2",
    "DeepFool",
    "Ensemble",
    "PGD",
    "bim",
    "build_attack",
    "fgm",
    "fgsm",
    "register_attack",
]
