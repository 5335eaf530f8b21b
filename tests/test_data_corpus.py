"""Corpora, the memmap token cache and BPTT streams: contents, reuse and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.data.batching import StreamBatches, check_one_batch
from rnnkit.data.cache import encode_corpus, tokenizer_for
from rnnkit.data.corpus import Corpus
from rnnkit.data.language_data import prepare_language_data
from rnnkit.errors import UserError
from rnnkit.train.config import DataConfig


def test_folder_corpus_is_sorted_txt_files_joined_by_line_breaks(tmp_path, caplog):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first\r\nline\n")
    (tmp_path / "README.md").write_text("# about this corpus\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\0\0")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("hidden")
    with caplog.at_level("INFO", logger="rnnkit.data.corpus"):
        corpus = Corpus(tmp_path)
    assert [file.name for file in corpus.files] == ["a.txt", "b.txt"]
    assert corpus.read() == "first\nline\nsecond\n"  # each file ends its last line
    assert len(corpus.content_hash) == 64
    assert caplog.messages == [f"Corpus folder {tmp_path}: reading 2 .txt file(s): a.txt, "
                               f"b.txt; not read: README.md, image.png"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty; expected utf-8 text"),
        (b"  \n\n", "holds only whitespace"),
        (b"abc\0def", "looks binary \\(a NUL byte at byte offset 3\\)"),
        (b"caf\xe9 au lait", "byte 0xe9 at byte offset 3 cannot be decoded.*--encoding"),
        (b"ok \xe2\x82", "ends inside a multi-byte character"),
    ],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        Corpus(path)


def test_other_encoding_and_missing_paths(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café au lait\n".encode("latin-1"))
    assert Corpus(path, encoding="latin-1").read() == "café au lait\n"
    with pytest.raises(UserError, match="not an encoding Python knows"):
        Corpus(path, encoding="klingon")
    with pytest.raises(UserError, match="corpus .*nowhere.txt does not exist"):
        Corpus(tmp_path / "nowhere.txt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "data.bin").write_bytes(b"1")
    with pytest.raises(UserError, match="folder .* has no text files \\(expected .txt"):
        Corpus(tmp_path / "empty")


def test_token_cache_is_reused_and_memmapped(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be\nthat is the question\n" * 5)
    corpus = Corpus(path)
    tokenizer, hit = tokenizer_for(corpus, "word", {"min_count": 1}, tmp_path / "cache")
    assert not hit
    tokens, hit = encode_corpus(corpus, tokenizer, tmp_path / "cache")
    assert not hit and tokens.dtype == np.uint16
    assert list(tokens[:7]) == tokenizer.encode("to be or not to be\n")
    again, hit_again = tokenizer_for(Corpus(path), "word", {"min_count": 1}, tmp_path / "cache")
    assert hit_again and again.vocab == tokenizer.vocab
    cached, hit = encode_corpus(Corpus(path), again, tmp_path / "cache")
    assert hit and isinstance(cached, np.memmap)
    np.testing.assert_array_equal(cached, tokens)
    # other settings or other text: another entry
    _, hit = tokenizer_for(corpus, "word", {"min_count": 2}, tmp_path / "cache")
    assert not hit
    path.write_text("something else entirely\n")
    _, hit = encode_corpus(Corpus(path), tokenizer, tmp_path / "cache")
    assert not hit


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("abcabcabc\n")
    tokenizer, _ = tokenizer_for(Corpus(path), "char", {}, tmp_path)
    tokens = np.array(encode_corpus(Corpus(path), tokenizer, tmp_path)[0])
    entry = next((tmp_path / "tokens").iterdir())
    (entry / "tokens.bin").write_bytes(b"\0")
    rebuilt, hit = encode_corpus(Corpus(path), tokenizer, tmp_path)
    assert not hit
    np.testing.assert_array_equal(rebuilt, tokens)


def test_streams_are_contiguous_and_continue_across_batches():
    tokens = np.arange(43)
    batches = StreamBatches(tokens, batch_size=3, seq_len=4)
    assert batches.stream_length == 14 and len(batches) == 4  # 13 pairs per stream: 4+4+4+1
    inputs, targets = batches.batch(0)
    assert inputs.shape == (4, 3)
    assert inputs[:, 1].tolist() == [14, 15, 16, 17]
    assert targets[:, 1].tolist() == [15, 16, 17, 18]
    following, _ = batches.batch(1)
    assert following[0].tolist() == (inputs[-1] + 1).tolist()  # the next window of each stream
    last_inputs, last_targets = batches.batch(3)
    assert last_inputs.shape == (1, 3) and last_targets[:, 2].tolist() == [41]
    covered = torch.cat([t for _, t in batches]).t().flatten().tolist()
    assert covered == [t for s in range(3) for t in range(s * 14 + 1, s * 14 + 14)]


def test_too_short_for_one_batch(tmp_path):
    with pytest.raises(UserError, match="shorter than one batch.*--batch-size 4 x"):
        check_one_batch(np.arange(50), batch_size=4, seq_len=16)
    with pytest.raises(UserError, match="too few for 8 streams"):
        StreamBatches(np.arange(10), 8, 4)


def test_split_and_val_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcdefghij" * 10)
    data = prepare_language_data(DataConfig(path=str(corpus), cache_dir=str(tmp_path)).validate())
    assert (len(data.train), len(data.valid)) == (90, 10)
    np.testing.assert_array_equal(data.valid, data.tokenizer.encode("abcdefghij"))
    (tmp_path / "val.txt").write_text("abcxyz")
    config = DataConfig(path=str(corpus), val=str(tmp_path / "val.txt"), cache_dir=str(tmp_path))
    with pytest.raises(UserError, match="--val file .*val.txt: .*'x', 'y', 'z'"):
        prepare_language_data(config.validate())


def test_vocab_from_adds_words_without_training_on_them(tmp_path):
    corpus = tmp_path / "train.txt"
    corpus.write_text("the cat sat\n" * 20)
    (tmp_path / "test.txt").write_text("the dog sat\n")
    config = DataConfig(path=str(corpus), level="word", cache_dir=str(tmp_path),
                        vocab_from=[str(tmp_path / "test.txt")])
    data = prepare_language_data(config.validate())
    assert "dog" in data.tokenizer.vocab
    assert data.tokenizer.vocab.index("dog") not in set(np.asarray(data.train).tolist())
