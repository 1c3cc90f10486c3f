"""Score-based black-box attacks: the model is only queried for its outputs, never differentiated."""

from saddlepoint.attacks.blackbox.one_pixel import OnePixel, PixelSweep, pixel_flip_map
from saddlepoint.attacks.blackbox.random_search import RandomSearch
from saddlepoint.attacks.blackbox.square import Square

__all__ = ["OnePixel", "PixelSweep", "RandomSearch", "Square", "pixel_flip_map"]
