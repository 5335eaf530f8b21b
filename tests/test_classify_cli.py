"""``rnnkit classify train | predict | eval`` end to end, exact resume and one-line errors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.classify.run import ClassifyConfig, resume_classifier, start_classifier
from rnnkit.cli import main
from rnnkit.train.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TINY = ["--hidden", "12", "--embedding", "8", "--batch-size", "16", "--threads", "1",
        "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def write_reviews(path: Path, count: int, seed: int) -> Path:
    """Korean-looking filler with one telling word: 좋아 (positive) or 별로 (negative)."""
    rng = random.Random(seed)
    filler = "영화 배우 연기 그냥 스토리 음악 장면 정말".split()
    lines = ["id\tdocument\tlabel"]
    for i in range(count):
        label = i % 2
        words = rng.choices(filler, k=rng.randint(1, 6))
        words.insert(rng.randint(0, len(words)), "좋아" if label else "별로")
        lines.append(f"{i}\t{' '.join(words)}\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rnnkit(*args, cwd, stdin=None):
    return subprocess.run([sys.executable, "-m", "rnnkit.cli", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120, input=stdin)


def test_train_eval_predict(tmp_path):
    train = write_reviews(tmp_path / "train.tsv", 400, seed=1)
    test = write_reviews(tmp_path / "test.tsv", 100, seed=2)
    trained = rnnkit("classify", "train", train, "--out", tmp_path / "run", "--max-steps", "80",
                     "--eval-every", "40", "--lr", "1e-2", *TINY, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "360 training and 40 validation texts, columns 'document' (text) and 'label'" \
        in trained.stdout
    assert "Stopped at step 80 (max steps)" in trained.stdout
    evaluated = rnnkit("classify", "eval", tmp_path / "run", test, "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["accuracy"] >= 0.95 and result["macro_f1"] >= 0.95
    assert sum(map(sum, result["confusion"])) == 100 and result["classes"] == ["0", "1"]
    predicted = rnnkit("classify", "predict", tmp_path / "run", "-", cwd=tmp_path,
                       stdin="연기 정말 좋아\n별로 영화\n")
    assert predicted.returncode == 0, predicted.stderr
    first, second = predicted.stdout.splitlines()
    assert first.startswith("1\t0:") and second.startswith("0\t0:")
    probabilities = [float(part.split(":")[1]) for part in first.split("\t")[1].split()]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
    evals = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [40, 80] and "val_macro_f1" in evals[0]
    # empty and blank lines: a row each, marked, with no label; the other rows as before
    with_empty = rnnkit("classify", "predict", tmp_path / "run", "-", cwd=tmp_path,
                        stdin="\n연기 정말 좋아\n   \n별로 영화\n")
    assert with_empty.returncode == 0, with_empty.stderr
    rows = with_empty.stdout.splitlines()
    assert rows[0] == rows[2] == "-\t(empty line: nothing to classify)"
    for row, before in ((rows[1], first), (rows[3], second)):
        assert row.split("\t")[0] == before.split("\t")[0]
        assert [float(p.split(":")[1]) for p in row.split("\t")[1].split()] == pytest.approx(
            [float(p.split(":")[1]) for p in before.split("\t")[1].split()], abs=2e-4)
    assert with_empty.stderr == "rnnkit: note: 2 empty line(s) not classified (line 1, 3)\n"
    as_json = rnnkit("classify", "predict", tmp_path / "run", "-", "--json", cwd=tmp_path,
                     stdin="별로 영화\n\n")
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert objects[0]["label"] == "0" and objects[1] == {"label": None, "probabilities": None,
                                                         "empty": True}


def tiny_config(path, out, steps):
    config = ClassifyConfig()
    config.data.path, config.out = str(path), str(out)
    config.model.hidden, config.model.embedding, config.model.dropout = 8, 6, 0.2
    config.train.batch_size, config.train.max_steps, config.train.eval_every = 16, steps, 5
    config.train.log_every = 5
    return config


def test_resume_continues_exactly(tmp_path):
    data = write_reviews(tmp_path / "train.tsv", 120, seed=3)
    straight, _ = start_classifier(tiny_config(data, tmp_path / "straight", 20))
    straight.fit()
    first, _ = start_classifier(tiny_config(data, tmp_path / "resumed", 10))
    first.fit()
    resumed = resume_classifier(tmp_path / "resumed", {"max_steps": 20})
    resumed.fit()
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=1e-6)


def test_pretrained_embeddings_are_loaded_and_reported(tmp_path, capsys):
    data = write_reviews(tmp_path / "train.tsv", 60, seed=4)
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("2 4\n좋아 1 0 0 0\n별로 0 1 0 0\n", encoding="utf-8")
    status = main(["classify", "train", str(data), "--level", "word", "--out",
                   str(tmp_path / "run"), "--max-steps", "2", "--pretrained-embeddings",
                   str(vectors), "--freeze-embeddings", *TINY[:2], *TINY[4:]])
    output = capsys.readouterr().out
    assert status == 0
    assert "Pretrained embeddings: 20.0% of the vocabulary found" in output  # 2 of 10 words
    assert "vectors of 4); frozen" in output


@pytest.mark.parametrize("make, flags, message", [
    (lambda p: p.write_text("id\ttext\tlabel\n1\ta\tx\n2\tb\tx\n", encoding="utf-8"), [],
     "has only one class ('x'); a classifier needs at least two"),
    (lambda p: p.write_text("id\tbody\tstars\n1\ta\t1\n", encoding="utf-8"),
     ["--label-col", "rating"], "no column 'rating' (--label-col); the columns found are "
                                "'id', 'body', 'stars'"),
    (lambda p: p.write_text("id\ttext\tlabel\n1\ta\t1\n2\tb\t0\n", encoding="utf-8"),
     ["--level", "bpe", "--vocab-size", "100"], "--vocab-size must be at least 257"),
    (lambda p: p.write_text("id\ttext\tlabel\n1\ta\t1\n2\tb\t0\n", encoding="utf-8"),
     ["--freeze-embeddings"], "--freeze-embeddings needs --pretrained-embeddings"),
])
def test_bad_input_is_one_line(tmp_path, capsys, make, flags, message):
    path = tmp_path / "data.tsv"
    make(path)
    status = main(["classify", "train", str(path), "--out", str(tmp_path / "run"),
                   "--no-progress", *flags])
    error = capsys.readouterr().err
    assert status == 2
    assert message in error and error.count("\n") == 1 and "Traceback" not in error


@pytest.mark.skipif(not (SHARED / "nsmc-test.tsv").exists(), reason="no shared data")
def test_nsmc_reads_with_its_columns_and_both_classes():
    from rnnkit.classify.data import read_labelled

    data = read_labelled(SHARED / "nsmc-test.tsv")
    assert (data.text_col, data.label_col) == ("document", "label")
    assert len(data) + data.skipped_empty == 10_000
    assert set(data.labels) == {"0", "1"}
