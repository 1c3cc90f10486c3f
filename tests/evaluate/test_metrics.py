import pytest
import torch

from saddlepoint.evaluate import confusion_matrix, summarize_logits


def test_confusion_matrix_counts():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    matrix = confusion_matrix(predictions, labels, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert int(matrix.sum()) == 6


def test_summary_of_confident_correct_logits():
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0], [10.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    summary = summarize_logits(logits, labels)
    assert summary["accuracy"] == pytest.approx(2 / 3)
    assert abs(summary["mean_confidence"] - (2 * 0.99995 + 0.0000454) / 3) < 1e-4
