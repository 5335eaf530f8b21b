"""Every bad input to the language-model commands (``rnnkit train``, ``sample``, ``eval``,
``report``) and to ``gradflow`` / ``longdep``: exit status 2, one line on stderr naming the
input and what was expected, no traceback, nothing on stdout.

One row per place a :class:`rnnkit.errors.UserError` is raised for them (the commands,
rnnkit/train/*, rnnkit/data/*, rnnkit/models/*, rnnkit/tasks/*), in the style of
tests/test_cli_errors.py (whose ``run_cli`` sets the command's logging up on the captured
stderr, so a progress line logged before the error counts as a second line). The runs that
sample, eval, report and --resume need are trained once (2 steps) per module; damaged
copies of them stand for runs that are not what they claim.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from tests.helpers import run_cli
from tests.test_cli_errors import NOT_UTF8, edit_config, reviews
from tests.test_lm_helpers import VERSE


@pytest.fixture(autouse=True)
def one_thread_and_own_cache(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared by many: oversubscribed threads crawl
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))  # never the user's cache
    yield
    torch.set_num_threads(threads)


BASE_FILES = {"c.txt": VERSE * 3, "v.txt": VERSE}
TINY = "--hidden 4 --embedding 4 --layers 1 --batch-size 2 --seq-len 8 --max-steps 2 " \
       "--no-progress"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A 2-step character-level run, a 2-step classifier run, and damaged copies of them."""
    root = tmp_path_factory.mktemp("lmruns")
    for name, text in BASE_FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "r.tsv").write_text(reviews(), encoding="utf-8")
    (root / "other.txt").write_text(VERSE * 3 + "More.\n", encoding="utf-8")
    assert main(["train", str(root / "c.txt"), "--out", str(root / "lm"), "--cache-dir",
                 str(root / "cache"), *TINY.split()]) == 0
    assert main(["classify", "train", str(root / "r.tsv"), "--embedding", "4", "--hidden", "4",
                 "--max-steps", "2", "--no-progress", "--out", str(root / "crun")]) == 0

    def damaged(name: str, source: str = "lm") -> Path:
        copy = root / name
        shutil.copytree(root / source, copy, symlinks=True)
        return copy

    (damaged("bad-json") / "last" / "config.json").write_text("{", encoding="utf-8")
    (damaged("no-model") / "last" / "model.safetensors").unlink()
    shutil.rmtree(damaged("dangling") / "checkpoints")
    (damaged("bad-weights") / "last" / "model.safetensors").write_bytes(b"garbage")
    (damaged("bad-state") / "last" / "trainer_state.pt").write_bytes(b"garbage")
    edit_config(damaged("newer"), lambda c: c.update(format_version=99))
    edit_config(damaged("misfit"), lambda c: c["run"]["model"].update(hidden=5))
    edit_config(damaged("vocab-mismatch"), lambda c: c["run"]["model"].update(vocab_size=3))
    edit_config(damaged("bad-tokenizer"), lambda c: c["tokenizer"].update(level="morse"))
    edit_config(damaged("no-kind"), lambda c: c.pop("kind"))
    edit_config(damaged("run-not-a-dict"), lambda c: c.update(run="lstm"))
    edit_config(damaged("model-not-a-dict"), lambda c: c["run"].update(model="lstm"))
    edit_config(damaged("bad-backend"), lambda c: c["run"]["model"].update(backend="gpu"))
    edit_config(damaged("bad-hidden"), lambda c: c["run"]["model"].update(hidden="big"))
    edit_config(damaged("bad-val-fraction"),
                lambda c: c["run"]["data"].update(val_fraction="x"))
    edit_config(damaged("corpus-changed"),
                lambda c: c["run"]["data"].update(path=str(root / "other.txt")))
    edit_config(damaged("corpus-gone"),
                lambda c: c["run"]["data"].update(path=str(root / "gone.txt")))
    (root / "not-a-run").mkdir()
    (root / "bad-results").mkdir()
    (root / "bad-results" / "results.json").write_text("{", encoding="utf-8")
    return root


# what rnnkit train / eval log on stderr while they tokenise: the cases marked
# after_tokenising (the text's length in tokens, a character the vocabulary lacks, a changed
# corpus: nothing to check before the text is tokenised) may have these lines, and only
# these, before the error line; every other case has the error line alone
PROGRESS = ("Training the char tokenizer on ", "Cached ", "Corpus ")


