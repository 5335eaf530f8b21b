"""Print the README's tables and summary figures from the results files, so none is typed by hand.

    python benchmarks/readme_tables.py          # markdown, to paste into README.md

Reads ``benchmarks/results/bench.json`` (``rnnkit bench``), ``variants.json`` (``rnnkit bench
--variants``), ``gru_rnn_variants.json`` and ``memory.json``; a missing file is skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BENCH_ROWS = [(1, 64), (1, 1024), (8, 128), (8, 256), (32, 256), (64, 256), (64, 512),
              (64, 1024)]
VARIANT_COLUMNS = ["layer_norm", "zoneout", "recurrent_dropout", "weight_drop", "peephole",
                   "coupled_gates"]


def load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def bench_table(record: dict) -> None:
    rows = record["results"]["data"]["rows"]
    environment = record["results"]["data"]["environment"]
    cells = {(r["family"], r["batch"], r["hidden"]): r for r in rows}
    print(f"bench: T {sorted({r['T'] for r in rows})}, commit {record['commit'][:10]}, "
          f"{record['machine']['cpu']}, sgemm peak {environment['sgemm_peak_gflops']:.0f} "
          f"GFLOP/s\n")
    print("| batch, hidden | LSTM | GRU | RNN |\n|---|---|---|---|")
    for batch, hidden in BENCH_ROWS:
        parts = []
        for family in ("lstm", "gru", "rnn"):
            row = cells.get((family, batch, hidden))
            parts.append("—" if row is None else f"{row['forward']['ratio']:.2f} / "
                                                 f"{row['forward_backward']['ratio']:.2f}")
        if any(part != "—" for part in parts):
            print(f"| {batch}, {hidden} | " + " | ".join(parts) + " |")
    print()
    for family in ("lstm", "gru", "rnn"):
        mine = [r for r in rows if r["family"] == family]
        for mode in ("forward", "forward_backward"):
            ratios = [r[mode]["ratio"] for r in mine]
            below = sum(ratio < 1.0 for ratio in ratios)
            print(f"{family} {mode}: ratios {min(ratios):.2f}-{max(ratios):.2f} over "
                  f"{len(ratios)} cells, {below} below 1.0")
    for r in rows:
        if (r["family"], r["batch"], r["hidden"]) == ("lstm", 64, 512):
            f = r["forward"]
            print(f"lstm B64 H512 forward: {f['rnnkit_gflops']:.0f} GFLOP/s, "
                  f"{100 * f.get('rnnkit_peak_share', 0):.0f}% of the sgemm peak")
    print()


def variants_table(record: dict) -> None:
    print("| LSTM | " + " | ".join(VARIANT_COLUMNS) + " | step-loop LN-LSTM / rnnkit LN |")
    print("|---|" + "---|" * (len(VARIANT_COLUMNS) + 1))
    for result in record["results"]["data"]["variants"]:
        plain = result["seconds"]["plain"] if "plain" in result["seconds"] else min(
            result["seconds"].values())
        cost = result["cost"]
        print(f"| batch {result['batch']}, hidden {result['hidden']} (plain {plain * 1e3:.2f} ms)"
              " | " + " | ".join(f"x{cost[name]:.2f}" if name in cost else "—"
                                 for name in VARIANT_COLUMNS)
              + f" | {result['layer_norm_speedup_over_step_loop']:.2f} |")
    print()


def gru_rnn_table(record: dict) -> None:
    for row in record["results"]["rows"]:
        print(f"{row['family']} B{row['batch']} H{row['hidden']} {row['variant']}: "
              f"x{row['cost']:.2f} of plain, reference/fused x{row['reference_over_fused']:.2f}")
    print()


def memory_table(record: dict) -> None:
    for row in record["results"]["rows"]:
        print(f"{row['family']} B{row['batch']} H{row['hidden']} T{row['T']}: rnnkit "
              f"{row['rnnkit']['rise_mib']:.0f} MiB, torch.nn {row['torch.nn']['rise_mib']:.0f} "
              f"MiB ({row['rise_ratio']:.2f}x)")
    print()


def main() -> int:
    for name, show in (("bench", bench_table), ("variants", variants_table),
                       ("gru_rnn_variants", gru_rnn_table), ("memory", memory_table)):
        record = load(name)
        if record is not None:
            print(f"## {name} (benchmarks/results/{name}.json, {record['date']})\n")
            show(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
