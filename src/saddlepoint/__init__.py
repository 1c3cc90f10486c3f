"""saddlepoint: adversarial robustness of image classifiers, end to end.

min over weights of max over bounded perturbations of the loss: attacks solve the inner max,
defenses the outer min, and the toolkit measures both.
"""

__version__ = "0.1.0"
