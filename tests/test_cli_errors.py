"""Every bad input to ``rnnkit forecast`` and ``rnnkit classify``: exit status 2, one line
on stderr naming the input and what was expected, no traceback, nothing on stdout.

One table per app, one row per place a :class:`rnnkit.errors.UserError` is raised for it
(the commands, rnnkit/forecast/*, rnnkit/classify/*, and the shared checkpoint, training
configuration and tokenizer checks they reach). The runs that predict, eval, backtest and
--resume need are trained once (2 steps) per module; damaged copies of them stand for runs
that are not what they claim. Flags argparse itself refuses (a word for an integer, a
choice not offered) print its usage line first and are not in these tables.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.train.config import CLASSIFIER_DEFAULT_EPOCHS, FORECASTER_DEFAULT_EPOCHS
from tests.helpers import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def monthly(count: int = 60) -> str:
    rows = [f"{1950 + i // 12}-{i % 12 + 1:02d},{100 + 10 * math.sin(i):.2f},{i}"
            for i in range(count)]
    return "\n".join(["month,value,other", *rows]) + "\n"


def reviews(count: int = 40) -> str:
    rows = [f"{'good fine' if i % 2 else 'bad awful'} {i}\t{'pos' if i % 2 else 'neg'}"
            for i in range(count)]
    return "\n".join(["text\tlabel", *rows]) + "\n"


BASE_FILES = {"m.csv": monthly(), "r.tsv": reviews()}
NOT_UTF8 = b"\xff\xfe,\x80\n"




def edit_config(run: Path, change) -> None:
    """Rewrite the ``config.json`` of every checkpoint of ``run`` with ``change(dict)``."""
    for config_path in run.glob("checkpoints/*/config.json"):
        config = json.loads(config_path.read_text(encoding="utf-8"))
        change(config)
        config_path.write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A 2-step forecasting run, a 2-step classifier run, and damaged copies of them."""
    root = tmp_path_factory.mktemp("runs")
    for name, text in BASE_FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    tiny = ["--max-steps", "2", "--no-progress", "--threads", "1", "--hidden", "4"]
    assert main(["forecast", "train", str(root / "m.csv"), "--target", "value", "--horizon", "3",
                 "--lookback", "6", "--val-size", "12", "--test-size", "12", "--out",
                 str(root / "frun"), *tiny]) == 0
    assert main(["classify", "train", str(root / "r.tsv"), "--embedding", "4", "--out",
                 str(root / "crun"), *tiny]) == 0

    def damaged(name: str, source: str = "frun") -> Path:
        copy = root / name
        shutil.copytree(root / source, copy, symlinks=True)
        return copy

    (damaged("bad-json") / "last" / "config.json").write_text("{", encoding="utf-8")
    (damaged("no-model") / "last" / "model.safetensors").unlink()
    shutil.rmtree(damaged("dangling") / "checkpoints")
    (damaged("bad-weights") / "last" / "model.safetensors").write_bytes(b"garbage")
    edit_config(damaged("newer"), lambda c: c.update(format_version=99))
    edit_config(damaged("misfit"), lambda c: c["run"]["model"].update(hidden=5))
    edit_config(damaged("no-scaler"), lambda c: c.pop("scaler"))
    edit_config(damaged("run-not-a-dict"), lambda c: c.update(run="lstm"))
    edit_config(damaged("c-run-not-a-dict", "crun"), lambda c: c["run"].update(model="lstm"))
    edit_config(damaged("no-val"), lambda c: c["run"]["data"].update(val_size=0,
                                                                      val_fraction=0.0))
    edit_config(damaged("long-season"), lambda c: c["run"]["data"].update(season=50))
    (root / "not-a-run").mkdir()
    return root


def check_one_line(case_files: dict, args: str, expected: tuple, runs: Path, tmp_path,
                   monkeypatch, capsys) -> None:
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
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and out == "", (out, err)
    for fragment in expected:
        assert fragment.format(R=runs) in err, err


def case(args, *expected, files=None, id):
    return pytest.param(files or {}, args, expected, id=id)


TRAIN = "forecast train m.csv --target value --horizon 3 --out new"
FRUN = "{R}/frun"

