"""``--int8`` for the commands that predict (``sample``, ``classify predict``, ``forecast
predict``): quantize the loaded model's recurrent weights (:func:`rnnkit.quantize`) and say so."""

from __future__ import annotations

import sys

from rnnkit.errors import UserError

HELP = ("run the recurrent layers with int8 weights (W_ih, W_hh; per-row scales) on the "
        "AVX512-VNNI kernel: inference only, about a quarter of the weight bytes")


def add_argument(parser) -> None:
    parser.add_argument("--int8", action="store_true", help=HELP)


def apply(args, model):
    """``model`` quantized in place when ``--int8`` was given (with a line on stderr naming
    what changed, so stdout keeps only the predictions), else ``model`` as it is."""
    if not getattr(args, "int8", False):
        return model
    if getattr(args, "runtime", "torch") != "torch":
        raise UserError("--int8 quantizes the torch model; it does not apply to "
                        f"--runtime {args.runtime}")
    from rnnkit.kernels import int8
    from rnnkit.quantization import quantize, weight_bytes

    before = weight_bytes(model)
    quantize(model, inplace=True)
    after = weight_bytes(model)
    print(f"rnnkit: model: int8 recurrent weights, {before / 2**20:.2f} MiB -> "
          f"{after / 2**20:.2f} MiB, on {int8.kernel_name()}", file=sys.stderr)
    return model
