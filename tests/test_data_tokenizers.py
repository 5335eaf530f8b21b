"""Tokenizers: round trips, vocabularies, unknown symbols, and JSON serialisation."""

from __future__ import annotations

import json

import pytest

from rnnkit.data.tokenizers import (
    END_OF_LINE,
    UNKNOWN,
    UnknownTokenError,
    tokenizer_from_dict,
    train_tokenizer,
)
from rnnkit.errors import UserError

TEXT = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    "It is the east, and Juliet is the sun.\n\nJULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n"
)


def reloaded(tokenizer):
    return tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())))


def test_char_round_trip_and_sorted_vocabulary():
    tokenizer = train_tokenizer("char", [TEXT[:50], TEXT[50:]])
    assert tokenizer.vocab == sorted(set(TEXT))
    ids = tokenizer.encode(TEXT)
    assert len(ids) == len(TEXT)
    assert ids[0] == tokenizer.vocab.index("R")
    assert tokenizer.decode(ids) == TEXT
    assert reloaded(tokenizer).encode(TEXT) == ids


def test_char_unknown_characters_are_named():
    tokenizer = train_tokenizer("char", ["abc"])
    assert tokenizer.unknown_symbols("abz!") == ["!", "z"]
    with pytest.raises(UnknownTokenError, match=r"2 character\(s\).*'!', 'z'.*character 2"):
        tokenizer.encode("abz!")


def test_word_vocabulary_frequency_order_unk_and_eos():
    tokenizer = train_tokenizer("word", ["a b a\nc a b\n"], min_count=2)
    assert tokenizer.vocab == [UNKNOWN, END_OF_LINE, "a", "b"]
    ids = tokenizer.encode("a c b\nz\n")
    assert ids == [2, 0, 3, 1, 0, 1]
    assert tokenizer.decode(ids) == "a <unk> b\n<unk>\n"
    assert tokenizer.unknown_symbols("a c b\nz") == ["c", "z"]
    assert reloaded(tokenizer).vocab == tokenizer.vocab


def test_word_max_vocab_keeps_most_frequent():
    tokenizer = train_tokenizer("word", ["x x x y y z\n"], max_vocab=4)
    assert tokenizer.vocab == [UNKNOWN, END_OF_LINE, "x", "y"]


def test_word_lines_as_pytorch_examples():
    # pytorch/examples word_language_model: every line, empty ones too, ends with <eos>
    tokenizer = train_tokenizer("word", ["a b\n\nc\n"])
    assert [tokenizer.vocab[i] for i in tokenizer.encode("a b\n\nc\n")] == [
        "a", "b", END_OF_LINE, END_OF_LINE, "c", END_OF_LINE,
    ]


def test_bpe_round_trip_any_text():
    tokenizer = train_tokenizer("bpe", [TEXT] * 20, vocab_size=300)
    assert 257 <= tokenizer.vocab_size <= 300
    ids = tokenizer.encode(TEXT)
    assert len(ids) < len(TEXT.encode())  # merges were learnt
    assert tokenizer.decode(ids) == TEXT
    unseen = "Zebra £ 東京\n"  # byte level: characters never seen still encode
    assert tokenizer.decode(tokenizer.encode(unseen)) == unseen
    again = reloaded(tokenizer)
    assert again.encode(TEXT) == ids and again.vocab == tokenizer.vocab


def test_bad_levels_and_saved_dicts():
    with pytest.raises(UserError, match="--level must be one of char, word, bpe"):
        train_tokenizer("bytes", ["abc"])
    with pytest.raises(UserError, match="unknown level"):
        tokenizer_from_dict({"level": "morse"})
    with pytest.raises(UserError, match="malformed"):
        tokenizer_from_dict({"level": "word"})
    with pytest.raises(UserError, match="at least 257"):
        train_tokenizer("bpe", ["abc"], vocab_size=100)
