"""int8 weights for inference: speed at batch 1 and 8, and what they cost in accuracy.

Speed: one layer (LSTM and GRU; hidden 512 and 1024, input = hidden, T 50, no grad), at batch
1 and 8: rnnkit float32, rnnkit int8 (``rnnkit.quantize``, the AVX512-VNNI kernel), torch.nn
float32 and ``torch.ao.quantization.quantize_dynamic`` on the same torch.nn layer (its int8
LSTM/GRU, fbgemm). The four run in turn, ``--repeats`` rounds; each figure is the median of its
rounds (alternating repeats: a slow moment of the machine falls on all four alike).

Accuracy:
- the char LM: ``rnnkit train`` on Tiny Shakespeare (the README's model, 2 x 256 LSTM) for
  ``--lm-steps`` steps (or ``--lm-run RUN``, a trained run folder), then the validation loss
  (nats/char, the last 10% of the text) in float32, with ``rnnkit.quantize`` and with
  ``quantize_dynamic`` on the torch.nn twin of the model (the same weights in ``nn.LSTM``);
- the NSMC classifier (``--nsmc-run RUN``, a run of ``rnnkit classify train``): its test
  accuracy on ``nsmc-test.tsv`` the same three ways.

Writes ``benchmarks/results/int8.json``; ``--smoke`` runs tiny sizes and writes nothing.

    python benchmarks/int8.py --nsmc-run runs/nsmc            # timings + LM + NSMC
    python benchmarks/int8.py --smoke                         # a check that it runs
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
LM_SETTINGS = ("--layers 2 --hidden 256 --embedding 64 --no-layer-norm --dropout 0.2 --lr 5e-3 "
               "--weight-decay 0.05 --schedule cosine --min-lr 5e-5 --warmup 50")

from commands import rnnkit as rnnkit_cli  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.kernels import int8  # noqa: E402
from rnnkit.quantization import quantize  # noqa: E402


# ---- torch.nn twins ----------------------------------------------------------------------------
class TorchTwin(nn.Module):
    """A torch.nn layer with an rnnkit layer's weights, called as the rnnkit layer is."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        kwargs = {"num_layers": layer.num_layers, "bias": layer.bias,
                  "batch_first": layer.batch_first, "bidirectional": layer.bidirectional}
        if layer.mode == "RNN":
            kwargs["nonlinearity"] = layer.nonlinearity
        self.inner = layer.family.torch_twin(layer.input_size, layer.hidden_size, **kwargs)
        self.inner.load_state_dict(layer.state_dict())

    def forward(self, x, hx=None, return_internals: bool = False):
        return self.inner(x, hx)


def torch_twin(model: nn.Module) -> nn.Module:
    """``model`` (a copy) with its ``rnn`` an ``nn.LSTM`` / ``nn.GRU`` of the same weights."""
    twin = copy.deepcopy(model)
    twin.rnn = TorchTwin(model.rnn)
    return twin.eval()


