"""``rnnkit explore RUN [RUN2]``: a local web app to look inside a trained run.

Text (every token coloured by a gate, c_t, h_t or the model's surprise; hover for its gates,
top-k next tokens and connectivity), Units (regular-expression hypotheses, select and match),
Sample live (tokens streamed with their gates) and Health (curves, saturation, gradient
flow); for a classifier, each token's contribution to the predicted class; for a
forecaster, the series, the forecast band and the gates over time. States are computed on
demand from the checkpoint; nothing is exported.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from rnnkit.commands.helptext import examples
from rnnkit.errors import UserError

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]", "::1"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "explore", help="serve a web app to look inside a trained run (gates, units, samples)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=examples("rnnkit explore runs/shakespeare --open",
                        "rnnkit explore runs/shakespeare runs/shakespeare-gru --port 8080"))
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="a run folder or checkpoint (language model, classifier or "
                        "forecaster); a second to compare")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    parser.add_argument("--max-chars", type=int, default=5000,
                        help="longest text a request may trace (default 5000)")
    parser.set_defaults(handler=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_runs(paths: list[Path], max_chars: int) -> list:
    from rnnkit.explore.analysis import ExploreRun
    from rnnkit.explore.supervised import ClassifierExplore, ForecasterExplore
    from rnnkit.train.checkpoint import load_checkpoint

    if len(paths) > 2:
        raise UserError(f"explore takes one run or two to compare, got {len(paths)}")
    kinds = {"language_model": ExploreRun, "classifier": ClassifierExplore,
             "forecaster": ForecasterExplore}
    runs = []
    for path in paths:
        kind = load_checkpoint(path, trainer_state=False).config.get("kind")
        if kind not in kinds:
            raise UserError(f"{path}: explore reads language-model, classifier and forecaster "
                            f"runs; this checkpoint's kind is {kind!r}")
        runs.append(kinds[kind].load(path, max_chars=max_chars))
    return runs


def run(args) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0 to 65535, got {args.port}")
    if args.max_chars < 1:
        raise UserError(f"--max-chars must be at least 1, got {args.max_chars}")
    try:
        import uvicorn  # noqa: F401

        from rnnkit.explore.server import CallingThreadExecutor, create_app, serve
    except ImportError as problem:
        raise UserError(f"explore needs starlette and uvicorn ({problem}); "
                        "pip install rnnkit again to get them") from None
    runs = load_runs(args.runs, args.max_chars)
    loopback = is_loopback(args.host)
    if not loopback:
        print(f"rnnkit: warning: --host {args.host} serves the app (and the run's model and "
              "corpus excerpts) to other machines on the network", file=sys.stderr)
    model_work = CallingThreadExecutor()  # the model runs on this thread, which loaded it
    app = create_app(runs, allowed_hosts=LOOPBACK_NAMES if loopback else None,
                     model_executor=model_work)
    shown = f"[{args.host}]" if ":" in args.host else args.host

    def announce(server):  # once uvicorn listens: the real port (also for --port 0)
        url = f"http://{shown}:{bound_port(server, args.port)}/"
        print(f"rnnkit explore: {', '.join(str(path) for path in args.runs)} on {url} "
              "(Ctrl-C stops)", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(url)

    serve(app, model_work, host=args.host, port=args.port, started=announce)
    return 0


def bound_port(server, default: int) -> int:
    for listener in getattr(server, "servers", []):
        for sock in listener.sockets:
            return sock.getsockname()[1]
    return default
