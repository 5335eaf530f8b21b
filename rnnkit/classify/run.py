"""Classification runs: configuration, data, the training task, loading and predicting.

The run folder has the language models' layout (``config.json``, ``metrics.jsonl``,
``checkpoints/``, ``best``, ``last``); a checkpoint's ``config.json`` holds
``kind: "classifier"``, the configuration, the tokenizer and the class names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn import functional as F

from rnnkit.classify.data import (
    LabelledTexts,
    TextEncoder,
    bucket_batches,
    class_names,
    fit_tokenizer,
    pad,
    read_labelled,
    stratified_split,
)
from rnnkit.classify.metrics import confusion_matrix, scores
from rnnkit.classify.model import Classifier, ClassifierConfig
from rnnkit.classify.vectors import read_vectors
from rnnkit.data.tokenizers import LEVELS, tokenizer_from_dict
from rnnkit.errors import UserError
from rnnkit.train import resume
from rnnkit.train.checkpoint import config_of_kind, load_checkpoint, rebuilding
from rnnkit.train.config import (
    CLASSIFIER_DEFAULT_EPOCHS,
    CLASSIFIER_TRAINING,
    AppConfig,
    TrainConfig,
    apply_default_budget,
)
from rnnkit.train.supervised import SupervisedTrainer, epoch_generator

logger = logging.getLogger(__name__)

KIND = "classifier"


@dataclass
class TextDataConfig:
    """Where the labelled texts are and how they become tokens."""

    path: str = ""
    text_col: str | None = None  # None: found by name (text, document, sentence, ...)
    label_col: str | None = None
    val: str | None = None  # a separate validation file; otherwise val_fraction of the data
    val_fraction: float = 0.1
    level: str = "char"
    min_count: int = 1  # char and word levels: rarer symbols become unknown
    max_vocab: int = 0  # word level
    vocab_size: int = 8000  # bpe level
    max_len: int = 400  # tokens read per text; 0 reads all
    pretrained_embeddings: str | None = None

    def validate(self) -> TextDataConfig:
        if self.level not in LEVELS:
            raise UserError(f"--level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.min_count < 1 or self.max_len < 0 or self.max_vocab < 0:
            raise UserError("--min-count must be at least 1, --max-len and --max-vocab >= 0")
        if self.level == "bpe" and self.vocab_size < 257:
            raise UserError(f"--vocab-size must be at least 257 for bpe, got {self.vocab_size}")
        return self


# chosen on NSMC's validation split at the full 600 s (best checkpoints): the bag of 1-3-grams
# 0.853 (1-2 0.852, 1-5 0.854, 1-3 with dropout 0.3 0.850, with weight decay 0.1 0.848)
# against 0.850 without it; with the bag, three members 0.861, four 0.864, five 0.862. A run
# saved before these has no `ngrams` or `members` in its config and loads with the library's
# plain single model
CLASSIFIER_MODEL = {"ngrams": 3, "members": 4}


@dataclass
class ClassifyConfig(AppConfig):
    data: TextDataConfig = field(default_factory=TextDataConfig)
    # `classify train`'s model: the library's Classifier with CLASSIFIER_MODEL's settings (above)
    model: ClassifierConfig = field(default_factory=lambda: ClassifierConfig(**CLASSIFIER_MODEL))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**CLASSIFIER_TRAINING))
    out: str = ""


class ClassifyData:
    """Training and validation texts, the classes, the fitted tokenizer, the token ids."""

    def __init__(self, config: TextDataConfig, seed: int, tokenizer=None, classes=None) -> None:
        labelled = read_labelled(config.path, config.text_col, config.label_col)
        config.text_col, config.label_col = labelled.text_col, labelled.label_col
        if config.val:
            train, valid = labelled, read_labelled(config.val, config.text_col,
                                                   config.label_col, what="--val")
        else:
            train_index, val_index = stratified_split(labelled.labels, config.val_fraction, seed)
            train, valid = _subset(labelled, train_index), _subset(labelled, val_index)
        self.classes = classes or class_names(train.labels, f"the label column of {train.source}"
                                              if train.label_col else train.source)
        self.train, self.valid = train, valid
        self.skipped_empty = labelled.skipped_empty
        self.tokenizer = tokenizer or fit_tokenizer(train.texts, config.level, config.min_count,
                                                    config.max_vocab, config.vocab_size)
        self.encoder = TextEncoder(self.tokenizer, config.max_len)
        self.train_ids = self.encoder.encode_many(train.texts)
        self.valid_ids = self.encoder.encode_many(valid.texts)
        self.train_targets = self.targets(train, "DATA")
        self.valid_targets = self.targets(valid, "--val" if config.val else "DATA")

    def targets(self, texts: LabelledTexts, what: str) -> torch.Tensor:
        index = {name: i for i, name in enumerate(self.classes)}
        unknown = sorted(set(texts.labels) - index.keys())
        if unknown:
            raise UserError(f"{what} {texts.source} has label(s) {', '.join(map(repr, unknown))} "
                            f"the training data lacks; the classes are {', '.join(self.classes)}")
        return torch.tensor([index[label] for label in texts.labels], dtype=torch.long)


def _subset(texts: LabelledTexts, indices: list[int]) -> LabelledTexts:
    return LabelledTexts([texts.texts[i] for i in indices], [texts.labels[i] for i in indices],
                         texts.source, texts.text_col, texts.label_col)


@torch.no_grad()
def predict_probabilities(model: Classifier, ids: list[list[int]], batch_size: int = 256):
    """``(N, classes)`` probabilities, computed in batches of similar length."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    result = torch.zeros(len(ids), model.config.classes)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        tokens, lengths = pad([ids[i] for i in chosen])
        result[chosen] = model(tokens, lengths).softmax(dim=-1)
    return result


