"""``rnnkit explore``: server time to trace and colour a 2,000-character text.

Builds the README's Tiny Shakespeare model (character level, 2-layer LSTM of 256 units,
embedding 64, layer norm, dropout 0.2; 65-character vocabulary) with fresh weights (the time
does not depend on their values), saves it as a run, serves it as ``rnnkit explore`` does
(uvicorn on a thread of its own, the model work on the main thread that loaded the model) and
sends the app over HTTP what the Text view sends when text is typed: ``POST /api/colour``
(every layer's gates, c_t and h_t, the surprise, the top-5 next tokens per token, one value per
token for the colouring). The server time is the app's own Server-Timing header (request body
read to response encoded); a different passage of Tiny Shakespeare each time, so nothing comes
from the cache. On a machine shared with other work the wall time stretches, so the process's
CPU time over the request (all threads: the client, the app, torch's) is recorded too, with the
load averages. Also times the hover (``/api/token`` on the last token: its gates, top-5 and the
connectivity backward over the whole text) and ``/api/trace`` (one layer's internals in full as
JSON).

    python benchmarks/explore_speed.py            # torch on 2 threads, as on a 2-core machine
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import torch
from results import write_results

from rnnkit.commands.explore import bound_port
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.explore.analysis import ExploreRun
from rnnkit.explore.server import CallingThreadExecutor, create_app, serve
from rnnkit.models.language_model import LanguageModel, ModelConfig
from rnnkit.train.checkpoint import save_checkpoint
from rnnkit.train.config import DataConfig, RunConfig
from rnnkit.train.runs import checkpoint_config

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def server_ms(response) -> float:
    assert response.status_code == 200, response.text
    return float(response.headers["server-timing"].split("dur=")[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    corpus = DATA.read_text(encoding="utf-8")
    tokenizer = CharTokenizer.train([corpus])
    config = RunConfig(data=DataConfig(path=str(DATA)), model=ModelConfig(
        vocab_size=tokenizer.vocab_size, cell="lstm", layers=2, hidden=256, embedding=64,
        dropout=0.2, layer_norm=True))
    torch.manual_seed(0)
    model = LanguageModel(config.model)
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(Path(folder) / "run", model.state_dict(),
                        checkpoint_config(config, tokenizer), tags=("last", "best"))
        run = ExploreRun.load(Path(folder) / "run")
    passages = [corpus[start : start + args.chars]
                for start in range(0, (args.repeats + 1) * 10_000, 10_000)]
    rows = {"colour": [], "colour_round_trip": [], "colour_cpu": [], "hover": [], "trace": []}
    model_work = CallingThreadExecutor()

    def measure(server):  # on a client thread while the main thread serves the model
        port = bound_port(server, 0)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                for index, passage in enumerate(passages):
                    one_request(client, index, passage)
        finally:
            server.should_exit = True

    def one_request(client, index, passage):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.post("/api/colour", json={"text": passage, "layer": 1,
                                                    "quantity": "forget", "unit": 0})
        round_trip = (time.perf_counter() - started) * 1000
        cpu = (time.process_time() - cpu_started) * 1000
        colour = server_ms(response)
        hover = server_ms(client.post("/api/token", json={
            "text": passage, "layer": 1, "position": len(response.json()["tokens"]) - 1}))
        run._cache.clear()
        trace = server_ms(client.post("/api/trace", json={"text": passage, "layer": 1}))
        if index == 0:
            return  # warm-up
        for name, value in (("colour", colour), ("colour_round_trip", round_trip),
                            ("colour_cpu", cpu), ("hover", hover), ("trace", trace)):
            rows[name].append(round(value, 1))
        print(f"colour {colour:.1f} ms (round trip {round_trip:.1f}, CPU {cpu:.1f}), "
              f"hover {hover:.1f} ms, "
              f"trace {trace:.1f} ms", flush=True)

    serve(create_app([run], model_executor=model_work), model_work, host="127.0.0.1", port=0,
          started=measure)
    if len(rows["colour"]) != args.repeats:
        raise SystemExit("the requests did not all complete (see above)")
    summary = {name: {"median_ms": statistics.median(values), "min_ms": min(values),
                      "max_ms": max(values), "all_ms": values} for name, values in rows.items()}
    print({name: value["median_ms"] for name, value in summary.items()})
    path = write_results("explore_speed", {
        "chars": args.chars, "threads": args.threads, "repeats": args.repeats,
        "served": "uvicorn on a thread, model work on the main thread (as rnnkit explore)",
        "model": config.model.to_dict(), "backend": run.layer.backend,
        "fused_loaded": run.layer.backend != "reference" and _fused_loaded(),
        "timings": summary,
        # other processes on the machine while it ran (1, 5 and 15 minute load averages)
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()]})
    print(f"wrote {path}")
    return 0


def _fused_loaded() -> bool:
    from rnnkit.kernels import loader

    return loader.load_functions() is not None


if __name__ == "__main__":
    raise SystemExit(main())
