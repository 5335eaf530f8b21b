"""``rnnkit demo`` and ``rnnkit longdep`` end to end at toy sizes (parallel workers, the JSON,
the report), and their one-line errors."""

from __future__ import annotations

import json

import pytest

from rnnkit.cli import main

TOY = ["--T", "12", "--steps", "30", "--eval-every", "10", "--hidden", "8", "--batch-size",
       "16", "--backend", "reference"]


def test_demo_writes_results_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--workers", "2", "--flow-T", "60", *TOY]) == 0
    printed = capsys.readouterr().out
    assert "Report: " + str(out / "report.html") in printed
    assert "lstm-chrono" in printed and "Gradient flow at initialisation" in printed
    data = json.loads((out / "results.json").read_text())
    runs = {(run["task"], run["cell"]): run for run in data["runs"]}
    assert set(runs) == {(task, cell) for task in ("adding", "recall")
                         for cell in ("rnn", "gru", "lstm", "lstm-chrono")}
    for run in runs.values():
        assert run["steps"] == 30 and run["curve"][0][0] == 0 and run["curve"][-1][0] == 30
        assert run["final"] == run["curve"][-1][1] and run["seconds"] >= 0
        assert len(run["gradient_flow"]["initial"]["hidden_norm"]) == 12
    flow = data["gradient_flow"]
    assert flow["length"] == 60 and set(flow["initial"]) == {"rnn", "gru", "lstm",
                                                              "lstm-chrono"}
    assert flow["initial"]["rnn"]["hidden_ratio_50"] < 1e-4
    assert flow["initial"]["lstm-chrono"]["cell_spread"] < 10
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6  # curves, flows, three gate heatmaps
    assert "Inside the trained chrono LSTM" in page
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_longdep_one_worker(tmp_path, capsys):
    out = tmp_path / "longdep"
    assert main(["longdep", "--task", "order", "--cells", "rnn,gru-chrono", "--seeds", "2",
                 "--out", str(out), "--workers", "1", *TOY]) == 0
    data = json.loads((out / "results.json").read_text())
    assert [(run["cell"], run["seed"]) for run in data["runs"]] == [
        ("rnn", 0), ("gru-chrono", 0), ("rnn", 1), ("gru-chrono", 1)]
    assert data["tasks"][0]["baseline"] == 0.25
    assert "order T=12" in capsys.readouterr().out


def test_longdep_takes_the_layer_variants(tmp_path, capsys):
    out = tmp_path / "variants"
    assert main(["longdep", "--task", "order", "--cells", "rnn,lstm", "--seeds", "1",
                 "--layer-norm", "--zoneout", "0.1", "--zoneout-cell", "0.05",
                 "--recurrent-dropout", "0.2", "--out", str(out), "--workers", "1", *TOY]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["variants"] == {"layer_norm": True, "zoneout": 0.1,
                                            "zoneout_cell": 0.05, "recurrent_dropout": 0.2}
    from rnnkit.tasks.models import build_layer

    lstm = build_layer("lstm", 2, 4, 10, variants=data["settings"]["variants"])
    assert lstm.variants.layer_norm and lstm.variants.zoneout_cell == 0.05
    rnn = build_layer("rnn", 2, 4, 10, variants=data["settings"]["variants"])
    assert not rnn.variants.layer_norm and rnn.variants.zoneout_hidden == 0.1


@pytest.mark.parametrize("arguments, message", [
    (["demo", "--T", "1"], "--T must be an integer of at least 2, got 1"),
    (["demo", "--steps", "0"], "--steps must be a positive integer, got 0"),
    (["demo", "--cells", "lstm,transformer"], "unknown cell 'transformer'; valid: rnn, gru"),
    (["demo", "--workers", "0"], "--workers must be at least 1"),
    (["longdep", "--task", "parity"], "unknown task 'parity'; valid: adding, recall, copy"),
    (["longdep", "--seeds", "0"], "--seeds must be at least 1"),
    (["longdep", "--lr", "-1"], "--lr must be positive"),
    (["longdep", "--zoneout", "1.5"], "cell rnn: `zoneout (p_h)` must be a probability in"),
    (["gradflow", "--T", "1"], "--T must be an integer of at least 2"),
    (["gradflow", "--out", "flow.svg"], "expected a .png file name"),
])
def test_bad_input_one_line(arguments, message, capsys):
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error


def test_demo_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["demo", "--out", str(target), *TOY]) == 2
    assert "is a file; expected a folder" in capsys.readouterr().err


def test_gradflow_command(tmp_path, capsys):
    out = tmp_path / "flow.png"
    assert main(["gradflow", "--cells", "rnn,lstm-chrono", "--T", "60", "--batch-size", "8",
                 "--out", str(out), "--backend", "reference"]) == 0
    numbers = json.loads(out.with_suffix(".json").read_text())
    assert numbers["rnn"]["hidden_decay"] < 0.8 < numbers["lstm-chrono"]["cell_decay"]
    assert out.read_bytes()[:4] == b"\x89PNG" and "lstm-chrono" in capsys.readouterr().out


def test_flow_summary_names_a_cell_gradient_that_underflows(capsys):
    """A ‖dL/dc‖ that reaches exactly 0 has no finite max/min: the line says so, not 'inf'."""
    from rnnkit.commands.demo import print_flow_summary

    def flow(cell_norm):
        return {"label": "lstm", "hidden_norm": [1.0, 0.5, 0.25], "cell_norm": cell_norm,
                "hidden_decay": 0.5, "cell_decay": 0.5}

    print_flow_summary({"gradient_flow": {"length": 3, "initial": {
        "lstm": flow([1.0, 0.5, 0.0]), "lstm-chrono": flow([1.0, 0.8, 0.5])}}})
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("max/min over 3 steps ∞ (it underflows to 0)")
    assert lines[2].endswith("max/min over 3 steps 2")