class ClassifyTask:
    """Length-bucketed batches, cross-entropy, and accuracy / macro-F1 on validation."""

    def __init__(self, config: ClassifyConfig, data: ClassifyData) -> None:
        self.config, self.data = config, data
        self.lengths = [len(ids) for ids in data.train_ids]
        self._epoch, self._batches = -1, []

    def _epoch_batches(self, epoch: int) -> list:
        if epoch != self._epoch:
            generator = epoch_generator(self.config.train.seed, epoch)
            self._batches = bucket_batches(self.lengths, self.config.train.batch_size, generator)
            self._epoch = epoch
        return self._batches

    def batch_count(self) -> int:
        return len(self._epoch_batches(0))

    def batch_members(self, epoch: int, index: int) -> list[int]:
        return self._epoch_batches(epoch)[index]

    def make_batch(self, members: list[int]):
        tokens, lengths = pad([self.data.train_ids[i] for i in members])
        return tokens, lengths, self.data.train_targets[members]

    def loss(self, model, batch):
        tokens, lengths, targets = batch
        # an ensemble's members learn apart: the mean of their own losses
        logits = model(tokens, lengths, each=True)  # (K, N, classes)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.repeat(logits.shape[0]))
        return loss, len(targets)

    def validate(self, model, ranks=None) -> dict:
        train = self.config.train
        if ranks is not None and ranks.enabled:
            return self._validate_shared(model, ranks)
        probabilities = predict_probabilities(model, self.data.valid_ids,
                                              train.eval_batch_size or 256)
        targets = self.data.valid_targets
        loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), targets).item()
        result = scores(targets, probabilities.argmax(dim=1), len(self.data.classes))
        return {"score": 1.0 - result["accuracy"], "val_loss": loss,
                "val_accuracy": result["accuracy"], "val_macro_f1": result["macro_f1"],
                "val_confusion": result["confusion"]}

    def _validate_shared(self, model, ranks) -> dict:
        """Every N-th validation text on each rank; the summed loss and confusion counts of
        all ranks give the numbers one process computes."""
        classes = len(self.data.classes)
        mine = list(range(ranks.rank, len(self.data.valid_ids), ranks.world_size))
        targets = self.data.valid_targets[mine]
        probabilities = predict_probabilities(model, [self.data.valid_ids[i] for i in mine],
                                              self.config.train.eval_batch_size or 256)
        loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), targets, reduction="sum")
        confusion = confusion_matrix(targets, probabilities.argmax(dim=1), classes)
        summed = ranks.all_reduce_sum([loss.item(), *confusion.flatten().tolist()])
        confusion = torch.tensor(summed[1:]).round().long().view(classes, classes)
        true, predicted = [], []
        for row in range(classes):
            for column in range(classes):
                true += [row] * int(confusion[row, column])
                predicted += [column] * int(confusion[row, column])
        result = scores(torch.tensor(true), torch.tensor(predicted), classes)
        return {"score": 1.0 - result["accuracy"], "val_loss": summed[0] / len(true),
                "val_accuracy": result["accuracy"], "val_macro_f1": result["macro_f1"],
                "val_confusion": result["confusion"]}

    def checkpoint_config(self) -> dict:
        return {"kind": KIND, "run": self.config.to_dict(), "classes": self.data.classes,
                "tokenizer": self.data.tokenizer.to_dict()}

    def data_hash(self) -> str:
        return self.data.train.content_hash()


