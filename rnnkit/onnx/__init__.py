"""ONNX export of rnnkit layers and models, and running the exported file in onnxruntime.

``torch.onnx.export(model, args, dynamo=True)`` works on any model holding rnnkit layers: while
the exporter traces, each layer runs :func:`rnnkit.onnx.ops.export_forward` (one
``torch.ops.rnnkit_onnx`` operator per stacked layer, translated to one standard ONNX
``LSTM``/``GRU``/``RNN`` node; layers with no standard node as an ONNX ``Scan``). The
translations are registered when a layer is first exported, or by importing this package.

Needs the optional extra: ``pip install 'rnnkit[onnx]'`` (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import importlib.util
import logging
import warnings

from rnnkit.errors import UserError

EXTRA = ("onnx", "onnxruntime", "onnxscript")
_NOISY = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")


def require() -> None:
    """Raise a one-line UserError when the ``onnx`` extra is not installed."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"ONNX export needs {', '.join(missing)}: pip install 'rnnkit[onnx]' "
            "(onnx, onnxruntime, onnxscript)"
        )


def register() -> dict:
    """Register the translations (idempotent); returns the custom_translation_table."""
    require()
    from rnnkit.onnx import ops  # noqa: F401  (defines torch.ops.rnnkit_onnx)
    from rnnkit.onnx.translations import TABLE

    return TABLE


def run_padded(layer, x, lengths, hx=None):
    """``layer(x, hx)`` for a padded ragged batch; in an ONNX export the lengths become the
    node's ``sequence_lens`` (positions past a length give zeros, h_n is each row's last real
    step), in eager the layer runs the matching PackedSequence."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from rnnkit.onnx.ops import export_forward, exporting_onnx

    if exporting_onnx():
        return export_forward(layer, x, hx, lengths=lengths)
    packed = pack_padded_sequence(
        x, lengths.cpu(), batch_first=layer.batch_first, enforce_sorted=False
    )
    output, state = layer(packed, hx)
    output, _ = pad_packed_sequence(output, batch_first=layer.batch_first,
                                    total_length=x.shape[1 if layer.batch_first else 0])
    return output, state


def export(model, args, path, *, input_names=None, output_names=None, dynamic_shapes=None):
    """``torch.onnx.export(model, args, path, dynamo=True)`` with rnnkit's translations, the
    model in eval mode; writes one self-contained file (weights inside). Returns the path."""
    import torch

    table = register()
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    # an inference graph: parameters as plain tensors (see _scan_layer in rnnkit.onnx.ops)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    quiet = [logging.getLogger(name) for name in _NOISY]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from rnnkit.onnx.ops import capturing

            with capturing():
                captured = torch.export.export(model, tuple(args), dynamic_shapes=dynamic_shapes,
                                               strict=False)
            program = torch.onnx.export(
                captured, tuple(args), dynamo=True, input_names=input_names,
                output_names=output_names, custom_translation_table=table, verbose=False,
                external_data=False,
            )  # fmt: skip
    finally:
        for module, training in modes:
            module.training = training
        for parameter in trainable:
            parameter.requires_grad_(True)
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    program.save(str(path), external_data=False)
    return path


def session(path):
    """An onnxruntime CPU session for an exported file."""
    require()
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def node_types(path) -> list[str]:
    """The op types of the main graph's nodes, in order."""
    require()
    import onnx

    return [node.op_type for node in onnx.load(str(path)).graph.node]
