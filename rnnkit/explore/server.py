"""The ``rnnkit explore`` web app: a Starlette application over one or two loaded runs.

Routes (JSON in and out; every error is a 4xx with one line ``{"error": "..."}``)::

    GET  /                      the page          GET /static/NAME   its script and style
    GET  /api/run               the run's config, vocabulary size, gates (?run=1: the second)
    POST /api/trace             {"text", "layer"[, "units"]} -> tokens, gates, cell, hidden
                                (exact; only the columns of "units" when given)
    POST /api/colour            {"text", "layer", "quantity", "unit"} -> one value per token,
                                surprise, top-k next tokens
    POST /api/token             {"text", "layer", "position"} -> that token's gates, top-k,
                                connectivity
    POST /api/units/hypothesis  {"text", "pattern", "layer", "quantity"} -> ranked units
    POST /api/units/match       {"text", "start", "end", "threshold", ...} -> units, spans
    POST /api/classify          {"text"} -> class probabilities, each token's contribution
    POST /api/forecast          {"origin", "layer"} -> history, forecast band, actual, gates
    (a forecaster's /api/trace takes {"origin", "layer"}: the encoder over that window)
    GET  /api/sample?prime=&length=&temperature=&top_k=&top_p=&layer=&seed=   server-sent events
    GET  /api/health            curves, saturation, gradient flow

Only the files in :data:`ASSETS` are served (read once from the package); no part of a
request names a file. Request bodies are capped at :data:`MAX_BODY` bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rnnkit.explore.analysis import ExploreBase, RequestError

logger = logging.getLogger(__name__)

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
MAX_BODY = 256 * 1024
MAX_SAMPLE = 2000
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status,
                        headers=SECURITY_HEADERS)


def ok(payload: dict, started: float | None = None) -> JSONResponse:
    """A 200 answer; with ``started``, a Server-Timing header with the milliseconds since then,
    the JSON encoding included."""
    response = JSONResponse(payload, headers=SECURITY_HEADERS)  # encodes the body here
    if started is not None:
        response.headers["Server-Timing"] = \
            f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _asset(name: str) -> bytes:
    return resources.files("rnnkit.explore").joinpath("static", name).read_bytes()


class CallingThreadExecutor(Executor):
    """Runs the calls submitted to it on the thread that calls :meth:`work` (the main thread,
    which loaded the model), while the server answers requests on another.

    Why: the fused kernels run their time loops on an OpenMP team that meets at a barrier every
    step. GNU OpenMP keeps a team per calling thread, and once the process holds more of its
    threads than there are cores (a second calling thread's team on 2 cores) it stops spinning
    at barriers and sleeps instead: a 2,000-character forward took 390-450 ms on a second
    thread against 70-80 ms on the thread that had already used the kernels (measured, 2
    cores). Keeping every torch call on one thread keeps one team."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._closed:
            raise RuntimeError("the model thread has stopped")
        future: Future = Future()
        self._jobs.put((future, fn, args, kwargs))
        return future

    def work(self, until) -> None:
        """Run submitted calls on this thread until ``until()`` is true (checked at least
        every 0.1 s)."""
        try:
            while not until():
                try:
                    future, fn, args, kwargs = self._jobs.get(timeout=0.1)
                except queue.Empty:
                    continue
                if future.set_running_or_notify_cancel():
                    try:
                        result = fn(*args, **kwargs)
                    except KeyboardInterrupt:  # Ctrl-C during a request: stop serving
                        future.cancel() or future.set_exception(RuntimeError("interrupted"))
                        raise
                    except Exception as problem:  # handed to the awaiting request
                        future.set_exception(problem)
                    else:
                        future.set_result(result)
        finally:
            self._closed = True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True


def serve(app, executor: CallingThreadExecutor, *, host: str, port: int,
          started=None) -> None:
    """Serve ``app`` with uvicorn on a background thread while this thread runs the model
    work that ``executor`` receives, until the server stops (Ctrl-C stops it).
    ``started(server)`` is called on a thread of its own once the server listens."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="rnnkit-explore-server", daemon=True)
    thread.start()
    if started is not None:
        def when_listening():
            while not server.started:
                if not thread.is_alive():
                    return
                time.sleep(0.05)
            started(server)
        threading.Thread(target=when_listening, daemon=True).start()
    try:
        executor.work(until=lambda: not thread.is_alive())
    except KeyboardInterrupt:  # Ctrl-C: stop serving, as uvicorn does on the main thread
        pass
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def create_app(runs: list[ExploreBase], allowed_hosts: list[str] | None = None,
               model_executor: Executor | None = None) -> Starlette:
    """The application. ``allowed_hosts`` (the CLI passes the loopback names when bound to
    127.0.0.1) refuses requests for other Host headers, which stops DNS rebinding. Every model
    call runs on ``model_executor``'s one thread (by default a thread of its own; the CLI
    passes a :class:`CallingThreadExecutor` so that it is the main thread, see there)."""
    if not 1 <= len(runs) <= 2:
        raise ValueError("explore serves one or two runs")
    page = _asset("index.html")
    assets = {name: _asset(name) for name in ASSETS}
    model_thread = model_executor or ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="rnnkit-explore-model")

    async def on_model_thread(call, *args):
        return await asyncio.get_running_loop().run_in_executor(model_thread,
                                                                lambda: call(*args))

    def chosen_run(request: Request) -> ExploreBase:
        value = request.query_params.get("run", "0")
        if value not in [str(index) for index in range(len(runs))]:
            raise RequestError(f"'run' must be one of 0 to {len(runs) - 1}, got {value!r}")
        return runs[int(value)]

    async def body(request: Request) -> dict:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise RequestError(f"the request body is over {MAX_BODY} bytes", status=413)
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise RequestError(f"the request body is over {MAX_BODY} bytes", status=413)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError("the request body must be a JSON object") from None
        if not isinstance(data, dict):
            raise RequestError("the request body must be a JSON object")
        return data

    def handled(function):
        async def endpoint(request: Request):
            try:
                return await function(request)
            except RequestError as problem:
                return error(str(problem), problem.status)
        return endpoint

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return error(f"no such file: {name}", 404)
        return Response(assets[name], media_type=ASSETS[name], headers=SECURITY_HEADERS)

    @handled
    async def run_info(request: Request):
        run = chosen_run(request)
        return ok({**run.summary(), "runs": [other.name for other in runs]})

    def post(name: str, call):
        """A POST endpoint that calls ``call(run, body)``; only for runs that have ``name``."""
        @handled
        async def endpoint(request: Request):
            run = chosen_run(request)
            if not hasattr(run, name):
                raise RequestError(f"{request.url.path} is not for a {run.kind} "
                                   "run")
            data = await body(request)
            started = time.perf_counter()
            result = await on_model_thread(call, run, data)
            return ok(result, started)
        return endpoint

    def layer_of(data):
        return data.get("layer", 0)

    def trace_call(run, data):
        if getattr(run, "kind", "") == "forecaster":
            return run.trace(data.get("origin"), layer_of(data))
        if hasattr(run, "check_units"):
            return run.trace(data.get("text"), layer_of(data), data.get("units"))
        return run.trace(data.get("text"), layer_of(data))

    trace = post("trace", trace_call)
    colour = post("colour", lambda run, data: run.colour(
        data.get("text"), str(data.get("quantity", "surprise")), layer_of(data),
        data.get("unit", 0)))
    token = post("token", lambda run, data: run.token(data.get("text"), layer_of(data),
                                                      data.get("position")))
    hypothesis = post("hypothesis", lambda run, data: run.hypothesis(
        data.get("text"), data.get("pattern"), layer_of(data),
        str(data.get("quantity", "activation"))))
    match = post("match", lambda run, data: run.match(
        data.get("text"), data.get("start"), data.get("end"), data.get("threshold", 0.5),
        layer_of(data), str(data.get("quantity", "activation")), data.get("against") or ""))
    classify = post("classify", lambda run, data: run.classify(data.get("text")))
    forecast = post("forecast", lambda run, data: run.forecast(data.get("origin"),
                                                               layer_of(data)))

    @handled
    async def validation(request: Request):
        run = chosen_run(request)
        if not hasattr(run, "validation_text"):
            raise RequestError("/api/validation is for language-model runs")
        return ok({"text": run.validation_text(min(2000, run.max_chars))})

    @handled
    async def health(request: Request):
        run = chosen_run(request)
        return ok(await on_model_thread(run.health))

    def number(params, name, kind, default, low, high):
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise RequestError(f"'{name}' must be a {kind.__name__}, got {raw!r}") from None
        if not low <= value <= high:
            raise RequestError(f"'{name}' must be between {low} and {high}, got {raw}")
        return value

    @handled
    async def sample(request: Request):
        run = chosen_run(request)
        if not hasattr(run, "sample"):
            raise RequestError("/api/sample is for language-model runs")
        params = request.query_params
        length = number(params, "length", int, 200, 1, MAX_SAMPLE)
        temperature = number(params, "temperature", float, 1.0, 0.01, 10.0)
        top_k = number(params, "top_k", int, 0, 0, run.tokenizer.vocab_size)
        top_p = number(params, "top_p", float, 1.0, 0.01, 1.0)
        layer = run.check_layer(number(params, "layer", int, 0, -10**6, 10**6))
        seed = number(params, "seed", int, None, 0, 2**31 - 1) if params.get("seed") else None
        prime = params.get("prime", "")
        if prime:
            run.check_text(prime)
            run.encode(prime)
        tokens = run.sample(prime, length, temperature, top_k, top_p, layer, seed)
        finished = object()

        async def events():  # each token made on the model thread, sent as it comes
            while (item := await on_model_thread(next, tokens, finished)) is not finished:
                yield f"data: {json.dumps(item)}\n\n"
            yield "event: done\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    async def not_found(request: Request, problem: HTTPException):
        return error(problem.detail if problem.status_code != 404 else
                     "not found: this server has only / , /static/app.js, /static/app.css and "
                     "/api/...", problem.status_code)

    async def failure(request: Request, problem: Exception):
        logger.exception("explore: %s %s failed", request.method, request.url.path)
        return error(f"internal error: {type(problem).__name__}", 500)

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/run", run_info),
        Route("/api/trace", trace, methods=["POST"]),
        Route("/api/colour", colour, methods=["POST"]),
        Route("/api/token", token, methods=["POST"]),
        Route("/api/units/hypothesis", hypothesis, methods=["POST"]),
        Route("/api/units/match", match, methods=["POST"]),
        Route("/api/classify", classify, methods=["POST"]),
        Route("/api/forecast", forecast, methods=["POST"]),
        Route("/api/validation", validation),
        Route("/api/sample", sample),
        Route("/api/health", health),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] \
        if allowed_hosts else []
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={HTTPException: not_found, Exception: failure})
