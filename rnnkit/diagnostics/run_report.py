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
    panel = {"title": "language model: training and validation loss",
             "metric": "loss (nats per token)",
             "ylabel": "train / validation loss (nats per token)",
             "baseline": None, "solved": None, "runs": []}
    figure_runs = [("train", train), ("validation", valid)]
    panel["runs"] = [{"cell": name, "seed": 0, "curve": curve} for name, curve in figure_runs
                     if curve]
    return plots.learning_curves([panel])


def layer_name(index: int, layers: int) -> str:
    """How the report names a layer: "layer 1 (the last of 2)", "layer 0 (the only one)"."""
    if layers == 1:
        return "layer 0 (the only one)"
    return f"layer {index}" + (f" (the last of {layers})" if index == layers - 1 else
                               f" (of {layers})")


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


def settings_rows(config: dict) -> list[list[str]]:
    """The settings a reader of a language-model report looks for first, from the run's
    ``config.json`` (the whole of it sits folded under the table)."""
    data, model, train = (config.get(name) or {} for name in ("data", "model", "train"))
    variants = [name.replace("_", " ") for name in ("layer_norm", "peephole", "coupled_gates",
                                                    "tie_weights") if model.get(name)]
    variants += [f"{name.replace('_', ' ')} {model[name]:g}" for name in
                 ("zoneout", "zoneout_cell", "recurrent_dropout", "weight_drop")
                 if model.get(name)]
    budget = [f"{train[name]:g} {unit}" for name, unit in
              (("max_steps", "steps"), ("epochs", "epochs"), ("time_budget", "s"))
              if train.get(name)]
    rows = [
        ["corpus", f"{data.get('path')} ({data.get('level')} level)"],
        ["model", f"{str(model.get('cell')).upper()}, {model.get('layers')} layer(s) of "
                  f"{model.get('hidden')} units, embedding {model.get('embedding')}, "
                  f"vocabulary {model.get('vocab_size')}"],
        ["regularisation", f"dropout {model.get('dropout', 0):g}"
                           + "".join(f", {v}" for v in variants)],
        ["batches", f"{train.get('batch_size')} streams x {train.get('seq_len')} steps"],
        ["optimiser", f"{train.get('optimizer')}, lr {train.get('lr', 0):g} "
                      f"({train.get('schedule')}), weight decay "
                      f"{train.get('weight_decay', 0):g}, clip {train.get('clip', 0):g}"],
        ["budget", " or ".join(budget) or "none"],
        ["seed", str(train.get("seed"))],
    ]
    return rows


def build(model, tokenizer, passage: str, *, title: str, records: list[dict] = (),
          samples: list[str] = (), chosen_cells: list[int] = (),
          config: dict | None = None) -> str:
    """The whole page. ``chosen_cells`` are shown as coloured text beside the best-tracking
    cells that :func:`rnnkit.diagnostics.text.best_cells` finds; ``config`` (the run's
    config.json) opens the page as a short table, the whole JSON folded under it."""
    import json

    sections = []
    if config:
        sections.append(html.section(
            "Run", html.table(["setting", "value"], settings_rows(config)),
            html.details("every setting (config.json)",
                         f"<pre>{html.escape(json.dumps(config, indent=1))}</pre>")))
    curves = curves_image(list(records))
    if curves is not None:
        sections.append(html.section("Learning curves", html.image(curves, "learning curves")))
    trace = text.trace(model, tokenizer, passage)  # the last layer's states and gates
    layer = text.recurrent_layer(model)
    where = layer_name(layer.num_layers - 1, layer.num_layers)
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
        heading = (f"{name} gate, {where}, over the first {min(400, len(values))} tokens "
                   "(rows: units)")
        gate_parts.append(html.image(plots.heatmap(values[:400].T, heading, xlabel="token"),
                                     heading))
        gate_parts.append(html.paragraph(f"{name} gate, {where}, mean over units, on each "
                                         "character (white 0.5, red 1, blue 0):", "note"))
        gate_parts.append(html.coloured_text(trace.tokens, values.mean(axis=1), signed=False))
    if gate_parts:
        sections.append(html.section(f"Gates over the text: {where}", *gate_parts))
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
            f"Gate saturation: {where}",
            html.table(["gate", "share < 0.1", "share > 0.9"], rows),
            html.image(plots.saturation({gate: (value["left"], value["right"])
                                         for gate, value in stats.items()}, where),
                       f"per-unit gate saturation, {where}")))
    if samples:
        sections.append(html.section("Samples", *(f"<pre>{html.escape(s)}</pre>"
                                                  for s in samples)))
    intro = html.paragraph(f"A {layer.mode} with {layer.num_layers} layer(s) of "
                           f"{layer.hidden_size} units; the passage has {len(trace.tokens)} "
                           f"tokens. The gates and cells shown are those of {where} (layers "
                           "are counted from 0, as in rnnkit explore). Hover over a character "
                           "to read its value.")
    return html.page(title, intro, sections)