FORECAST = [
    # ---- forecast train: what to read
    case("forecast train", "give the series", "DATA.csv --target COLUMN --horizon H",
         id="train-no-data"),
    case("forecast train m.csv --horizon 3", "--target is required: the column of m.csv to "
         "forecast; its columns are 'month', 'value', 'other'", id="train-no-target"),
    case("forecast train m.csv", "--target is required", "'month', 'value', 'other'",
         id="train-no-target-no-horizon"),  # --target first: its fix needs the columns
    case("forecast train none.csv", "DATA none.csv does not exist or is not a file",
         id="train-missing-file-before-target"),
    case("forecast train m.csv --target Sales", "m.csv: no column 'Sales' (--target); the "
         "columns found are 'month', 'value', 'other'", id="train-wrong-target-no-horizon"),
    case("forecast train m.csv --target value --covariates nope", "m.csv: no column 'nope' "
         "(--covariates)", id="train-wrong-covariate-no-horizon"),
    case("forecast train m.csv --target value", "--horizon is required", id="train-no-horizon"),
    case("forecast train none.csv --target value --horizon 3",
         "DATA none.csv does not exist or is not a file", id="train-missing-file"),
    case("forecast train folder --target value --horizon 3",
         "DATA folder does not exist or is not a file", files={"folder/x": ""},
         id="train-folder"),
    case("forecast train bin.csv --target value --horizon 3", "DATA bin.csv is not UTF-8 text",
         files={"bin.csv": NOT_UTF8}, id="train-not-utf8"),
    case("forecast train empty.csv --target value --horizon 3",
         "DATA empty.csv is empty; expected a CSV with a header line", files={"empty.csv": ""},
         id="train-empty"),
    case("forecast train h.csv --target value --horizon 3",
         "h.csv has 0 data row(s); a series needs at least 2", files={"h.csv": "step,value\n"},
         id="train-header-only"),
    case("forecast train one.csv --target value --horizon 3",
         "one.csv has 1 data row(s); a series needs at least 2",
         files={"one.csv": "a,value\n1,2\n"}, id="train-one-row"),
    # ---- columns
    case("forecast train m.csv --target Sales --horizon 3",
         "m.csv: no column 'Sales' (--target); the columns found are 'month', 'value', 'other'",
         id="train-wrong-target"),
    case(TRAIN + " --covariates other,nope", "m.csv: no column 'nope' (--covariates)",
         id="train-wrong-covariate"),
    case(TRAIN + " --covariates value", "m.csv: a column is named twice in --target and "
         "--covariates", id="train-covariate-is-target"),
    case(TRAIN + " --time-col when", "m.csv: no column 'when' (--time-col)",
         id="train-wrong-time-col"),
    case(TRAIN + " --time-col value", "m.csv: --time-col 'value' is also the target",
         id="train-time-col-is-target"),
    # ---- values and timestamps
    case("forecast train x.csv --target value --horizon 3",
         "x.csv: row 3, column 'value': 'abc' is not a number",
         files={"x.csv": "month,value\n1950-01,1\n1950-02,abc\n"}, id="train-not-a-number"),
    case("forecast train x.csv --target value --horizon 3",
         "x.csv: row 3, column 'value': 'inf' is infinite",
         files={"x.csv": "month,value\n1950-01,1\n1950-02,inf\n"}, id="train-infinite"),
    case("forecast train x.csv --target value --horizon 3",
         "x.csv: row 3 has 1 field(s); the header has 2",
         files={"x.csv": "month,value\n1950-01,1\n1950-02\n"}, id="train-short-row"),
    case("forecast train x.csv --target value --time-col when --horizon 3",
         "x.csv: row 2, column 'when': 'soon' is not a date or time",
         files={"x.csv": "when,value\nsoon,1\nlater,2\n"}, id="train-bad-timestamp"),
    case("forecast train x.csv --target value --horizon 3",
         "x.csv: the timestamps are not in increasing order", "pass --sort",
         files={"x.csv": "month,value\n1950-02,1\n1950-01,2\n"}, id="train-unsorted"),
    case("forecast train x.csv --target value --horizon 3",
         "x.csv: rows 2 and 3 have the same timestamp", "one reading per time step",
         files={"x.csv": "month,value\n1950-01,1\n1950-01,2\n"}, id="train-same-timestamp"),
    case("forecast train x.csv --target value --horizon 3",
         "x.csv: a gap in the timestamps: 1 monthly step(s) missing", "--fill forward",
         files={"x.csv": "month,value\n1950-01,1\n1950-02,2\n1950-04,3\n"},
         id="train-gap"),
    case("forecast train x.csv --target value --horizon 3",
         "x.csv: row 3 (1950-02-01 00:00:00) is not a whole number of", "equally spaced",
         files={"x.csv": "day,value\n1950-01-01,1\n1950-02-01,2\n1950-02-15,3\n"},
         id="train-uneven-steps"),
    case("forecast train x.csv --target value --horizon 3",
         "x.csv: row 3, column 'value' has no value", "pass --fill forward, linear or zero",
         files={"x.csv": "month,value\n1950-01,1\n1950-02,\n1950-03,3\n"},
         id="train-empty-cell"),
    case("forecast train x.csv --target value --horizon 3 --fill linear",
         "x.csv: column 'value' has no values at all; --fill linear needs at least one",
         files={"x.csv": "step,value\n1,\n2,\n3,\n"}, id="train-fill-empty-column"),
    case(TRAIN + " --fill sometimes", "--fill must be one of error, forward, linear, zero, "
         "got 'sometimes'", id="train-bad-fill"),
    # ---- split and windows
    case(TRAIN + " --val-fraction 1", "--val-fraction must be in [0, 1), got 1.0",
         id="train-val-fraction"),
    case(TRAIN + " --test-fraction -0.1", "--test-fraction must be in [0, 1), got -0.1",
         id="train-test-fraction"),
    case(TRAIN + " --val-size -1", "--val-size and --test-size must be positive",
         id="train-negative-val-size"),
    case(TRAIN + " --test-size 70", "the series has 60 points: nothing is left for training "
         "after 12 validation and 70 test points", id="train-test-size-too-large"),
    case(TRAIN + " --lookback 0", "--lookback and --horizon must be positive, got 0 and 3",
         id="train-lookback-zero"),
    case("forecast train m.csv --target value --horizon -2 --out new",
         "--lookback and --horizon must be positive, got 24 and -2", id="train-horizon-negative"),
    case("forecast train m.csv --target value --horizon 20 --out new",
         "--lookback 24 is longer than the series allows: with --horizon 20 a training window "
         "reads at most 16 points (the training part has 36 of the series' 60); give --lookback "
         "16 or less", id="train-lookback-too-long"),
    case("forecast train m.csv --target value --horizon 36 --lookback 1 --out new",
         "--horizon 36 is longer than the series allows", "--lookback 1 + --horizon 36 = 37",
         "the training part has 36", id="train-horizon-too-long"),
    case(TRAIN + " --lookback 3 --val-size 2", "--horizon 3 is longer than the val part "
         "(2 points) allows", "(--val-size)", id="train-horizon-longer-than-val"),
    case(TRAIN + " --lookback 3 --test-size 2", "--horizon 3 is longer than the test part "
         "(2 points) allows", "(--test-size)", id="train-horizon-longer-than-test"),
    case(TRAIN + " --stride 0", "--stride must be a positive number of steps, got 0",
         id="train-stride-zero"),
    case(TRAIN + " --stride -1", "--stride must be a positive number of steps, got -1",
         id="train-stride-negative"),
    case(TRAIN + " --season -1", "--season must be a number of steps >= 1 (or 0: from the "
         "frequency), got -1", id="train-season-negative"),
    case(TRAIN + " --scale robust", "--scale must be one of standard, minmax, log, none, got "
         "'robust'",
         id="train-bad-scale"),
    # ---- model
    case(TRAIN + " --quantiles 0.1,x", "--quantiles must be numbers separated by commas",
         "got '0.1,x'", id="train-quantiles-not-numbers"),
    case(TRAIN + " --quantiles ,", "--quantiles must be numbers separated by commas",
         "got ','", id="train-quantiles-empty"),
    case(TRAIN + " --quantiles 0,0.5", "--quantiles must lie strictly between 0 and 1, got "
         "0.0,0.5", id="train-quantiles-out-of-range"),
    case(TRAIN + " --quantiles 0.9,0.1", "--quantiles must be increasing and distinct",
         id="train-quantiles-unsorted"),
    case(TRAIN + " --cell transformer", "--cell must be one of rnn, gru, lstm, indrnn, got "
         "'transformer'", id="train-bad-cell"),
    case(TRAIN + " --head mlp", "--head must be one of direct, seq2seq, got 'mlp'",
         id="train-bad-head"),
    case(TRAIN + " --window-norm max", "--window-norm must be one of last, mean, none, got "
         "'max'", id="train-bad-window-norm"),
    case(TRAIN + " --model segrnn --segment 3 --lookback 6 --window-norm mean",
         "--window-norm with --model segrnn must be one of last, segment, none, got 'mean'",
         id="train-segrnn-window-norm"),
    case(TRAIN + " --model segrnn --segment 3 --lookback 6 --layers 2", "--model segrnn has "
         "one recurrent layer and its own parallel decoder: leave --layers and --head out",
         id="train-segrnn-layers"),
    case(TRAIN + " --loss huber", "--loss must be one of mse, mae, got 'huber'",
         id="train-bad-loss"),
    case(TRAIN + " --backend gpu", "--backend must be one of auto, fused, reference, got 'gpu'",
         id="train-bad-backend"),
    case(TRAIN + " --hidden 0", "--hidden must be a positive integer, got 0",
         id="train-hidden-zero"),
    case(TRAIN + " --layers 0", "--layers must be a positive integer, got 0",
         id="train-layers-zero"),
    case(TRAIN + " --dropout 1", "--dropout must be in [0, 1), got 1.0", id="train-dropout"),
    # ---- training
    case(TRAIN + " --batch-size 0", "--batch-size must be a positive integer, got 0",
         id="train-batch-size-zero"),
    case(TRAIN + " --log-every 0", "--log-every must be a positive integer, got 0",
         id="train-log-every-zero"),
    case(TRAIN + " --patience -1", "--patience must be a non-negative integer, got -1",
         id="train-patience-negative"),
    case(TRAIN + " --lr 0", "--lr must be positive, got 0.0", id="train-lr-zero"),
    case(TRAIN + " --clip nan", "--clip must be a finite number >= 0, got nan",
         id="train-clip-nan"),
    case(TRAIN + " --epochs -1", "--epochs must be a finite number >= 0, got -1.0",
         id="train-epochs-negative"),
    case(TRAIN + " --schedule step", "--schedule must be one of constant, cosine, plateau, "
         "got 'step'", id="train-bad-schedule"),
    case("forecast train m.csv --target value --horizon 3 --out " + FRUN,
         "--out {R}/frun already holds a run; continue it with --resume", id="train-out-taken"),
    # ---- --resume
    case("forecast train m.csv --resume " + FRUN, "--resume continues the run with its saved "
         "data and model; give only budgets", id="resume-with-data"),
    case("forecast train --resume " + FRUN + " --hidden 8", "--hidden cannot change (only "
         "budgets: --max-steps, --epochs, --time-budget, --patience); the run has hidden = 4",
         id="resume-with-model-flag"),
    case("forecast train --resume " + FRUN + " --quantiles 0.5", "--quantiles cannot change",
         "the run has quantiles = []", id="resume-with-quantiles"),
    case("forecast train --resume " + FRUN + " --lr 0.1", "--lr cannot change (only "
         "budgets: --max-steps, --epochs, --time-budget, --patience)", id="resume-with-lr"),
    case("forecast train --resume gone", "run folder gone does not exist",
         id="resume-missing"),
    case("forecast train --resume " + FRUN + "/last", "--resume takes the run folder, not the "
         "checkpoint {R}/frun/last", id="resume-checkpoint"),
    case("forecast train --resume {R}/crun", "{R}/crun/last/config.json: expected a "
         "forecasting run, found kind 'classifier'", id="resume-classifier-run"),
    case("forecast train --resume {R}/not-a-run", "{R}/not-a-run is not an rnnkit run folder",
         id="resume-not-a-run"),
    # ---- predict: the run
    case("forecast predict gone", "run folder gone does not exist", id="predict-missing-run"),
    case("forecast predict m.csv", "m.csv is a file; expected an rnnkit run folder",
         id="predict-file-as-run"),
    case("forecast predict {R}/not-a-run", "{R}/not-a-run is not an rnnkit run folder: "
         "expected a 'last' or 'best' checkpoint", id="predict-not-a-run"),
    case("forecast predict {R}/crun", "expected a forecasting run, found kind 'classifier'",
         id="predict-classifier-run"),
    case("forecast predict {R}/bad-json", "{R}/bad-json/best/config.json is corrupt: not valid "
         "JSON", id="predict-bad-json"),
    case("forecast predict {R}/no-model", "checkpoint {R}/no-model/best is incomplete: missing "
         "model.safetensors", id="predict-incomplete"),
    case("forecast predict {R}/dangling", "{R}/dangling: its best/last links point at missing "
         "checkpoints", id="predict-dangling-links"),
    case("forecast predict {R}/bad-weights", "{R}/bad-weights/best/model.safetensors is "
         "corrupt", id="predict-bad-weights"),
    case("forecast predict {R}/newer", "checkpoint format 99 is not one this rnnkit",
         id="predict-newer-format"),
    case("forecast predict {R}/misfit", "{R}/misfit/best/config.json is corrupt or does not fit "
         "its weights", id="predict-misfit"),
    case("forecast predict {R}/no-scaler", "{R}/no-scaler/best/config.json is corrupt or does "
         "not fit its weights ('scaler')", id="predict-no-scaler"),
    case("forecast predict {R}/run-not-a-dict", "{R}/run-not-a-dict/best/config.json is corrupt "
         "or does not fit its weights", id="predict-run-section-not-a-dict"),
    # ---- predict: its flags
    case("forecast predict " + FRUN + " --horizon 4", "--horizon 4: this model forecasts 1 to 3 "
         "steps", id="predict-horizon-too-long"),
    case("forecast predict " + FRUN + " --horizon -1", "--horizon -1: this model forecasts 1 "
         "to 3 steps", id="predict-horizon-negative"),
    case("forecast predict " + FRUN + " --data none.csv", "--data none.csv does not exist or is "
         "not a file", id="predict-missing-data"),
    case("forecast predict " + FRUN + " --data x.csv", "x.csv: no column 'value' (--target); "
         "the columns found are 'month', 'price'",
         files={"x.csv": "month,price\n1950-01,1\n1950-02,2\n"}, id="predict-data-no-target"),
    case("forecast predict " + FRUN + " --data x.csv", "x.csv has 3 points; the model reads "
         "the last 6 (--lookback)", files={"x.csv": "month,value\n1950-01,1\n1950-02,2\n"
                                                     "1950-03,3\n"}, id="predict-data-too-short"),
    case("forecast predict " + FRUN + " --out nowhere/f.csv", "cannot write nowhere/f.csv: the "
         "folder nowhere does not exist", id="predict-out-folder-missing"),
    case("forecast predict " + FRUN + " --out f.csv --plot nowhere/f.png", "cannot write "
         "nowhere/f.png: the folder nowhere does not exist", id="predict-plot-folder-missing"),
    case("forecast predict " + FRUN + " --out f.csv --history -1", "--history must be a number "
         "of past points >= 0", "got -1", id="predict-history-negative"),
    # ---- backtest
    case("forecast backtest gone", "run folder gone does not exist", id="backtest-missing-run"),
    case("forecast backtest {R}/crun", "expected a forecasting run, found kind 'classifier'",
         id="backtest-classifier-run"),
    case("forecast backtest " + FRUN + " --stride 0", "--stride must be a positive number of "
         "steps, got 0", id="backtest-stride-zero"),
    case("forecast backtest {R}/no-val --part val", "the val part of", "has no full window of "
         "--horizon 3; nothing to backtest", id="backtest-no-val-part"),
    case("forecast backtest " + FRUN + " --data x.csv", "the series has 20 points: nothing is "
         "left for training after 12 validation and 12 test points",
         files={"x.csv": monthly(20)}, id="backtest-data-too-short"),
    case("forecast backtest " + FRUN + " --data x.csv", "x.csv: no column 'value' (--target)",
         files={"x.csv": "month,price\n1950-01,1\n1950-02,2\n"}, id="backtest-data-no-target"),
    case("forecast backtest {R}/long-season", "the seasonal-naive baseline needs 50 points "
         "before the first origin", "--season 50", id="backtest-season-too-long"),
]


