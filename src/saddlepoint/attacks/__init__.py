"""Attacks: configured once, called on (model, x, y); see ``ATTACKS`` for the registry."""

from saddlepoint.attacks.apgd import APGD
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.attacks.blackbox import OnePixel, PixelSweep, RandomSearch, Square, pixel_flip_map
from saddlepoint.attacks.cw import CarliniWagnerL2
from saddlepoint.attacks.deepfool import DeepFool
from saddlepoint.attacks.ensemble import Ensemble
from saddlepoint.attacks.pgd import PGD, bim, fgm, fgsm
from saddlepoint.attacks.registry import ATTACKS, build_attack, register_attack
from saddlepoint.attacks.result import AttackResult
from saddlepoint.attacks.transfer import SurrogateEnsemble, TransferResult, transfer_attack

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
    "OnePixel",
    "PGD",
    "PixelSweep",
    "RandomSearch",
    "Square",
    "SurrogateEnsemble",
    "TransferResult",
    "bim",
    "build_attack",
    "fgm",
    "fgsm",
    "pixel_flip_map",
    "register_attack",
    "transfer_attack",
]
