"""ETTh1 at L=96: the setting each horizon keeps, chosen on validation, and its test figures.

The ETT runs of ``forecast_ett.py`` differ in one setting, the number of epochs (3, 6 and 12;
results files ``forecast_ett_3epochs``, ``forecast_ett`` and ``forecast_ett_h96_12epochs``).
Every run records its validation MSE (of the epoch it tests) and its test MSE. This script
applies one rule, fixed before looking at which way it goes: for each horizon, among the
settings whose every run trained within the protocol's budget of 10 minutes, keep the one with
the lowest mean validation MSE over the seeds. Only then are its test figures read. It writes
``benchmarks/results/forecast_ett_selected.json`` and prints the table beside the published
figures::

    python benchmarks/forecast_ett_select.py
"""

from __future__ import annotations

import json
import statistics

from results import RESULTS, write_results

SOURCES = ("forecast_ett_3epochs", "forecast_ett", "forecast_ett_h96_12epochs")
BUDGET_SECONDS = 600.0


def main() -> int:
    candidates: dict[int, list[dict]] = {}
    published = None
    for name in SOURCES:
        record = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
        results = record["results"]
        published = published or results.get("published")
        by_horizon: dict[int, list[dict]] = {}
        for run in results["results"]:
            by_horizon.setdefault(run["horizon"], []).append(run)
        for horizon, runs in by_horizon.items():
            candidates.setdefault(horizon, []).append({
                "source": name, "epochs": results["config"]["epochs"],
                "seeds": [run["seed"] for run in runs],
                "val_mse": statistics.mean(run["val_mse"] for run in runs),
                "within_budget": all(run["train_seconds"] <= BUDGET_SECONDS for run in runs),
                "max_train_seconds": max(run["train_seconds"] for run in runs),
                "runs": runs})
    chosen = []
    print(f"{'H':>4}  {'epochs':>6}  {'val MSE':>8}  {'test MSE [min, max]':>26}  "
          f"{'test MAE':>8}  {'DLinear':>7}  {'s/run':>6}")
    for horizon in sorted(candidates):
        allowed = [c for c in candidates[horizon] if c["within_budget"]]
        best = min(allowed, key=lambda c: c["val_mse"])
        mses = [run["mse"] for run in best["runs"]]
        maes = [run["mae"] for run in best["runs"]]
        dlinear = published["DLinear"]["figures"][str(horizon)]["mse"] if published else None
        row = {"horizon": horizon, "source": best["source"], "epochs": best["epochs"],
               "val_mse": best["val_mse"], "test_mse_mean": statistics.mean(mses),
               "test_mse_min": min(mses), "test_mse_max": max(mses),
               "test_mae_mean": statistics.mean(maes), "dlinear_mse": dlinear,
               "below_dlinear_every_seed": dlinear is not None and max(mses) < dlinear,
               "max_train_seconds": best["max_train_seconds"],
               "considered": [{key: c[key] for key in ("source", "epochs", "val_mse",
                                                       "within_budget", "max_train_seconds")}
                              for c in candidates[horizon]]}
        chosen.append(row)
        print(f"{horizon:>4}  {best['epochs']:>6}  {best['val_mse']:>8.4f}  "
              f"{row['test_mse_mean']:.4f} [{row['test_mse_min']:.4f}, "
              f"{row['test_mse_max']:.4f}]  {row['test_mae_mean']:>8.4f}  "
              f"{dlinear if dlinear is not None else '':>7}  {row['max_train_seconds']:>6.0f}")
    print(write_results("forecast_ett_selected", {
        "rule": "per horizon, among settings whose every run trained within "
                f"{BUDGET_SECONDS:.0f} s, the lowest mean validation MSE",
        "sources": list(SOURCES), "chosen": chosen, "published": published}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