@pytest.mark.parametrize("case_files, args, expected", FORECAST)
def test_forecast_bad_input_is_one_line(case_files, args, expected, runs, tmp_path,
                                        monkeypatch, capsys):
    check_one_line(case_files, args, expected, runs, tmp_path, monkeypatch, capsys)


CTRAIN = "classify train r.tsv --out new"
CRUN = "{R}/crun"
VECTORS = {"w.tsv": "text\tlabel\ngood\tx\nbad\ty\ngood bad\tx\n", "v.txt": "good 0.1 0.2\n"}

CLASSIFY = [
    # ---- classify train: what to read
    case("classify train", "give the data: rnnkit classify train DATA", id="train-no-data"),
    case("classify train none.tsv", "DATA none.tsv does not exist", id="train-missing-file"),
    case("classify train bin.tsv", "DATA bin.tsv is not UTF-8 text", files={"bin.tsv": NOT_UTF8},
         id="train-not-utf8"),
    case("classify train e.tsv", "DATA e.tsv is empty; expected a header line and labelled "
         "texts", files={"e.tsv": ""}, id="train-empty"),
    case("classify train x.tsv", "x.tsv: no text column found by name (tried text, document",
         "the columns found are 'a', 'label': name it with --text-col",
         files={"x.tsv": "a\tlabel\nhi\t1\n"}, id="train-no-text-column"),
    case("classify train x.tsv", "x.tsv: no label column found by name (tried label",
         "the columns found are 'text', 'stars': name it with --label-col",
         files={"x.tsv": "text\tstars\nhi\t1\n"}, id="train-no-label-column"),
    case(CTRAIN + " --text-col body", "r.tsv: no column 'body' (--text-col); the columns found "
         "are 'text', 'label'", id="train-wrong-text-col"),
    case(CTRAIN + " --label-col rating", "r.tsv: no column 'rating' (--label-col)",
         id="train-wrong-label-col"),
    case(CTRAIN + " --text-col text --label-col text", "r.tsv: --text-col and --label-col name "
         "the same column", id="train-same-column"),
    case("classify train x.tsv", "x.tsv: line 2 has 1 field(s); expected at least 2 (the text "
         "in column 1, the label in column 2)", files={"x.tsv": "text\tlabel\nhello\n"},
         id="train-short-line"),
    case("classify train x.tsv", "x.tsv: line 2 has an empty label",
         files={"x.tsv": "text\tlabel\nhello\t \n"}, id="train-empty-label"),
    case("classify train x.tsv", "DATA x.tsv holds no labelled text",
         files={"x.tsv": "text\tlabel\n \tpos\n"}, id="train-no-text"),
    case("classify train x.tsv", "the label column of x.tsv has only one class ('pos'); a "
         "classifier needs at least two", files={"x.tsv": "text\tlabel\na\tpos\nb\tpos\n"},
         id="train-one-class"),
    case("classify train d", "DATA d is a folder without class subfolders; expected one "
         "subfolder per class", files={"d/a.txt": "hello"}, id="train-folder-without-classes"),
    case("classify train d", "DATA d: the class subfolders hold no text files",
         files={"d/pos/.hidden": "x", "d/neg/.hidden": "y"}, id="train-folder-no-texts"),
    case("classify train d", "d/pos/1.txt is not UTF-8 text",
         files={"d/pos/1.txt": NOT_UTF8, "d/neg/1.txt": "bad"}, id="train-folder-not-utf8"),
    case("classify train d", "d has only one class ('pos')", files={"d/pos/1.txt": "good"},
         id="train-folder-one-class"),
    case(CTRAIN + " --val none.tsv", "--val none.tsv does not exist", id="train-missing-val"),
    case(CTRAIN + " --val v.tsv", "--val v.tsv has label(s) 'meh' the training data lacks; the "
         "classes are neg, pos", files={"v.tsv": "text\tlabel\nso so\tmeh\n"},
         id="train-val-unknown-label"),
    case(CTRAIN + " --val-fraction 0", "--val-fraction must be in (0, 1), got 0.0",
         id="train-val-fraction-zero"),
    case(CTRAIN + " --val-fraction 1", "--val-fraction must be in (0, 1), got 1.0",
         id="train-val-fraction-one"),
    # ---- tokens
    case(CTRAIN + " --level sentence", "--level must be one of char, word, bpe, got 'sentence'",
         id="train-bad-level"),
    case(CTRAIN + " --min-count 0", "--min-count must be at least 1", id="train-min-count"),
    case(CTRAIN + " --max-len -1", "--max-len and --max-vocab >= 0", id="train-max-len"),
    case(CTRAIN + " --max-vocab -1", "--max-len and --max-vocab >= 0", id="train-max-vocab"),
    case(CTRAIN + " --level bpe --vocab-size 100", "--vocab-size must be at least 257 for bpe, "
         "got 100", id="train-bpe-vocab-size"),
    # ---- model
    case(CTRAIN + " --cell transformer", "--cell must be one of rnn, gru, lstm, indrnn, got "
         "'transformer'", id="train-bad-cell"),
    case(CTRAIN + " --pooling attention", "--pooling must be one of max, mean, last, mean-max, "
         "got 'attention'", id="train-bad-pooling"),
    case(CTRAIN + " --backend gpu", "--backend must be one of auto, fused, reference, got 'gpu'",
         id="train-bad-backend"),
    case(CTRAIN + " --hidden 0", "--hidden must be a positive integer, got 0",
         id="train-hidden-zero"),
    case(CTRAIN + " --embedding 0", "--embedding must be a positive integer, got 0",
         id="train-embedding-zero"),
    case(CTRAIN + " --layers 0", "--layers must be a positive integer, got 0",
         id="train-layers-zero"),
    case(CTRAIN + " --dropout 1", "--dropout must be in [0, 1), got 1.0", id="train-dropout"),
    case(CTRAIN + " --embedding-dropout -0.1", "--embedding-dropout must be in [0, 1), got -0.1",
         id="train-embedding-dropout"),
    # ---- pretrained embeddings
    case(CTRAIN + " --freeze-embeddings", "--freeze-embeddings needs --pretrained-embeddings "
         "FILE", id="train-freeze-without-vectors"),
    case("classify train w.tsv --level word --out new --pretrained-embeddings none.txt",
         "--pretrained-embeddings none.txt does not exist or is not a file", files=VECTORS,
         id="train-vectors-missing"),
    case("classify train w.tsv --level word --out new --pretrained-embeddings x.txt",
         "x.txt: line 2 has 1 numbers; expected 2 (a token and its vector per line)",
         files={**VECTORS, "x.txt": "good 0.1 0.2\nbad 0.3\n"}, id="train-vectors-ragged"),
    case("classify train w.tsv --level word --out new --pretrained-embeddings x.txt",
         "x.txt: line 1: the vector of 'good' is not all numbers",
         files={**VECTORS, "x.txt": "good 0.1 x\n"}, id="train-vectors-not-numbers"),
    case("classify train w.tsv --level word --out new --pretrained-embeddings x.txt",
         "x.txt holds no vectors; expected lines of a token and its numbers",
         files={**VECTORS, "x.txt": ""}, id="train-vectors-empty"),
    case("classify train w.tsv --level word --out new --pretrained-embeddings x.txt",
         "x.txt is not UTF-8 text", "expected word vectors",
         files={**VECTORS, "x.txt": NOT_UTF8}, id="train-vectors-not-utf8"),
    case("classify train w.tsv --level word --out new --pretrained-embeddings v.txt "
         "--embedding 5", "--embedding 5 differs from the 2 numbers per vector of "
         "--pretrained-embeddings v.txt", files=VECTORS, id="train-vectors-wrong-size"),
    # ---- training
    case(CTRAIN + " --batch-size 0", "--batch-size must be a positive integer, got 0",
         id="train-batch-size-zero"),
    case(CTRAIN + " --eval-every -1", "--eval-every must be a non-negative integer, got -1",
         id="train-eval-every-negative"),
    case(CTRAIN + " --lr -1", "--lr must be a finite number >= 0, got -1.0",
         id="train-lr-negative"),
    case(CTRAIN + " --epochs inf", "--epochs must be a finite number >= 0, got inf",
         id="train-epochs-infinite"),
    case(CTRAIN + " --schedule step", "--schedule must be one of constant, cosine, plateau, "
         "got 'step'", id="train-bad-schedule"),
    case("classify train r.tsv --out " + CRUN, "--out {R}/crun already holds a run; continue "
         "it with --resume", id="train-out-taken"),
    # ---- --resume
    case("classify train r.tsv --resume " + CRUN, "--resume continues the run with its saved "
         "data and model; give only budgets", id="resume-with-data"),
    case("classify train --resume " + CRUN + " --unidirectional", "--unidirectional cannot "
         "change", "the run has bidirectional = True", id="resume-with-unidirectional"),
    case("classify train --resume " + CRUN + " --hidden 8", "--hidden cannot change (only "
         "budgets: --max-steps, --epochs, --time-budget, --patience); the run has hidden = 4",
         id="resume-with-model-flag"),
    case("classify train --resume " + CRUN + " --lr 0.1", "--lr cannot change (only "
         "budgets: --max-steps, --epochs, --time-budget, --patience)", id="resume-with-lr"),
    case("classify train --resume gone", "run folder gone does not exist", id="resume-missing"),
    case("classify train --resume " + CRUN + "/last", "--resume takes the run folder, not the "
         "checkpoint {R}/crun/last", id="resume-checkpoint"),
    case("classify train --resume {R}/frun", "{R}/frun/last/config.json: expected a classifier "
         "run, found kind 'forecaster'", id="resume-forecasting-run"),
    case("classify train --resume {R}/not-a-run", "{R}/not-a-run is not an rnnkit run folder",
         id="resume-not-a-run"),
    # ---- predict
    case("classify predict gone r.tsv", "run folder gone does not exist",
         id="predict-missing-run"),
    case("classify predict r.tsv r.tsv", "r.tsv is a file; expected an rnnkit run folder",
         id="predict-file-as-run"),
    case("classify predict {R}/not-a-run r.tsv", "{R}/not-a-run is not an rnnkit run folder",
         id="predict-not-a-run"),
    case("classify predict {R}/frun r.tsv", "{R}/frun/best/config.json: expected a classifier "
         "run, found kind 'forecaster'", id="predict-forecasting-run"),
    case("classify predict {R}/c-run-not-a-dict r.tsv", "{R}/c-run-not-a-dict/best/config.json "
         "is corrupt or does not fit its weights", id="predict-corrupt-config"),
    case("classify predict " + CRUN + " none.txt", "FILE none.txt does not exist",
         id="predict-missing-file"),
    case("classify predict " + CRUN + " d", "FILE d is a folder; expected one text per line",
         files={"d/a.txt": "x"}, id="predict-folder"),
    case("classify predict " + CRUN + " bin.txt", "FILE bin.txt is not UTF-8 text",
         files={"bin.txt": NOT_UTF8}, id="predict-not-utf8"),
    # ---- eval
    case("classify eval {R}/frun r.tsv", "expected a classifier run, found kind 'forecaster'",
         id="eval-forecasting-run"),
    case("classify eval " + CRUN + " none.tsv", "FILE none.tsv does not exist",
         id="eval-missing-file"),
    case("classify eval " + CRUN + " e.tsv", "FILE e.tsv is empty", files={"e.tsv": ""},
         id="eval-empty-file"),
    case("classify eval " + CRUN + " x.tsv", "FILE x.tsv has label(s) 'meh' the model does not "
         "know; its classes are neg, pos", files={"x.tsv": "text\tlabel\nso so\tmeh\n"},
         id="eval-unknown-label"),
    case("classify eval " + CRUN + " r.tsv --label-col rating", "r.tsv: no column 'rating' "
         "(--label-col)", id="eval-wrong-label-col"),
    case("classify eval " + CRUN + " x.tsv", "x.tsv: no column 'text' (--text-col); the "
         "columns found are 'body', 'label'", files={"x.tsv": "body\tlabel\nhi\tpos\n"},
         id="eval-run-text-column-missing"),
    case("classify eval " + CRUN + " d", "FILE d is a folder without class subfolders",
         files={"d/a.txt": "x"}, id="eval-folder-without-classes"),
]


