"""The HTML report of ``rnnkit demo`` and ``rnnkit longdep``: results, curves, gradient flow.

It is built from the ``results.json`` those commands write (plus optional extra sections,
such as gate heatmaps of a trained model), so ``rnnkit report DIR`` can rebuild it later.
"""

from __future__ import annotations

from dataclasses import fields

from rnnkit.diagnostics import html, plots
from rnnkit.diagnostics.gradflow import GradientFlow
from rnnkit.tasks import make_task
from rnnkit.tasks.results import HEADER, rows, verdicts

WHY_GATES = (
    "Why: with the loss at the last step, the gradient reaching h_t is multiplied at every step "
    "back by the recurrent Jacobian. For the vanilla RNN that is diag(tanh') W_hh, whose norm "
    "is below 1 at initialisation, so the signal from 50 steps back is many orders of magnitude "
    "smaller than the signal from the last step, and nothing tells the weights what happened "
    "early in the sequence. The LSTM's cell state is carried by c_t = f_t c_(t-1) + i_t g_t, so "
    "dL/dc_(t-1) = f_t dL/dc_t plus a term through h: the forget gate sets the decay. With "
    "torch's default initialisation the forget gate (the GRU's update gate) starts near "
    "sigmoid(0) = 0.5, so at initialisation the default LSTM and GRU forget about as fast as "
    "the RNN (the dashed orange line falls like the red one), and on delayed recall they sit at "
    "chance until they happen to find longer memory. Chrono initialisation (Tallec & Ollivier "
    "2018, arXiv 1804.11188) sets the forget bias to log(u), u ~ U[1, T-1], so units start with "
    "memory time scales up to T steps and the cell-state gradient stays within an order of "
    "magnitude over the whole sequence."
)


def flow_from_dict(data: dict) -> GradientFlow:
    return GradientFlow(**{field.name: data[field.name] for field in fields(GradientFlow)})


def curve_panels(runs: list[dict]) -> list[dict]:
    panels = {}
    for run in runs:
        key = (run["task"], run["length"])
        if key not in panels:
            task = make_task(*key)
            panels[key] = {"title": f"{task.summary}, T={task.length}", "metric": run["metric"],
                           "baseline": task.metric.baseline, "solved": task.metric.solved,
                           "runs": []}
        panels[key]["runs"].append(run)
    return list(panels.values())


def flow_table(flows: dict[str, GradientFlow]) -> str:
    table_rows = []
    for cell, flow in flows.items():
        cell_part = ("—", "—", "—") if flow.cell_norm is None else (
            f"{flow.cell_decay:.4f}", f"{flow.ratio(50, 'cell'):.2e}", f"{flow.spread('cell'):.3g}")
        table_rows.append([cell, f"{flow.hidden_decay:.4f}", f"{flow.ratio(50):.2e}",
                           f"{flow.spread():.3g}", *cell_part])
    return html.table(
        ["cell", "‖dL/dh‖ ×/step", "‖dL/dh‖ 50 back / at loss", "‖dL/dh‖ max/min",
         "‖dL/dc‖ ×/step", "‖dL/dc‖ 50 back / at loss", "‖dL/dc‖ max/min"], table_rows)


def build(data: dict, extra_sections: list[str] = (), title: str = "") -> str:
    """The report page for one ``results.json`` (see ``rnnkit demo``)."""
    runs = data["runs"]
    settings = data.get("settings", {})
    sections = [html.section(
        "Results",
        html.table(HEADER, rows(runs), verdicts(runs)),
        html.paragraph(
            "final: the test score when training stopped; best: the best test score seen; "
            "solved at: the first evaluation at which the task counted as solved. "
            "Green: solved; red: no better than a model without memory.", "note"),
    )]
    sections.append(html.section(
        "Learning curves", html.image(plots.learning_curves(curve_panels(runs)),
                                      "learning curves on the test sets")))
    flow = data.get("gradient_flow")
    if flow and flow.get("initial"):
        initial = {cell: flow_from_dict(value) for cell, value in flow["initial"].items()}
        sections.append(html.section(
            f"Gradient flow at initialisation ({flow['task']}, T={flow['length']})",
            html.image(plots.gradient_flow(list(initial.items()),
                                           f"‖dL/dh_t‖ and ‖dL/dc_t‖, loss at step "
                                           f"{flow['length']}, at initialisation"),
                       "gradient flow at initialisation"),
            flow_table(initial), html.paragraph(WHY_GATES)))
    by_task = {}
    for run in runs:
        measured = run.get("gradient_flow", {}).get("trained")
        if measured and run["seed"] == runs[0]["seed"]:
            by_task.setdefault((run["task"], run["length"]), []).append(
                (run["cell"], flow_from_dict(measured)))
    for (task, length), flows in by_task.items():
        sections.append(html.section(
            f"Gradient flow after training ({task}, T={length})",
            html.image(plots.gradient_flow(flows, f"after training on {task}, T={length}"),
                       f"gradient flow after training on {task}"),
            flow_table(dict(flows))))
    sections.extend(extra_sections)
    if settings:
        sections.append(html.section(
            "Settings", f"<pre>{html.escape(_settings_text(data))}</pre>"))
    intro = html.paragraph(
        "A vanilla RNN, a GRU and an LSTM (with torch's default initialisation and with chrono "
        "initialisation) trained on tasks whose answer depends on something seen long ago. "
        "Every number below comes from rnnkit's layers and their hand-written backward pass.")
    return html.page(title or "rnnkit: an RNN forgets, an LSTM remembers", intro, sections)


def _settings_text(data: dict) -> str:
    lines = [f"{key}: {value}" for key, value in data.get("settings", {}).items()]
    if "command" in data:
        lines.insert(0, f"command: {data['command']}")
    if "seconds" in data:
        lines.append(f"total seconds: {data['seconds']:.0f}")
    return "\n".join(lines)


def gate_section(model, task, inputs, title: str) -> str:
    """Heatmaps of the forget and input gates and the cell state of a trained task LSTM over
    one test sequence ``inputs (L, 1, input_size)``; units sorted by their mean forget gate."""
    import torch

    with torch.no_grad():
        _, internals = model(inputs, return_internals=True)
    last = internals.last
    forget = last.gates["forget"][:, 0].T  # (H, L)
    order = forget.mean(dim=1).argsort(descending=True)
    images = [
        html.image(plots.heatmap(forget[order].numpy(), "forget gate f_t (units sorted by mean)"),
                   "forget gate heatmap"),
        html.image(plots.heatmap(last.gates["input"][:, 0].T[order].numpy(), "input gate i_t"),
                   "input gate heatmap"),
        html.image(plots.heatmap(last.cell[:, 0].T[order].numpy(), "cell state c_t", vmin=-1,
                                 vmax=1, colour_map="coolwarm"), "cell state heatmap"),
    ]
    note = html.paragraph(
        "One test sequence. Units whose forget gate stays near 1 hold what the input gate "
        "wrote at the first step across every distractor: the cell state rows that stay "
        "constant from left to right.", "note")
    return html.section(title, *images, note)
