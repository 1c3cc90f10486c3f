"""AttackResult.metrics: which images the perturbation statistics are taken over."""

import math

import torch

from saddlepoint.attacks import AttackResult


def result(clean_pred, adv_pred, shift):
    """Four 1x2x2 images, label 0; logits that predict ``clean_pred`` / ``adv_pred``."""
    n = len(clean_pred)
    inputs = torch.full((n, 1, 2, 2), 0.5)
    adversarial = inputs + torch.tensor(shift).view(n, 1, 1, 1)
    logits = torch.nn.functional.one_hot(torch.tensor(adv_pred), 3).float()
    clean = torch.nn.functional.one_hot(torch.tensor(clean_pred), 3).float()
    zeros = torch.zeros(n, dtype=torch.long)
    return AttackResult("x", inputs, adversarial, zeros, logits, clean, zeros, zeros)


def test_norms_are_over_the_images_the_attack_had_to_move_and_broke():
    # image 0: correct, broken by 0.2; image 1: correct, broken by 0.4; image 2: misclassified
    # before the attack (zero perturbation); image 3: correct and not broken (0.1).
    metrics = result([0, 0, 1, 0], [1, 2, 1, 0], [0.2, 0.4, 0.0, 0.1]).metrics()
    assert metrics["moved"] == 2
    assert math.isclose(metrics["linf_mean"], 0.3, rel_tol=1e-6)
    assert math.isclose(metrics["l2_mean"], 0.3 * 2, rel_tol=1e-6)  # 4 pixels: L2 = 2 * shift
    assert math.isclose(metrics["rho_adv"], 0.3 * 2 / 1.0, rel_tol=1e-6)  # ||x||_2 = 1
    assert math.isclose(metrics["linf_max"], 0.4, rel_tol=1e-6)
    # the DeepFool paper's averaging: every image as returned, (0.4 + 0.8 + 0 + 0.2) / 4
    assert math.isclose(metrics["rho_adv_all"], (0.4 + 0.8 + 0.0 + 0.2) / 4, rel_tol=1e-6)


def test_norms_are_nan_when_nothing_was_broken():
    metrics = result([0, 1], [0, 1], [0.1, 0.0]).metrics()
    assert metrics["moved"] == 0 and math.isnan(metrics["l2_median"])
    assert metrics["robust_accuracy"] == 0.5