def start_classifier(config: ClassifyConfig, progress: bool = False,
                     embedding_given: bool = False):
    """A trainer for a fresh run, and the pretrained vectors it started from (or None).

    With pretrained vectors the embedding takes their size; ``embedding_given`` says the
    user asked for a size, which must then match.
    """
    config.data.validate()
    train = config.train
    apply_default_budget(train, CLASSIFIER_DEFAULT_EPOCHS)  # cosine decays over it
    train.validate()
    run_dir, ranks, restarted = resume.claim_run_folder(
        config, f"classify-{Path(config.data.path).stem}",
        lambda path: resume_classifier(path, {}, progress))
    if restarted is not None:
        return restarted, None
    data = ClassifyData(config.data, train.seed)
    config.model.vocab_size = data.encoder.vocab_size
    config.model.classes = len(data.classes)
    vectors = None
    if config.data.pretrained_embeddings:
        vectors = read_vectors(config.data.pretrained_embeddings, data.encoder.tokens())
        if embedding_given and config.model.embedding != vectors.dimension:
            raise UserError(f"--embedding {config.model.embedding} differs from the "
                            f"{vectors.dimension} numbers per vector of "
                            f"--pretrained-embeddings {config.data.pretrained_embeddings}")
        config.model.embedding = vectors.dimension
    elif config.model.freeze_embeddings:
        raise UserError("--freeze-embeddings needs --pretrained-embeddings FILE")
    torch.manual_seed(train.seed)
    model = Classifier(config.model)
    if vectors is not None:
        model.load_vectors(vectors.vectors, vectors.found)
    ranks.check_global_batch(train.batch_size, "examples")
    resume.write_run_config(run_dir, config, ranks)
    trainer = SupervisedTrainer(model, ClassifyTask(config, data), train, run_dir, progress,
                                score_name="val_error")
    return trainer, vectors


class ClassifierRun(NamedTuple):
    model: Classifier
    encoder: TextEncoder
    classes: list[str]
    config: ClassifyConfig
    path: Path


def _from_checkpoint(checkpoint) -> ClassifierRun:
    data = config_of_kind(checkpoint, KIND, "a classifier run")
    with rebuilding(checkpoint):
        config = ClassifyConfig.from_dict(data["run"])
        tokenizer = tokenizer_from_dict(data["tokenizer"])
        classes = list(data["classes"])
        model = Classifier(config.model)
        model.load_state_dict(checkpoint.tensors)
    model.eval()
    return ClassifierRun(model, TextEncoder(tokenizer, config.data.max_len), classes, config,
                         checkpoint.path)


def load_classifier(path: str | Path, tag: str = "best") -> ClassifierRun:
    """The model (eval mode), encoder, classes and configuration of a classifier run."""
    return _from_checkpoint(load_checkpoint(path, tag, trainer_state=False))


def resume_classifier(path: str | Path, overrides: dict, progress: bool = False):
    """Continue the run folder ``path`` from its last checkpoint; only budgets may change
    (``overrides``: ``{"max_steps": 20}`` or ``{"train.max_steps": 20}``; other settings,
    ``{"model.hidden": 12}``, only as saved)."""
    checkpoint = resume.load_last(path)
    run = _from_checkpoint(checkpoint)
    config, _ = resume.resumed_config(run.config, resume.train_overrides(overrides),
                                      {"model.bidirectional": "--unidirectional"})
    data = ClassifyData(config.data, config.train.seed, run.encoder.tokenizer, run.classes)
    run.model.train()
    trainer = SupervisedTrainer(run.model, ClassifyTask(config, data), config.train, path,
                                progress, score_name="val_error")
    return resume.continue_run(trainer, checkpoint, config, path)