def check_one_line(case_files: dict, args: str, expected: tuple, after_tokenising: bool,
                   runs: Path, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    for name, content in {**BASE_FILES, **case_files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    argv = [part.format(R=runs) for part in args.split()]
    status, out, err = run_cli(argv, capsys)
    assert status == 2, (status, out, err)
    if after_tokenising:  # the lines logged while the text was tokenised may come first
        progress = err.splitlines(keepends=True)[:-1]
        assert progress and all(line.startswith(PROGRESS) for line in progress), err
        err = err[sum(map(len, progress)):]
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and out == "", (out, err)
    for fragment in expected:
        assert fragment.format(R=runs) in err, err


def case(args, *expected, files=None, after_tokenising=False, id):
    return pytest.param(files or {}, args, expected, after_tokenising, id=id)


TRAIN = "train c.txt --out new " + TINY
LM = "{R}/lm"
TOML_HEAD = '[data]\npath = "c.txt"\n'

LANGUAGE_MODEL = [
    # ---- train: the corpus
    case("train", "give the corpus: rnnkit train PATH", id="train-no-corpus"),
    case("train none.txt", "corpus none.txt does not exist", id="train-missing-corpus"),
    case("train e.txt", "e.txt is empty; expected utf-8 text", files={"e.txt": ""},
         id="train-empty-corpus"),
    case("train w.txt", "corpus w.txt holds only whitespace; expected text",
         files={"w.txt": " \n\n\t\n"}, id="train-whitespace-corpus"),
    case("train b.txt", "b.txt looks binary (a NUL byte at byte offset 3)",
         files={"b.txt": b"abc\0def"}, id="train-binary-corpus"),
    case("train x.txt", "x.txt is not valid utf-8 text: byte 0xff at byte offset 0",
         "--encoding", files={"x.txt": NOT_UTF8}, id="train-not-utf8"),
    case("train x.txt", "x.txt is not valid utf-8 text: it ends inside a multi-byte character",
         files={"x.txt": b"abc" + "é".encode()[:1]}, id="train-truncated-utf8"),
    case("train d", "corpus folder d has no text files (expected .txt", files={"d/a.pdf": "x"},
         id="train-folder-without-texts"),
    case(TRAIN + " --encoding klingon", "--encoding 'klingon' is not an encoding Python knows",
         id="train-unknown-encoding"),
    case("train s.txt --out new --no-progress", "the training text has 45 tokens, shorter than "
         "one batch (--batch-size 64 x (--seq-len 100 + 1) = 6464)",
         files={"s.txt": "a few wor\n" * 5}, after_tokenising=True,
         id="train-corpus-shorter-than-a-batch"),
    # ---- train: tokens and validation
    case(TRAIN + " --level sentence", "--level must be one of char, word, bpe, got 'sentence'",
         id="train-bad-level"),
    case(TRAIN + " --val-fraction 1", "--val-fraction must be in (0, 1), got 1.0",
         id="train-val-fraction-one"),
    case(TRAIN + " --val-fraction 0", "--val-fraction must be in (0, 1), got 0.0",
         id="train-val-fraction-zero"),
    case(TRAIN + " --val-fraction nan", "--val-fraction must be in (0, 1), got nan",
         id="train-val-fraction-nan"),
    case(TRAIN + " --val none.txt", "--val file none.txt does not exist",
         id="train-val-missing"),
    case(TRAIN + " --val e.txt", "e.txt is empty", files={"e.txt": ""}, id="train-val-empty"),
    case(TRAIN + " --val z.txt", "--val file z.txt:", "'#'", files={"z.txt": "####\n"},
         after_tokenising=True, id="train-val-unknown-character"),
    case(TRAIN + " --val one.txt", "the validation text has 1 tokens; raise --val-fraction or "
         "give --val FILE", files={"one.txt": "a"}, after_tokenising=True,
         id="train-val-too-short"),
    case(TRAIN + " --vocab-from none.txt", "--vocab-from none.txt does not exist",
         id="train-vocab-from-missing"),
    case(TRAIN + " --min-count 0", "--min-count must be at least 1, got 0",
         id="train-min-count-zero"),
    case(TRAIN + " --max-vocab 2", "--max-vocab must be 0 (no limit) or at least 3, got 2",
         id="train-max-vocab-two"),
    case(TRAIN + " --level bpe --vocab-size 100", "--vocab-size must be at least 257 for bpe, "
         "got 100", id="train-bpe-vocab-size"),
    # ---- train: the model
    case(TRAIN + " --cell transformer", "--cell must be one of rnn, gru, lstm, indrnn, got "
         "'transformer'", id="train-bad-cell"),
    case(TRAIN + " --backend gpu", "--backend must be one of auto, fused, reference, got 'gpu'",
         id="train-bad-backend"),
    case(TRAIN + " --hidden 0", "--hidden must be a positive integer, got 0",
         id="train-hidden-zero"),
    case(TRAIN + " --embedding -1", "--embedding must be a positive integer, got -1",
         id="train-embedding-negative"),
    case(TRAIN + " --layers 0", "--layers must be a positive integer, got 0",
         id="train-layers-zero"),
    case(TRAIN + " --dropout 1", "--dropout must be in [0, 1), got 1.0", id="train-dropout-one"),
    case(TRAIN + " --dropout nan", "--dropout must be in [0, 1), got nan",
         id="train-dropout-nan"),
    case(TRAIN + " --bidirectional", "bidirectional layers cannot be used in a language model",
         id="train-bidirectional"),
    case(TRAIN + " --tie-weights --embedding 8", "--tie-weights needs --embedding equal to "
         "--hidden (got 8 and 4)", id="train-tie-weights-sizes"),
    case(TRAIN + " --init xavier", "--init must be one of default, chrono, got 'xavier'",
         id="train-bad-init"),
    case(TRAIN + " --cell rnn --forget-bias 1", "--forget-bias and --init chrono need a gated "
         "cell (gru or lstm)", id="train-forget-bias-rnn"),
    case(TRAIN + " --cell rnn --init chrono", "need a gated cell", id="train-chrono-rnn"),
    case(TRAIN + " --init chrono --chrono-max-len -5", "--chrono-max-len must be 0 (the "
         "--seq-len) or positive, got -5", id="train-chrono-max-len-negative"),
    case(TRAIN + " --cell gru --zoneout-cell 0.1", "--zoneout-cell needs --cell lstm",
         id="train-zoneout-cell-gru"),
    case(TRAIN + " --zoneout 1.5", "--cell lstm:", "zoneout", "probability",
         id="train-zoneout-out-of-range"),
    case(TRAIN + " --recurrent-dropout -0.1", "--cell lstm:", "recurrent_dropout",
         id="train-recurrent-dropout-negative"),
    case(TRAIN + " --weight-drop 1", "--cell lstm:", "weight_drop", id="train-weight-drop-one"),
    case(TRAIN + " --cell gru --peephole", "--cell gru:", "`peephole` is an LSTM option",
         id="train-peephole-gru"),
    # ---- train: training
    case(TRAIN + " --batch-size 0", "--batch-size must be a positive integer, got 0",
         id="train-batch-size-zero"),
    case(TRAIN + " --seq-len 0", "--seq-len must be a positive integer, got 0",
         id="train-seq-len-zero"),
    case(TRAIN + " --log-every 0", "--log-every must be a positive integer, got 0",
         id="train-log-every-zero"),
    case(TRAIN + " --warmup -1", "--warmup must be a non-negative integer, got -1",
         id="train-warmup-negative"),
    case(TRAIN + " --max-steps -1", "--max-steps must be a non-negative integer, got -1",
         id="train-max-steps-negative"),
    case(TRAIN + " --eval-every -1", "--eval-every must be a non-negative integer, got -1",
         id="train-eval-every-negative"),
    case(TRAIN + " --eval-batch-size -1", "--eval-batch-size must be a non-negative integer",
         id="train-eval-batch-size-negative"),
    case(TRAIN + " --patience -1", "--patience must be a non-negative integer, got -1",
         id="train-patience-negative"),
    case(TRAIN + " --plateau-patience -1", "--plateau-patience must be a non-negative integer",
         id="train-plateau-patience-negative"),
    case(TRAIN + " --threads -1", "--threads must be a non-negative integer, got -1",
         id="train-threads-negative"),
    case(TRAIN + " --lr 0", "--lr must be positive, got 0.0", id="train-lr-zero"),
    case(TRAIN + " --lr nan", "--lr must be a finite number >= 0, got nan", id="train-lr-nan"),
    case(TRAIN + " --weight-decay -1", "--weight-decay must be a finite number >= 0, got -1.0",
         id="train-weight-decay-negative"),
    case(TRAIN + " --momentum -0.5", "--momentum must be a finite number >= 0, got -0.5",
         id="train-momentum-negative"),
    case(TRAIN + " --clip inf", "--clip must be a finite number >= 0, got inf",
         id="train-clip-infinite"),
    case(TRAIN + " --min-lr -1", "--min-lr must be a finite number >= 0, got -1.0",
         id="train-min-lr-negative"),
    case(TRAIN + " --epochs -1", "--epochs must be a finite number >= 0, got -1.0",
         id="train-epochs-negative"),
    case(TRAIN + " --time-budget nan", "--time-budget must be a finite number >= 0, got nan",
         id="train-time-budget-nan"),
    case(TRAIN + " --optimizer lbfgs", "--optimizer must be one of adamw, sgd, rmsprop, got "
         "'lbfgs'", id="train-bad-optimizer"),
    case(TRAIN + " --schedule step", "--schedule must be one of constant, cosine, plateau, "
         "got 'step'", id="train-bad-schedule"),
    case(TRAIN + " --plateau-factor 0", "--plateau-factor must be in (0, 1], got 0.0",
         id="train-plateau-factor-zero"),
    case(TRAIN + " --schedule cosine --lr 0.001 --min-lr 0.01", "--min-lr 0.01 is above --lr "
         "0.001", id="train-cosine-min-lr-above-lr"),
    case("train c.txt --no-progress --out " + LM, "--out {R}/lm already holds a run; continue "
         "it with --resume {R}/lm", id="train-out-taken"),
    case(TRAIN.replace("--out new", "--out c.txt"), "--out c.txt is a file; expected a run "
         "folder", id="train-out-is-a-file"),
    # ---- train --config
    case("train --config none.toml", "--config none.toml does not exist or is not a file",
         id="config-missing"),
    case("train --config x.toml", "--config x.toml is not valid TOML", "line 2",
         files={"x.toml": '[data]\npath = "c.txt\n'}, id="config-syntax-error"),
    case("train --config x.toml", "--config x.toml is not valid TOML",
         files={"x.toml": NOT_UTF8}, id="config-not-utf8"),
    case("train --config x.toml", "config: unknown section(s) optim; expected data, model, "
         "train", files={"x.toml": TOML_HEAD + "[optim]\nlr = 1\n"}, id="config-unknown-section"),
    case("train --config x.toml", "config [model]: unknown key(s) size",
         files={"x.toml": TOML_HEAD + "[model]\nsize = 3\n"}, id="config-unknown-key"),
    case("train --config x.toml", "config: [model] must be a table of settings, got 3",
         files={"x.toml": "model = 3\n" + TOML_HEAD}, id="config-section-not-a-table"),
    case("train --config x.toml", "config [data]: unknown key(s) model",
         files={"x.toml": TOML_HEAD + "model = 3\n"}, id="config-key-in-wrong-table"),
    case("train --config x.toml", "config [data] val_fraction: expected a number, got 'most'",
         files={"x.toml": TOML_HEAD + "val_fraction = \"most\"\n"}, id="config-wrong-type-float"),
    case("train --config x.toml", "config [model] dropout: expected a number, got 'x'",
         files={"x.toml": TOML_HEAD + "[model]\ndropout = \"x\"\n"}, id="config-dropout-string"),
    case("train --config x.toml", "config [model] hidden: expected an integer, got 'big'",
         files={"x.toml": TOML_HEAD + "[model]\nhidden = \"big\"\n"}, id="config-hidden-string"),
    case("train --config x.toml", "config [model] tie_weights: expected true or false, got "
         "'yes'", files={"x.toml": TOML_HEAD + "[model]\ntie_weights = \"yes\"\n"},
         id="config-bool-string"),
    case("train --config x.toml", "config [data] path: expected a string, got 5",
         files={"x.toml": "[data]\npath = 5\n"}, id="config-path-number"),
    case("train --config x.toml", "config [data] vocab_from: expected a list of strings, got "
         "'v.txt'", files={"x.toml": TOML_HEAD + "vocab_from = \"v.txt\"\n"},
         id="config-vocab-from-string"),
    case("train --config x.toml", "config out: expected a string, got 5",
         files={"x.toml": "out = 5\n" + TOML_HEAD}, id="config-out-number"),
    case("train --config x.toml", "give the corpus: rnnkit train PATH, or [data] path in "
         "--config", files={"x.toml": "[model]\nhidden = 4\n"}, id="config-without-path"),
    # ---- train --resume
    case("train --resume " + LM + " --config x.toml", "--resume takes its settings from the "
         "run; drop --config", files={"x.toml": TOML_HEAD}, id="resume-with-config"),
    case("train c.txt --resume " + LM, "--resume continues the run with its saved corpus",
         "drop PATH", id="resume-with-corpus"),
    case("train --resume " + LM + " --out elsewhere", "--resume continues the run in its own "
         "folder; drop --out", id="resume-with-out"),
    case("train --resume " + LM + " --hidden 8", "--hidden cannot change (only budgets: "
         "--max-steps, --epochs, --time-budget, --patience)", id="resume-with-model-flag"),
    case("train --resume " + LM + " --lr 0.1", "--lr cannot change", id="resume-with-lr"),
    case("train --resume " + LM + " --max-steps -1", "--max-steps must be a non-negative "
         "integer, got -1", id="resume-bad-budget"),
    case("train --resume gone", "run folder gone does not exist", id="resume-missing"),
    case("train --resume " + LM + "/last", "--resume takes the run folder, not the checkpoint "
         "{R}/lm/last", id="resume-checkpoint"),
    case("train --resume {R}/not-a-run", "{R}/not-a-run is not an rnnkit run folder",
         id="resume-not-a-run"),
    case("train --resume {R}/crun", "{R}/crun/last/config.json: expected a language-model "
         "run, found kind 'classifier'", id="resume-classifier-run"),
    case("train --resume {R}/bad-state", "{R}/bad-state/last/trainer_state.pt is corrupt or "
         "not a trainer state", id="resume-bad-trainer-state"),
    case("train --resume {R}/corpus-changed", "the corpus {R}/other.txt changed since this "
         "run started", after_tokenising=True, id="resume-corpus-changed"),
    case("train --resume {R}/corpus-gone", "corpus {R}/gone.txt does not exist",
         id="resume-corpus-gone"),
    # ---- sample: the run
    case("sample gone", "run folder gone does not exist", id="sample-missing-run"),
    case("sample c.txt", "c.txt is a file; expected an rnnkit run folder",
         id="sample-file-as-run"),
    case("sample {R}/not-a-run", "{R}/not-a-run is not an rnnkit run folder: expected a "
         "'last' or 'best' checkpoint", id="sample-not-a-run"),
    case("sample {R}/crun", "expected a language-model run, found kind 'classifier'",
         id="sample-classifier-run"),
    case("sample {R}/no-kind", "expected a language-model run, found kind None",
         id="sample-no-kind"),
    case("sample {R}/bad-json", "{R}/bad-json/best/config.json is corrupt: not valid JSON",
         id="sample-bad-json"),
    case("sample {R}/no-model", "checkpoint {R}/no-model/best is incomplete: missing "
         "model.safetensors", id="sample-incomplete"),
    case("sample {R}/dangling", "{R}/dangling: its best/last links point at missing "
         "checkpoints", id="sample-dangling-links"),
    case("sample {R}/bad-weights", "{R}/bad-weights/best/model.safetensors is corrupt",
         id="sample-bad-weights"),
    case("sample {R}/newer", "checkpoint format 99 is not one this rnnkit",
         id="sample-newer-format"),
    case("sample {R}/misfit", "{R}/misfit/best: the weights do not fit the saved "
         "configuration", id="sample-misfit"),
    case("sample {R}/vocab-mismatch", "{R}/vocab-mismatch/best/config.json is corrupt: the "
         "model has 3 tokens but the saved vocabulary", id="sample-vocab-mismatch"),
    case("sample {R}/bad-tokenizer", "the saved tokenizer has an unknown level 'morse'",
         "{R}/bad-tokenizer/best/config.json", id="sample-bad-tokenizer"),
    case("sample {R}/run-not-a-dict", "{R}/run-not-a-dict/best/config.json is corrupt",
         id="sample-run-section-not-a-dict"),
    case("sample {R}/model-not-a-dict", "{R}/model-not-a-dict/best/config.json is corrupt",
         id="sample-model-section-not-a-dict"),
    case("sample {R}/bad-backend", "{R}/bad-backend/best/config.json is corrupt: --backend "
         "must be one of auto, fused, reference, got 'gpu'", id="sample-bad-backend"),
    case("sample {R}/bad-hidden", "{R}/bad-hidden/best/config.json is corrupt:", "hidden",
         "'big'", id="sample-bad-hidden"),
    case("sample {R}/bad-val-fraction", "{R}/bad-val-fraction/best/config.json is corrupt:",
         "val_fraction", id="sample-bad-val-fraction"),
    # ---- sample: its flags
    case("sample " + LM + " --length 0", "--length must be at least 1, got 0",
         id="sample-length-zero"),
    case("sample " + LM + " --length -3", "--length must be at least 1, got -3",
         id="sample-length-negative"),
    case("sample " + LM + " --temperature 0", "--temperature must be positive, got 0; for the "
         "likeliest token at every step use --greedy", id="sample-temperature-zero"),
    case("sample " + LM + " --temperature nan", "--temperature must be a finite positive "
         "number, got nan", id="sample-temperature-nan"),
    case("sample " + LM + " --temperature inf", "--temperature must be a finite positive "
         "number, got inf", id="sample-temperature-infinite"),
    case("sample " + LM + " --top-k -1", "--top-k must be 0 (off) or positive, got -1",
         id="sample-top-k-negative"),
    case("sample " + LM + " --top-p 0", "--top-p must be in (0, 1], got 0.0",
         id="sample-top-p-zero"),
    case("sample " + LM + " --top-p 1.5", "--top-p must be in (0, 1], got 1.5",
         id="sample-top-p-above-one"),
    case("sample " + LM + " --top-p nan", "--top-p must be in (0, 1], got nan",
         id="sample-top-p-nan"),
    case("sample " + LM + " --beam -1", "--beam must be at least 1 (the beam's width), got -1",
         id="sample-beam-negative"),
    case("sample " + LM + " --beam 0", "--beam must be at least 1 (the beam's width), got 0",
         id="sample-beam-zero"),
    case("sample " + LM + " --greedy --temperature 0.5", "--greedy does not sample, so "
         "--temperature would be ignored; drop --temperature or --greedy",
         id="sample-greedy-and-temperature"),
    case("sample " + LM + " --greedy --top-k 5 --top-p 0.9", "--greedy does not sample, so "
         "--top-k and --top-p would be ignored", id="sample-greedy-and-top-k-top-p"),
    case("sample " + LM + " --beam 3 --top-k 5", "--beam does not sample, so --top-k would be "
         "ignored; drop --top-k or --beam", id="sample-beam-and-top-k"),
    case("sample " + LM + " --beam 3 --temperature 1", "--beam does not sample, so "
         "--temperature would be ignored", id="sample-beam-and-temperature-at-its-default"),
    case("sample " + LM + " --beam 2 --greedy", "choose one of --greedy and --beam",
         id="sample-beam-and-greedy"),
    case("sample " + LM + " --prime Zebra", "--prime 'Zebra':", "'b'",
         id="sample-prime-unknown-character"),
    # ---- eval
    case("eval gone c.txt", "run folder gone does not exist", id="eval-missing-run"),
    case("eval {R}/crun c.txt", "expected a language-model run, found kind 'classifier'",
         id="eval-classifier-run"),
    case("eval {R}/bad-json c.txt", "config.json is corrupt: not valid JSON",
         id="eval-bad-json"),
    case("eval " + LM + " none.txt", "FILE none.txt does not exist", id="eval-missing-file"),
    case("eval " + LM + " e.txt", "e.txt is empty; expected utf-8 text", files={"e.txt": ""},
         id="eval-empty-file"),
    case("eval " + LM + " x.txt", "x.txt is not valid utf-8 text", files={"x.txt": NOT_UTF8},
         id="eval-not-utf8"),
    case("eval " + LM + " d", "FILE folder d has no text files", files={"d/a.pdf": "x"},
         id="eval-folder-without-texts"),
    case("eval " + LM + " z.txt", "FILE z.txt:", "'#'", files={"z.txt": "###\n"},
         id="eval-unknown-character"),
    case("eval " + LM + " one.txt", "FILE one.txt has 1 token(s); at least 2 are needed",
         files={"one.txt": "a"}, after_tokenising=True, id="eval-one-token"),
    case("eval " + LM + " c.txt --batch-size -1", "--batch-size and --seq-len must be "
         "positive (0: the run's value)", id="eval-batch-size-negative"),
    case("eval " + LM + " c.txt --seq-len -1", "--batch-size and --seq-len must be positive",
         id="eval-seq-len-negative"),
    case("eval " + LM + " c.txt --encoding klingon", "--encoding 'klingon' is not an encoding "
         "Python knows", id="eval-unknown-encoding"),
    # ---- report
    case("report gone", "run folder gone does not exist", id="report-missing-run"),
    case("report {R}/not-a-run", "{R}/not-a-run is not an rnnkit run folder",
         id="report-not-a-run"),
    case("report {R}/crun", "expected a language-model run, found kind 'classifier'",
         id="report-classifier-run"),
    case("report {R}/bad-results", "{R}/bad-results/results.json is not an rnnkit results "
         "file", id="report-bad-results"),
    case("report " + LM + " --chars 1", "--chars must be at least 2, got 1",
         id="report-chars"),
    case("report " + LM + " --samples -1", "--samples must be 0 or more, got -1",
         id="report-samples-negative"),
    case("report " + LM + " --cells 1,x", "--cells expects comma-separated integers, got "
         "'1,x'", id="report-cells-not-numbers"),
    case("report " + LM + " --cells 99 --samples 0", "--cells 99: the model has 4 cells "
         "(0 to 3)", id="report-cell-out-of-range"),
    case("report " + LM + " --text none.txt --samples 0", "--text none.txt does not exist or "
         "is not a file", id="report-text-missing"),
    case("report " + LM + " --passage= --samples 0", "the passage is empty",
         id="report-passage-empty"),
    case("report " + LM + " --samples 0 --out nowhere/r.html", "--out nowhere/r.html: the "
         "folder nowhere does not exist", id="report-out-folder-missing"),
    # ---- gradflow
    case("gradflow --task sorting", "unknown task 'sorting'", id="gradflow-bad-task"),
    case("gradflow --cells lstm,tcn", "unknown cell 'tcn'", id="gradflow-bad-cell"),
    case("gradflow --T 0", "T", "0", id="gradflow-T-zero"),
    case("gradflow --batch-size 0", "--batch-size must be at least 1, got 0",
         id="gradflow-batch-size-zero"),
    case("gradflow --hidden 0", "--hidden must be at least 1, got 0", id="gradflow-hidden-zero"),
    case("gradflow --out g.jpg", "--out g.jpg: expected a .png file name",
         id="gradflow-out-not-png"),
    case("gradflow --out nowhere/g.png", "--out nowhere/g.png: the folder nowhere does not "
         "exist", id="gradflow-out-folder-missing"),
    # ---- longdep
    case("longdep --task sorting", "unknown task 'sorting'", id="longdep-bad-task"),
    case("longdep --cells tcn", "unknown cell 'tcn'", id="longdep-bad-cell"),
    case("longdep --seeds 0", "--seeds must be at least 1, got 0", id="longdep-seeds-zero"),
    case("longdep --workers 0", "--workers must be at least 1, got 0", id="longdep-workers-zero"),
    case("longdep --steps 0", "--steps must be a positive integer, got 0",
         id="longdep-steps-zero"),
    case("longdep --lr 0", "--lr must be positive, got 0.0", id="longdep-lr-zero"),
    case("longdep --zoneout 1.5", "zoneout", "probability", id="longdep-zoneout"),
    case("longdep --out c.txt", "--out c.txt is a file; expected a folder",
         id="longdep-out-is-a-file"),
]


@pytest.mark.parametrize("case_files, args, expected, after_tokenising", LANGUAGE_MODEL)
def test_language_model_bad_input_is_one_line(case_files, args, expected, after_tokenising,
                                              runs, tmp_path, monkeypatch, capsys):
    check_one_line(case_files, args, expected, after_tokenising, runs, tmp_path, monkeypatch,
                   capsys)


def test_sample_beam_of_one_is_greedy_and_defaults_do_not_conflict(runs, capsys):
    """``--beam 1`` (the narrowest beam allowed) gives --greedy's text, and --greedy or --beam
    alone is accepted: the sampling options' defaults are not counted as given."""
    lm = str(runs / "lm")
    texts = []
    for choice in (["--greedy"], ["--beam", "1"]):
        status, out, err = run_cli(["sample", lm, "--length", "30", "--prime", "And", *choice],
                                   capsys)
        assert status == 0 and "error" not in err, err
        texts.append(out)
    assert texts[0] == texts[1] and texts[0].startswith("And")
