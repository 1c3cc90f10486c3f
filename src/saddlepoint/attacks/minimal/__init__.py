"""Minimal-norm attacks: the smallest perturbation that flips the label (DeepFool, CW-L2)."""

from saddlepoint.attacks.minimal.cw import CarliniWagnerL2
from saddlepoint.attacks.minimal.deepfool import DeepFool

__all__ = ["CarliniWagnerL2", "DeepFool"]
