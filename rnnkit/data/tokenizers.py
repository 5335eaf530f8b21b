"""Tokenizers for text corpora: characters, whitespace words and byte-level BPE.

All three share one small interface — ``encode``, ``decode``, ``vocab`` and a
JSON-serialisable ``to_dict`` / :func:`tokenizer_from_dict` — so a run folder stores its
vocabulary in ``config.json`` and any model (language model, classifier) can reuse them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence

from rnnkit.errors import UserError

LEVELS = ("char", "word", "bpe")
UNKNOWN = "<unk>"
END_OF_LINE = "<eos>"


class UnknownTokenError(UserError):
    """Text holds symbols the vocabulary lacks (character level has no ``<unk>``)."""


class Tokenizer:
    """Maps text to token ids and back. Subclasses set ``level`` and implement the rest."""

    level = ""

    @property
    def vocab(self) -> list[str]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def unknown_symbols(self, text: str) -> list[str]:
        """Symbols of ``text`` the vocabulary lacks (mapped to ``<unk>`` or refused)."""
        return []

    def settings(self) -> dict:
        """What decides the token ids besides the vocabulary (used as a cache key)."""
        return {"level": self.level}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class CharTokenizer(Tokenizer):
    """One token per Unicode character; the vocabulary is the corpus's characters, sorted."""

    level = "char"

    def __init__(self, characters: Iterable[str]) -> None:
        self._characters = sorted(set(characters))
        if not self._characters:
            raise UserError("char tokenizer: the corpus has no characters to build a vocabulary")
        self._index = {character: i for i, character in enumerate(self._characters)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        return cls(seen)

    @property
    def vocab(self) -> list[str]:
        return list(self._characters)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[character] for character in text]
        except KeyError:
            unknown = self.unknown_symbols(text)
            offset = next(i for i, character in enumerate(text) if character not in self._index)
            shown = ", ".join(repr(character) for character in unknown[:5])
            raise UnknownTokenError(
                f"the text has {len(unknown)} character(s) the character vocabulary lacks "
                f"({shown}{', ...' if len(unknown) > 5 else ''}; first at character {offset}); "
                f"the vocabulary has {self.vocab_size} characters"
            ) from None

    def unknown_symbols(self, text: str) -> list[str]:
        return sorted(set(text) - self._index.keys())

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self._characters[int(i)] for i in ids)

    def to_dict(self) -> dict:
        return {"level": self.level, "characters": self._characters}


class WordTokenizer(Tokenizer):
    """Whitespace-separated words, ``<eos>`` at every line end, ``<unk>`` for rare words.

    As in pytorch/examples word_language_model: each line becomes its words plus ``<eos>``.
    Words seen fewer than ``min_count`` times (or beyond ``max_vocab``) become ``<unk>``.
    """

    level = "word"

    def __init__(self, words: Sequence[str], min_count: int = 1, max_vocab: int = 0) -> None:
        words = list(words)
        if words[:2] != [UNKNOWN, END_OF_LINE]:
            words = [UNKNOWN, END_OF_LINE] + [w for w in words if w not in (UNKNOWN, END_OF_LINE)]
        self._words = words
        self._index = {word: i for i, word in enumerate(words)}
        self.min_count = min_count
        self.max_vocab = max_vocab

    @classmethod
    def train(cls, texts: Iterable[str], min_count: int = 1, max_vocab: int = 0) -> WordTokenizer:
        if min_count < 1:
            raise UserError(f"--min-count must be at least 1, got {min_count}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text.split())
        # most frequent first, ties alphabetically, so the ids do not depend on file order
        ranked = sorted(
            (word for word, count in counts.items() if count >= min_count),
            key=lambda word: (-counts[word], word),
        )
        if max_vocab:
            ranked = [w for w in ranked if w not in (UNKNOWN, END_OF_LINE)][: max_vocab - 2]
        return cls(ranked, min_count=min_count, max_vocab=max_vocab)

    @property
    def vocab(self) -> list[str]:
        return list(self._words)

    def split(self, text: str) -> list[str]:
        """The word tokens of ``text``: its words, with ``<eos>`` after every line break."""
        tokens: list[str] = []
        lines = text.split("\n")
        for number, line in enumerate(lines):
            tokens.extend(line.split())
            if number < len(lines) - 1:
                tokens.append(END_OF_LINE)
        return tokens

    def encode(self, text: str) -> list[int]:
        unknown = self._index[UNKNOWN]
        return [self._index.get(word, unknown) for word in self.split(text)]

    def unknown_symbols(self, text: str) -> list[str]:
        return sorted({word for word in self.split(text) if word not in self._index})

    def decode(self, ids: Sequence[int]) -> str:
        pieces: list[str] = []
        for i in ids:
            word = self._words[int(i)]
            if word == END_OF_LINE:
                pieces.append("\n")
            else:
                if pieces and not pieces[-1].endswith("\n"):
                    pieces.append(" ")
                pieces.append(word)
        return "".join(pieces)

    def to_dict(self) -> dict:
        return {
            "level": self.level,
            "words": self._words,
            "min_count": self.min_count,
            "max_vocab": self.max_vocab,
        }


class BPETokenizer(Tokenizer):
    """Byte-level BPE trained with the Hugging Face ``tokenizers`` library.

    Byte level means every text encodes (no ``<unk>``) and decoding gives the text back.
    """

    level = "bpe"

    def __init__(self, serialized: str) -> None:
        from tokenizers import Tokenizer as HuggingFaceTokenizer

        self._serialized = serialized
        self._tokenizer = HuggingFaceTokenizer.from_str(serialized)
        self._vocab = [
            token
            for token, _ in sorted(self._tokenizer.get_vocab().items(), key=lambda item: item[1])
        ]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1000) -> BPETokenizer:
        from tokenizers import Tokenizer as HuggingFaceTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise UserError(
                f"--vocab-size must be at least 257 for byte-level BPE, got {vocab_size}"
            )
        tokenizer = HuggingFaceTokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer.to_str())

    @property
    def vocab(self) -> list[str]:
        return list(self._vocab)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self._tokenizer.encode_batch(texts)]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode([int(i) for i in ids])

    def to_dict(self) -> dict:
        return {"level": self.level, "tokenizer": json.loads(self._serialized)}


def train_tokenizer(level: str, texts: Iterable[str], **settings) -> Tokenizer:
    """A tokenizer of ``level`` fitted to ``texts``.

    Settings: word ``min_count``, ``max_vocab``; bpe ``vocab_size``; char none.
    """
    if level == "char":
        return CharTokenizer.train(texts)
    if level == "word":
        return WordTokenizer.train(texts, **settings)
    if level == "bpe":
        return BPETokenizer.train(texts, **settings)
    raise UserError(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")


def tokenizer_from_dict(data: dict) -> Tokenizer:
    """The tokenizer that :meth:`Tokenizer.to_dict` described."""
    level = data.get("level") if isinstance(data, dict) else None
    try:
        if level == "char":
            return CharTokenizer(data["characters"])
        if level == "word":
            return WordTokenizer(data["words"], data.get("min_count", 1), data.get("max_vocab", 0))
        if level == "bpe":
            return BPETokenizer(json.dumps(data["tokenizer"]))
    except UserError:
        raise
    except Exception as error:  # a hand-edited or truncated config.json
        raise UserError(f"the saved {level} tokenizer is malformed ({error})") from None
    raise UserError(f"the saved tokenizer has an unknown level {level!r}; expected one of {LEVELS}")
