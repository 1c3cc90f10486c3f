"""Defenses: training recipes (adversarial, N-FGSM, GradAlign, TRADES, noise) and preprocessing layers
(quantization) with the tools to attack through them honestly (BPDA, EOT)."""

from saddlepoint.defenses.adversarial import AdversarialTraining
from saddlepoint.defenses.eot import ExpectationOverTransformation, RandomNoiseInput
from saddlepoint.defenses.fast import GradAlignTraining, NFGSMTraining
from saddlepoint.defenses.noise import NoiseTraining
from saddlepoint.defenses.quantize import Quantize, QuantizedModel, bpda, parse_quantize
from saddlepoint.defenses.registry import DEFENSES, build_defense
from saddlepoint.defenses.trades import Trades

__all__ = [
    "DEFENSES",
    "AdversarialTraining",
    "ExpectationOverTransformation",
    "GradAlignTraining",
    "NFGSMTraining",
    "NoiseTraining",
    "Quantize",
    "QuantizedModel",
    "RandomNoiseInput",
    "Trades",
    "bpda",
    "build_defense",
    "parse_quantize",
]
