"""The pictures: learning curves, gradient flow on a log scale, gate heatmaps, saturation.

Every function returns PNG bytes, ready to be written to a file or embedded in the HTML
report. matplotlib runs on its file-only backend, so no display is needed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rnnkit.diagnostics.gradflow import GradientFlow  # noqa: E402

CELL_COLOURS = {
    "rnn": "#d62728",
    "gru": "#2ca02c",
    "gru-chrono": "#17becf",
    "lstm": "#ff7f0e",
    "lstm-chrono": "#1f77b4",
}


def colour(cell: str, index: int = 0) -> str:
    return CELL_COLOURS.get(cell, f"C{index % 10}")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def learning_curves(panels: Sequence[dict]) -> bytes:
    """One panel per task. Each panel: ``title``, ``metric``, ``baseline``, ``solved`` (None:
    no line), ``runs``, a list of ``{"cell", "seed", "curve": [[step, score], ...]}``, and
    optionally ``ylabel`` (default: "test <metric>", what the tasks' curves are)."""
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        seen = set()
        cells = list(dict.fromkeys(run["cell"] for run in panel["runs"]))
        for run in panel["runs"]:
            steps, scores = zip(*run["curve"])
            label = run["cell"] if run["cell"] not in seen else None
            seen.add(run["cell"])
            axis.plot(steps, scores, color=colour(run["cell"], cells.index(run["cell"])),
                      label=label, alpha=0.9 if run["seed"] == 0 else 0.5, linewidth=1.6)
        if panel.get("baseline") is not None:
            axis.axhline(panel["baseline"], color="grey", linestyle="--", linewidth=1,
                         label=f"no memory ({panel['baseline']:.3g})")
        if panel.get("solved") is not None:
            axis.axhline(panel["solved"], color="black", linestyle=":", linewidth=1,
                         label=f"solved ({panel['solved']:.3g})")
        if panel["metric"] != "accuracy":
            axis.set_yscale("log")
        axis.set_title(panel["title"])
        axis.set_xlabel("training step")
        axis.set_ylabel(panel.get("ylabel") or f"test {panel['metric']}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _png(figure)


def gradient_flow(flows: Sequence[tuple[str, GradientFlow]], title: str) -> bytes:
    """||dL/dh_t|| (solid) and ||dL/dc_t|| (dashed) against steps back from the loss, log y.

    ``flows`` pairs a cell name (for the colour) with its measurement.
    """
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for index, (cell, flow) in enumerate(flows):
        steps_back = range(len(flow.hidden_norm))
        axis.plot(steps_back, _positive(flow.hidden_norm), color=colour(cell, index),
                  label=f"{cell}: ‖dL/dh‖ (×{flow.hidden_decay:.3f}/step)")
        if flow.cell_norm is not None:
            axis.plot(steps_back, _positive(flow.cell_norm), color=colour(cell, index),
                      linestyle="--", label=f"{cell}: ‖dL/dc‖ (×{flow.cell_decay:.3f}/step)")
    axis.set_yscale("log")
    axis.set_xlabel("steps back in time from the loss")
    axis.set_ylabel("gradient norm (mean over the batch)")
    axis.set_title(title)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="lower left")
    return _png(figure)


def _positive(values):
    # an exactly-zero norm (underflow) cannot sit on a log axis: leave a gap there
    return [value if value > 0 else float("nan") for value in values]


def heatmap(values, title: str, xlabel: str = "step", ylabel: str = "unit",
            vmin: float = 0.0, vmax: float = 1.0, colour_map: str = "viridis") -> bytes:
    """``values`` of shape ``(units, steps)`` as an image, with a colour bar."""
    figure, axis = plt.subplots(figsize=(10, 3.2))
    image = axis.imshow(values, aspect="auto", interpolation="nearest", cmap=colour_map,
                        vmin=vmin, vmax=vmax)
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    figure.colorbar(image, ax=axis, fraction=0.03)
    return _png(figure)


def saturation(per_unit: dict[str, tuple[Sequence[float], Sequence[float]]],
               where: str = "") -> bytes:
    """Per gate, each unit's share of time left-saturated (< 0.1) against right-saturated
    (> 0.9), as in Karpathy, Johnson & Fei-Fei 2015 (arXiv 1506.02078), figure 3; ``where``
    (e.g. "layer 1") goes in every panel's title."""
    figure, axes = plt.subplots(1, len(per_unit), figsize=(3.2 * len(per_unit), 3.2),
                                squeeze=False)
    for axis, (gate, (left, right)) in zip(axes[0], per_unit.items()):
        axis.scatter(left, right, s=8, alpha=0.6)
        axis.plot([0, 1], [1, 0], color="grey", linewidth=0.8)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_title(f"{gate} gate, {where}" if where else f"{gate} gate")
        axis.set_xlabel("share < 0.1")
        axis.set_ylabel("share > 0.9")
    figure.tight_layout()
    return _png(figure)
