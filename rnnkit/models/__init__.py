"""Small task models built on rnnkit's layers."""

from rnnkit.models.language_model import LanguageModel, ModelConfig

__all__ = ["LanguageModel", "ModelConfig"]
