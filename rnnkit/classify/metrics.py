"""Classification scores: accuracy, macro-averaged F1 and the confusion matrix."""

from __future__ import annotations

import torch


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, classes: int):
    """``(classes, classes)`` counts: row = true class, column = predicted class."""
    flat = targets.long() * classes + predictions.long()
    return torch.bincount(flat, minlength=classes * classes).view(classes, classes)


def scores(targets: torch.Tensor, predictions: torch.Tensor, classes: int) -> dict:
    """``accuracy``, ``macro_f1`` (F1 per class, averaged with equal weight; a class never
    predicted nor present counts 0) and ``confusion`` as nested lists."""
    confusion = confusion_matrix(targets, predictions, classes)
    true_positive = confusion.diag().double()
    predicted = confusion.sum(dim=0).double()
    actual = confusion.sum(dim=1).double()
    denominator = predicted + actual
    f1 = torch.where(denominator > 0, 2 * true_positive / denominator.clamp_min(1), 0.0)
    total = int(confusion.sum())
    return {"accuracy": float(true_positive.sum() / max(total, 1)),
            "macro_f1": float(f1.mean()), "confusion": confusion.tolist(), "count": total}