def dynamic(model: nn.Module) -> nn.Module:
    """torch's own int8 path: ``quantize_dynamic`` (qint8 weights) of the LSTM/GRU layers."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(model, {nn.LSTM, nn.GRU}, dtype=torch.qint8)


# ---- speed -------------------------------------------------------------------------------------
def seconds(run, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def speed(families, hiddens, batches, steps, repeats, calls) -> list[dict]:
    rows = []
    for family in families:
        for hidden in hiddens:
            for batch in batches:
                torch.manual_seed(0)
                layer = getattr(rnnkit, family)(hidden, hidden).eval()
                quantized = quantize(layer)
                twin = TorchTwin(layer).inner.eval()
                twin_int8 = dynamic(nn.Sequential(twin))[0]
                x = torch.randn(steps, batch, hidden)
                ways = {"rnnkit_float32": layer, "rnnkit_int8": quantized,
                        "torch_float32": twin, "torch_quantize_dynamic": twin_int8}
                times = {name: [] for name in ways}
                with torch.inference_mode():
                    for module in ways.values():  # warm-up
                        module(x)
                    for _ in range(repeats):
                        for name, module in ways.items():
                            times[name].append(seconds(lambda m=module, x=x: m(x), calls))
                median = {name: statistics.median(values) for name, values in times.items()}
                row = {"family": family, "hidden": hidden, "batch": batch, "steps": steps,
                       **{f"{name}_ms": value * 1e3 for name, value in median.items()},
                       "int8_vs_rnnkit_float32": median["rnnkit_float32"] / median["rnnkit_int8"],
                       "int8_vs_quantize_dynamic": (median["torch_quantize_dynamic"]
                                                    / median["rnnkit_int8"])}
                rows.append(row)
                print(f"  {family} H{hidden} B{batch} T{steps}: rnnkit float32 "
                      f"{row['rnnkit_float32_ms']:.2f} ms, int8 {row['rnnkit_int8_ms']:.2f} ms "
                      f"({row['int8_vs_rnnkit_float32']:.2f}x), torch.nn "
                      f"{row['torch_float32_ms']:.2f} ms, quantize_dynamic "
                      f"{row['torch_quantize_dynamic_ms']:.2f} ms", flush=True)
    return rows


# ---- accuracy ----------------------------------------------------------------------------------
def language_model(args, work: Path) -> dict:
    from rnnkit.data.language_data import encode_file
    from rnnkit.train.evaluate import evaluate
    from rnnkit.train.runs import load_run

    text = args.lm_data.read_text(encoding="utf-8")
    validation = work / "validation.txt"  # the trainer's split: the last 10% of the characters
    validation.write_text(text[int(round(len(text) * 0.9)):], encoding="utf-8")
    run = args.lm_run
    command = None
    if run is None:
        run = work / "lm"
        settings = LM_SETTINGS if not args.smoke else LM_SETTINGS.replace("256", "32")
        command = ["train", str(args.lm_data), "--out", str(run), *settings.split(),
                   "--max-steps", str(args.lm_steps), "--eval-every", str(args.lm_steps),
                   "--cache-dir", str(work / "cache"), "--no-progress"]
        rnnkit_cli(*command)
    model, tokenizer, config = load_run(run, "best")
    tokens = encode_file(validation, tokenizer, config.data.encoding, config.data.cache_dir,
                         what="validation")
    if args.smoke:
        tokens = tokens[:4000]
    batch, seq_len = config.train.eval_batch_size or config.train.batch_size, config.train.seq_len
    losses = {}
    for name, variant in (("float32", model), ("rnnkit_int8", quantize(model)),
                          ("torch_float32", torch_twin(model)),
                          ("torch_quantize_dynamic", dynamic(torch_twin(model)))):
        losses[name], count = evaluate(variant, tokens, batch, seq_len)
    row = {"run": str(run), "command": "rnnkit " + " ".join(command) if command else None,
           "tokens": count, **{f"val_loss_{name}": value for name, value in losses.items()},
           "rise_rnnkit_int8": losses["rnnkit_int8"] - losses["float32"],
           "rise_quantize_dynamic": losses["torch_quantize_dynamic"] - losses["torch_float32"]}
    print(f"  char LM: validation {losses['float32']:.4f} nats/char float32, "
          f"{losses['rnnkit_int8']:.4f} rnnkit int8 ({row['rise_rnnkit_int8']:+.4f}), "
          f"{losses['torch_quantize_dynamic']:.4f} quantize_dynamic "
          f"({row['rise_quantize_dynamic']:+.4f})", flush=True)
    return row


def classifier(args) -> dict:
    from rnnkit.classify.data import read_labelled
    from rnnkit.classify.run import load_classifier, predict_probabilities

    run = load_classifier(args.nsmc_run, "best")
    data = run.config.data
    labelled = read_labelled(args.nsmc_test, data.text_col, data.label_col, what="test")
    texts, labels = labelled.texts, labelled.labels
    if args.smoke:
        texts, labels = texts[:300], labels[:300]
    index = {name: i for i, name in enumerate(run.classes)}
    targets = torch.tensor([index[label] for label in labels])
    ids = run.encoder.encode_many(texts)
    accuracy = {}
    for name, variant in (("float32", run.model), ("rnnkit_int8", quantize(run.model)),
                          ("torch_float32", torch_twin(run.model)),
                          ("torch_quantize_dynamic", dynamic(torch_twin(run.model)))):
        predicted = predict_probabilities(variant, ids).argmax(dim=1)
        accuracy[name] = (predicted == targets).float().mean().item() * 100
    row = {"run": str(args.nsmc_run), "texts": len(texts),
           **{f"accuracy_{name}": value for name, value in accuracy.items()},
           "drop_rnnkit_int8": accuracy["float32"] - accuracy["rnnkit_int8"],
           "drop_quantize_dynamic": accuracy["torch_float32"] - accuracy["torch_quantize_dynamic"]}
    print(f"  NSMC: accuracy {accuracy['float32']:.2f}% float32, {accuracy['rnnkit_int8']:.2f}% "
          f"rnnkit int8, {accuracy['torch_quantize_dynamic']:.2f}% quantize_dynamic", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, a few rounds, no results file")
    parser.add_argument("--repeats", type=int, default=7, help="alternating rounds (7)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--lm-data", type=Path, default=DATA / "tinyshakespeare.txt")
    parser.add_argument("--lm-steps", type=int, default=2000,
                        help="training steps of the char LM (2000)")
    parser.add_argument("--lm-run", type=Path, default=None,
                        help="a trained char-LM run folder instead of training one")
    parser.add_argument("--skip-lm", action="store_true")
    parser.add_argument("--nsmc-run", type=Path, default=None,
                        help="a trained NSMC classifier run folder (none: no NSMC row)")
    parser.add_argument("--nsmc-test", type=Path, default=DATA / "nsmc-test.tsv")
    parser.add_argument("--work", type=Path, default=None, help="run folders (default: tmp)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-int8-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.repeats, args.lm_steps = 2, 20
    print(f"int8 kernel: {int8.kernel_name()}; torch threads {torch.get_num_threads()}", flush=True)
    payload = {"kernel": int8.kernel_name(), "speed": [], "char_lm": None, "nsmc": None}
    if not args.skip_speed:
        if args.smoke:
            payload["speed"] = speed(["LSTM"], [64], [1, 8], 5, args.repeats, 2)
        else:
            payload["speed"] = speed(["LSTM", "GRU"], [512, 1024], [1, 8], 50, args.repeats, 5)
    if not args.skip_lm:
        payload["char_lm"] = language_model(args, work)
    if args.nsmc_run is not None:
        payload["nsmc"] = classifier(args)
    if args.smoke:
        print(json.dumps(payload, indent=1)[:2000])
        return 0
    from results import write_results

    print(f"wrote {write_results('int8', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
