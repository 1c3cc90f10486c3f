"""Black-box attacks: the model is only queried, never differentiated; score-based (Square,
random search, one pixel) or decision-based, from its label alone (RayS, HopSkipJump, Boundary)."""

from saddlepoint.attacks.blackbox.boundary import Boundary, BoundaryMinimal
from saddlepoint.attacks.blackbox.hsj import HopSkipJump, HopSkipJumpMinimal
from saddlepoint.attacks.blackbox.one_pixel import OnePixel, PixelSweep, pixel_flip_map
from saddlepoint.attacks.blackbox.random_search import RandomSearch
from saddlepoint.attacks.blackbox.rays import RayS
from saddlepoint.attacks.blackbox.square import Square

__all__ = [
    "Boundary",
    "BoundaryMinimal",
    "HopSkipJump",
    "HopSkipJumpMinimal",
    "OnePixel",
    "PixelSweep",
    "RandomSearch",
    "RayS",
    "Square",
    "pixel_flip_map",
]
