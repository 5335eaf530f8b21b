"""The HTML report of a trained language model: learning curves, gradient flow over a
passage, gate heatmaps and cells coloured over its characters, saturation, samples."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from rnnkit.diagnostics import html, plots, text
from rnnkit.diagnostics.gradflow import GradientFlow, measure
from rnnkit.diagnostics.longrange import flow_table


def curves_image(records: list[dict]) -> bytes | None:
    """Training loss and validation loss against the step, from ``metrics.jsonl`` records."""
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train" and "loss" in r]
    valid = [(r["step"], r["val_loss"]) for r in records
             if r.get("kind") == "eval" and "val_loss" in r]
    if not train and not valid:
        return None
    panel = {"title": "language model", "metric": "loss (nats per token)",
             "baseline": None, "solved": None, "runs": []}
    figure_runs = [("train", train), ("validation", valid)]
    panel["runs"] = [{"cell": name, "seed": 0, "curve": curve} for name, curve in figure_runs
                     if curve]
    return plots.learning_curves([panel])


def passage_gradient_flow(model, tokenizer, passage: str, label: str) -> GradientFlow:
    """||dL/dh_t|| over the passage with the loss on the last token's prediction only."""
    ids = torch.tensor(tokenizer.encode(passage)).unsqueeze(1)  # (L, 1)
    inputs, target = ids[:-1], ids[-1]
    layer = text.recurrent_layer(model)

    def forward():
        output, _, internals = layer(model.embedding(inputs), return_internals=True)
        return model.decoder(output[-1]), internals  # (1, V) logits for the last token

    return measure(forward, lambda logits: F.cross_entropy(logits, target), label,
                   list(model.parameters()))


def build(model, tokenizer, passage: str, *, title: str, records: list[dict] = (),
          samples: list[str] = (), chosen_cells: list[int] = (), summary: str = "") -> str:
    """The whole page. ``chosen_cells`` are shown as coloured text beside the best-tracking
    cells that :func:`rnnkit.diagnostics.text.best_cells` finds."""
    sections = []
    if summary:
        sections.append(html.section("Run", f"<pre>{html.escape(summary)}</pre>"))
    curves = curves_image(list(records))
    if curves is not None:
        sections.append(html.section("Learning curves", html.image(curves, "learning curves")))
    trace = text.trace(model, tokenizer, passage)
    layer = text.recurrent_layer(model)
    if len(trace.tokens) > 2:
        flow = passage_gradient_flow(model, tokenizer, passage, "trained model")
        sections.append(html.section(
            "Gradient flow over the passage",
            html.image(plots.gradient_flow([(layer.mode.lower(), flow)],
                                           "loss on the last token's prediction"),
                       "gradient flow over the passage"),
            flow_table({layer.mode.lower(): flow})))
    gate_parts = []
    for name in ("forget", "input", "output", "update", "reset"):
        if name not in trace.gates:
            continue
        values = trace.gates[name]
        gate_parts.append(html.image(
            plots.heatmap(values[:400].T, f"{name} gate over the first {min(400, len(values))}"
                          " tokens (rows: units)", xlabel="token"), f"{name} gate heatmap"))
        gate_parts.append(html.paragraph(f"{name} gate, mean over units, on each character "
                                         "(white 0.5, red 1, blue 0):", "note"))
        gate_parts.append(html.coloured_text(trace.tokens, values.mean(axis=1), signed=False))
    if gate_parts:
        sections.append(html.section("Gates over the text", *gate_parts))
    best = text.best_cells(trace)
    cell_parts, shown = [], set()
    kind = "tanh(c_t)" if trace.cell is not None else "h_t"
    for feature, units in best.items():
        unit, r = units[0]
        rows = ", ".join(f"cell {u} (r={value:+.2f})" for u, value in units)
        cell_parts.append(html.paragraph(f"{feature}: {rows}. Cell {unit}, {kind}:"))
        cell_parts.append(html.coloured_text(trace.tokens, trace.activations[:, unit]))
        shown.add(unit)
    for unit in chosen_cells:
        if unit not in shown and 0 <= unit < trace.activations.shape[1]:
            cell_parts.append(html.paragraph(f"cell {unit}, {kind} (chosen):"))
            cell_parts.append(html.coloured_text(trace.tokens, trace.activations[:, unit]))
    if cell_parts:
        sections.append(html.section(
            "Cells that track the text", html.paragraph(
                "Pearson correlation of every cell with simple features of the passage; the "
                "best one of each is coloured over the characters (red positive, blue negative)."
                , "note"), *cell_parts))
    stats = text.saturation(trace)
    if stats:
        rows = [[gate, f"{value['below_0.1']:.3f}", f"{value['above_0.9']:.3f}"]
                for gate, value in stats.items()]
        sections.append(html.section(
            "Gate saturation", html.table(["gate", "share < 0.1", "share > 0.9"], rows),
            html.image(plots.saturation({gate: (value["left"], value["right"])
                                         for gate, value in stats.items()}),
                       "per-unit gate saturation")))
    if samples:
        sections.append(html.section("Samples", *(f"<pre>{html.escape(s)}</pre>"
                                                  for s in samples)))
    intro = html.paragraph(f"A {layer.mode} with {layer.num_layers} layer(s) of "
                           f"{layer.hidden_size} units; the passage has {len(trace.tokens)} "
                           "tokens. Hover over a character to read its value.")
    return html.page(title, intro, sections)
