"""Sequence classification with rnnkit's layers: labelled texts in, a trained classifier,
predictions and scores out (``rnnkit classify train | predict | eval``)."""

from rnnkit.classify.data import LabelledTexts, TextEncoder, read_labelled
from rnnkit.classify.metrics import scores
from rnnkit.classify.model import Classifier, ClassifierConfig
from rnnkit.classify.run import ClassifyConfig, load_classifier, start_classifier
from rnnkit.classify.vectors import read_vectors

__all__ = [
    "Classifier",
    "ClassifierConfig",
    "ClassifyConfig",
    "LabelledTexts",
    "TextEncoder",
    "load_classifier",
    "read_labelled",
    "read_vectors",
    "scores",
    "start_classifier",
]
