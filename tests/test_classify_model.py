"""The classifier: padding never changes a prediction, pooling reads valid steps only and
matches torch.nn run text by text; scores, pretrained vectors, data reading and batching."""

from __future__ import annotations

import pytest
import torch

from rnnkit.classify.data import (
    TextEncoder,
    bucket_batches,
    class_names,
    fit_tokenizer,
    pad,
    read_labelled,
    stratified_split,
)
from rnnkit.classify.metrics import scores
from rnnkit.classify.model import Classifier, ClassifierConfig
from rnnkit.classify.vectors import read_vectors
from rnnkit.errors import UserError


def model_for(pooling, cell="lstm", bidirectional=True, layers=1, ngrams=0):
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=20, classes=3, cell=cell, layers=layers, hidden=8,
                              embedding=6, bidirectional=bidirectional, pooling=pooling,
                              ngrams=ngrams, ngram_buckets=97, ngram_dim=5)
    return Classifier(config).eval()


SEQUENCES = [[5, 6, 7], [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [2, 9, 9, 4, 5, 2, 8]]


@pytest.mark.parametrize("pooling", ["max", "mean", "last", "mean-max"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("ngrams", [0, 3])
def test_padding_never_changes_a_prediction(pooling, cell, ngrams):
    model = model_for(pooling, cell, layers=2, ngrams=ngrams)
    tokens, lengths = pad(SEQUENCES)
    with torch.no_grad():
        batched = model(tokens, lengths).softmax(-1)
        for row, ids in enumerate(SEQUENCES):
            alone = model(torch.tensor([ids]), torch.tensor([len(ids)])).softmax(-1)
            torch.testing.assert_close(batched[row], alone[0], rtol=0, atol=1e-6)
            # and more padding than the batch needs changes nothing either
            longer = torch.cat([torch.tensor([ids]), torch.zeros(1, 9, dtype=torch.long)], 1)
            padded = model(longer, torch.tensor([len(ids)])).softmax(-1)
            torch.testing.assert_close(padded[0], alone[0], rtol=0, atol=1e-6)


def test_pooling_matches_torch_nn_run_text_by_text():
    model = model_for("mean-max")
    reference = torch.nn.LSTM(6, 8, batch_first=True, bidirectional=True)
    reference.load_state_dict(model.rnn.state_dict())
    tokens, lengths = pad(SEQUENCES)
    with torch.no_grad():
        features = model.features(tokens, lengths)
        for row, ids in enumerate(SEQUENCES):
            output, _ = reference(model.embedding(torch.tensor([ids])))  # (1, L, 16)
            expected = torch.cat([output[0].mean(0), output[0].amax(0)])
            torch.testing.assert_close(features[row], expected, rtol=0, atol=1e-5)


def test_last_pooling_takes_each_direction_at_its_own_end():
    model = model_for("last")
    reference = torch.nn.LSTM(6, 8, batch_first=True, bidirectional=True)
    reference.load_state_dict(model.rnn.state_dict())
    tokens, lengths = pad(SEQUENCES)
    with torch.no_grad():
        features = model.features(tokens, lengths)
        for row, ids in enumerate(SEQUENCES):
            output, _ = reference(model.embedding(torch.tensor([ids])))
            # forward: after the last real token; backward: after reading back to the first
            expected = torch.cat([output[0, -1, :8], output[0, 0, 8:]])
            torch.testing.assert_close(features[row], expected, rtol=0, atol=1e-5)


def test_ngram_bag_is_the_mean_of_the_hashed_rows_of_real_ngrams():
    model = model_for("max", ngrams=3)
    tokens, lengths = pad(SEQUENCES)
    prime, modulus, buckets = 1_000_003, 2_147_483_647, 97

    def bucket(gram):  # the docstring's hash, by hand: h = 1, then h * P + id per token
        h = 1
        for token in gram:
            h = (h * prime + token) % modulus
        return h % buckets

    with torch.no_grad():
        features = model.features(tokens, lengths)
        pooled = model._pooled(tokens, lengths)
        for row, ids in enumerate(SEQUENCES):
            grams = [ids[i:i + n] for n in (1, 2, 3) for i in range(len(ids) - n + 1)]
            expected = model.ngram_embedding.weight[[bucket(g) for g in grams]].mean(0)
            torch.testing.assert_close(features[row, -5:], expected, rtol=0, atol=1e-6)
            torch.testing.assert_close(features[row, :-5], pooled[row], rtol=0, atol=0)
    # orders hash apart: the unigram [5] and the bigram [0, 5] land on different rows
    assert bucket([5]) != bucket([0, 5])
    ids, valid = model.ngram_ids(tokens, lengths)
    assert valid.sum().item() == sum(3 * len(s) - 3 for s in SEQUENCES)  # L + (L-1) + (L-2)


def test_ngram_bag_learns_what_order_alone_decides():
    """Two texts of the same tokens, apart only in their order, told apart by the bag alone."""
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=10, classes=2, hidden=4, embedding=4, ngrams=2,
                              ngram_buckets=64, ngram_dim=8)
    model = Classifier(config)
    with torch.no_grad():  # silence the recurrent path: its features stay zero
        for parameter in model.rnn.parameters():
            parameter.zero_().requires_grad_(False)
    tokens, lengths = torch.tensor([[3, 4, 5, 6], [6, 5, 4, 3]]), torch.tensor([4, 4])
    targets = torch.tensor([0, 1])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(tokens, lengths), targets).backward()
        optimizer.step()
    assert model(tokens, lengths).argmax(-1).tolist() == [0, 1]
    assert not model._pooled(tokens, lengths).any()  # the bag alone told them apart


@pytest.mark.parametrize("value", [-1, 9, 2.5, True])
def test_ngrams_outside_one_to_eight_are_refused(value):
    with pytest.raises(UserError, match="--ngrams must be an n-gram length from 1 to 8"):
        ClassifierConfig(vocab_size=10, ngrams=value).validate()


def test_scores_by_hand():
    targets = torch.tensor([0, 0, 1, 1, 2])
    predictions = torch.tensor([0, 1, 1, 1, 0])
    result = scores(targets, predictions, 3)
    assert result["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert result["accuracy"] == pytest.approx(0.6)
    f1 = [2 * 1 / (2 + 2), 2 * 2 / (3 + 2), 0.0]  # 2TP / (predicted + actual) per class
    assert result["macro_f1"] == pytest.approx(sum(f1) / 3)


@pytest.mark.parametrize("header", [True, False])  # word2vec/fastText, GloVe
def test_pretrained_vectors(tmp_path, header):
    lines = ["good 0.5 0.25 1", "bad -1 0 0.5", "other 9 9 9"]
    path = tmp_path / "vectors.txt"
    path.write_text("\n".join((["3 3"] if header else []) + lines) + "\n", encoding="utf-8")
    vectors = read_vectors(path, ["<pad>", "<unk>", "good", "bad", "film"])
    assert vectors.dimension == 3 and vectors.file_tokens == 3
    assert vectors.found.tolist() == [False, False, True, True, False]
    assert vectors.share_found() == pytest.approx(2 / 3)
    assert vectors.vectors[3].tolist() == [-1.0, 0.0, 0.5]
    model = Classifier(ClassifierConfig(vocab_size=5, embedding=3, hidden=4,
                                        freeze_embeddings=True))
    before = model.embedding.weight[4].clone()
    model.load_vectors(vectors.vectors, vectors.found)
    assert model.embedding.weight[2].tolist() == [0.5, 0.25, 1.0]
    assert torch.equal(model.embedding.weight[4], before)
    assert not model.embedding.weight.requires_grad


def test_ragged_vector_file_names_its_line(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("good 1 2 3\nbad 1 2\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 2 has 2 numbers; expected 3"):
        read_vectors(path, ["good"])


def test_tsv_with_quotes_korean_and_empty_texts(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text('id\tdocument\tlabel\n1\t"천안함" 연구 영화\t1\n2\t\t0\n3\t별로 "다\t0\n',
                    encoding="utf-8")
    data = read_labelled(path)
    assert data.texts == ['"천안함" 연구 영화', '별로 "다'] and data.labels == ["1", "0"]
    assert (data.text_col, data.label_col, data.skipped_empty) == ("document", "label", 1)


def test_missing_columns_list_the_columns_found(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("review_text,stars\nnice,5\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"no text column found by name .* the columns found "
                       r"are 'review_text', 'stars': name it with --text-col"):
        read_labelled(path)
    with pytest.raises(UserError, match=r"no column 'rating' \(--label-col\); the columns "
                       r"found are 'review_text', 'stars'"):
        read_labelled(path, "review_text", "rating")


def test_one_class_is_refused():
    with pytest.raises(UserError, match=r"only one class \('pos'\).*at least two"):
        class_names(["pos", "pos"], "the label column of data.csv")
    assert class_names(["10", "9", "2"], "x") == ["2", "9", "10"]


def test_folder_of_classes(tmp_path):
    for label, texts in {"neg": ["dull", "bad"], "pos": ["great"]}.items():
        (tmp_path / label).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / label / f"{i}.txt").write_text(text, encoding="utf-8")
    data = read_labelled(tmp_path)
    assert data.texts == ["dull", "bad", "great"] and data.labels == ["neg", "neg", "pos"]


def test_encoder_maps_unseen_characters_to_unknown():
    encoder = TextEncoder(fit_tokenizer(["가나다", "abc"], "char"), max_len=4)
    ids = encoder.encode("가나X다bc")
    assert ids[2] == 1 and len(ids) == 4 and 0 not in ids
    assert encoder.encode("") == [1]


def test_split_is_stratified_and_buckets_cover_every_text():
    labels = ["a"] * 80 + ["b"] * 20
    train, valid = stratified_split(labels, 0.1, seed=3)
    assert sorted(train + valid) == list(range(100))
    assert sum(labels[i] == "b" for i in valid) == 2 and len(valid) == 10
    lengths = [(i * 37) % 50 + 1 for i in range(300)]
    batches = bucket_batches(lengths, 8, torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == list(range(300))
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spread) / len(spread) < 5  # similar lengths: little padding
    again = bucket_batches(lengths, 8, torch.Generator().manual_seed(0))
    assert again == batches


def test_classify_train_has_the_bag_and_four_members_and_an_older_run_loads_plain():
    from rnnkit.classify.run import ClassifyConfig

    assert ClassifyConfig().model.ngrams == 3  # classify train's defaults
    assert ClassifyConfig().model.members == 4
    assert ClassifierConfig().ngrams == 0  # the library's Classifier: the plain model
    assert ClassifierConfig().members == 1
    saved = ClassifyConfig().to_dict()
    del saved["model"]["ngrams"], saved["model"]["members"]  # a config.json from before them
    assert ClassifyConfig.from_dict(saved).model.ngrams == 0
    assert ClassifyConfig.from_dict(saved).model.members == 1


def test_an_ensemble_averages_its_members_probabilities_and_each_learns_on_its_own_loss():
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=20, classes=3, hidden=8, embedding=6, ngrams=2,
                              ngram_buckets=97, ngram_dim=5, members=3)
    model = Classifier(config).eval()
    assert len(model.singles()) == 3
    first, second = (member.rnn.weight_hh_l0 for member in model.singles()[:2])
    assert not torch.equal(first, second)  # different random starts
    tokens, lengths = pad(SEQUENCES)
    with torch.no_grad():
        mean = torch.stack([member(tokens, lengths).softmax(-1)
                            for member in model.singles()]).mean(0)
        torch.testing.assert_close(model(tokens, lengths).softmax(-1), mean, rtol=0, atol=1e-6)
        assert model(tokens, lengths, each=True).shape == (3, 3, 3)
    # the task's loss: member k's gradient is that of its own cross-entropy / 3
    from rnnkit.classify.run import ClassifyTask

    targets = torch.tensor([0, 2, 1])
    loss, count = ClassifyTask.loss(None, model, (tokens, lengths, targets))
    loss.backward()
    assert count == 3
    member = model.singles()[1]
    expected = torch.autograd.grad(
        torch.nn.functional.cross_entropy(member(tokens, lengths), targets) / 3,
        member.head.weight)[0]
    torch.testing.assert_close(member.head.weight.grad, expected, rtol=1e-5, atol=1e-7)
