"""Text data: tokenizers (char, word, BPE), corpora, the token cache, BPTT batches."""

from rnnkit.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    tokenizer_from_dict,
    train_tokenizer,
)

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "WordTokenizer",
    "tokenizer_from_dict",
    "train_tokenizer",
]