@pytest.mark.parametrize("case_files, args, expected", CLASSIFY)
def test_classify_bad_input_is_one_line(case_files, args, expected, runs, tmp_path,
                                        monkeypatch, capsys):
    check_one_line(case_files, args, expected, runs, tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize("args, epochs", [
    ("forecast train m.csv --target value --horizon 3 --lookback 6 --val-size 12 --test-size 12",
     FORECASTER_DEFAULT_EPOCHS),
    ("classify train r.tsv --embedding 4", CLASSIFIER_DEFAULT_EPOCHS),
], ids=["forecast", "classify"])
def test_cosine_without_a_budget_decays_over_the_default_epochs(args, epochs, tmp_path,
                                                                 monkeypatch, capsys):
    """Not a user error: --epochs has a default when no budget is given (its help says so),
    and the cosine schedule decays over it."""
    from rnnkit.train.metrics import read_metrics

    monkeypatch.chdir(tmp_path)
    for name, text in BASE_FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    argv = [*args.split(), "--schedule", "cosine", "--hidden", "4", "--threads", "1",
            "--no-progress", "--log-every", "1", "--out", "run"]
    status, out, err = run_cli(argv, capsys)
    assert status == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert saved["train"]["schedule"] == "cosine" and saved["train"]["epochs"] == epochs
    assert "(epochs)" in out
    rates = [record["lr"] for record in read_metrics(tmp_path / "run")
             if record["kind"] == "train"]
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0] / 10, rates
