"""The benchmark table: its arithmetic, its rows, its CLI (nothing here asserts on a time)."""

from __future__ import annotations

import json

import pytest

from rnnkit import bench
from rnnkit.cli import main


def test_gemm_flops_by_hand():
    # LSTM, N=2, H=3, I=5, T=7: forward 2 * T * N * 4H * (I + H); backward twice that again
    assert bench.gemm_flops("lstm", 2, 3, 7, 5, "forward") == 2 * 7 * 2 * 12 * 8
    assert bench.gemm_flops("lstm", 2, 3, 7, 5, "forward_backward") == 3 * 2 * 7 * 2 * 12 * 8
    assert bench.gemm_flops("gru", 1, 4, 1, 4, "forward") == 2 * 12 * 8
    assert bench.gemm_flops("rnn", 1, 4, 1, 4, "forward") == 2 * 4 * 8


def test_sizes_cover_the_matrix_in_table_order():
    cells = bench.sizes(["lstm", "rnn"], [1, 8], [64], [50, 200])
    assert cells == [
        ("lstm", 1, 64, 50), ("lstm", 8, 64, 50), ("lstm", 1, 64, 200), ("lstm", 8, 64, 200),
        ("rnn", 1, 64, 50), ("rnn", 8, 64, 50), ("rnn", 1, 64, 200), ("rnn", 8, 64, 200),
    ]
    default = bench.sizes(bench.FAMILIES, bench.BATCHES, bench.HIDDENS, bench.STEPS)
    assert len(default) == 3 * 4 * 5 * 2


def test_side_by_side_runs_both_alternately():
    calls = []
    bench.side_by_side(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up each, then alternating


def test_measure_row_is_consistent():
    row = bench.measure("gru", batch=2, hidden=4, steps=3, repeats=1, peak_gflops=10.0)
    assert (row["family"], row["batch"], row["hidden"], row["T"]) == ("gru", 2, 4, 3)
    for mode in bench.MODES:
        entry = row[mode]
        assert entry["ratio"] == pytest.approx(entry["torch_s"] / entry["rnnkit_s"])
        flops = bench.gemm_flops("gru", 2, 4, 3, 4, mode)
        assert entry["rnnkit_gflops"] == pytest.approx(flops / entry["rnnkit_s"] / 1e9)
        assert entry["rnnkit_peak_share"] == pytest.approx(entry["rnnkit_gflops"] / 10.0)
    line = bench.format_row(row)
    assert line.startswith("gru        2      4    3 |")
    assert f"{row['forward']['ratio']:6.2f}" in line


def test_cli_bench_json_to_stdout(capsys):
    argv = ["bench", "--families", "rnn", "--batch", "1", "--hidden", "4", "--T", "2",
            "--repeats", "1", "--json", "-"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["environment"]["sgemm_peak_gflops"] > 0
    assert [(r["family"], r["batch"], r["hidden"], r["T"]) for r in result["rows"]] == [
        ("rnn", 1, 4, 2)
    ]


def test_cli_bench_table_and_bad_sizes(capsys):
    argv = ["bench", "--families", "lstm", "--batch", "1", "--hidden", "4", "--T", "2",
            "--repeats", "1", "--backend", "reference"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(backend reference)" in out and bench.HEADER in out
    *_, last_row, note = out.strip().splitlines()
    assert last_row.startswith("lstm       1      4    2 |")
    assert note == bench.PEAK_NOTE and "exceed 100%" in note  # what peak means, why > 100%
    assert main(["bench", "--hidden", "0"]) == 2
    assert "--hidden takes positive integers, got 0" in capsys.readouterr().err


def test_cli_bench_streaming_rows(capsys):
    argv = ["bench", "--streaming", "--families", "gru", "rnn", "--hidden", "4", "--repeats",
            "1", "--json", "-"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["streaming"]
    assert [(r["family"], r["hidden"], r["calls"]) for r in rows] == [
        ("gru", 4, bench.STREAM_CALLS), ("rnn", 4, bench.STREAM_CALLS)]
    for row in rows:  # the arithmetic of a row, not its times
        assert row["ratio"] == pytest.approx(row["torch_s"] / row["rnnkit_s"])
        assert row["rnnkit_us_per_call"] == pytest.approx(row["rnnkit_s"] / row["calls"] * 1e6)
    assert main(["bench", "--streaming", "--families", "lstm", "--hidden", "4", "--repeats",
                 "1"]) == 0
    out = capsys.readouterr().out
    assert bench.STREAM_HEADER in out
    assert out.strip().splitlines()[-1].startswith("lstm        4    50 |")
