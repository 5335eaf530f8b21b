"""``rnnkit explore``'s JSON API through Starlette's TestClient, against oracles computed here
from the run loaded independently: the layers' internals, log-softmax, autograd, numpy."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import torch

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from rnnkit.cli import main  # noqa: E402
from rnnkit.commands.explore import is_loopback  # noqa: E402
from rnnkit.explore.analysis import ExploreRun  # noqa: E402
from rnnkit.explore.server import MAX_BODY, create_app  # noqa: E402
from rnnkit.train.metrics import read_metrics  # noqa: E402
from rnnkit.train.runs import load_run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TEXT = 'Before we proceed, "Quiet!" said one.\nAll: speak (He speaks.)'


@pytest.fixture(scope="module")
def client(explore_run):
    return TestClient(create_app([ExploreRun.load(explore_run, max_chars=300)]))


@pytest.fixture(scope="module")
def oracle(explore_run):
    """The same run, loaded again, and its internals over TEXT by the model's own forward."""
    model, tokenizer, _ = load_run(explore_run)
    ids = tokenizer.encode(TEXT)
    with torch.no_grad():
        logits, _, internals = model(torch.tensor(ids).unsqueeze(1), return_internals=True)
    return model, tokenizer, ids, logits[:, 0], internals


def assert_one_line_error(response, status):
    assert response.status_code == status, response.text
    assert "\n" not in response.text.strip()
    message = response.json()["error"]
    assert isinstance(message, str) and message
    return message


def test_run_reports_config_and_vocabulary(client, oracle):
    _, tokenizer, *_ = oracle
    data = client.get("/api/run").json()
    assert data["vocab_size"] == tokenizer.vocab_size
    assert data["gates"] == ["input", "forget", "cell", "output"]
    assert data["config"]["model"]["hidden"] == 16 and data["layers"] == 2
    assert data["runs"] == [data["name"]]


@pytest.mark.parametrize("layer", [0, 1])
def test_trace_is_the_layers_internals_exactly(client, oracle, layer):
    _, tokenizer, ids, _, internals = oracle
    data = client.post("/api/trace", json={"text": TEXT, "layer": layer}).json()
    direction = internals[layer][0]
    assert data["tokens"] == [tokenizer.decode([token]) for token in ids]
    assert set(data["gates"]) == set(direction.gates)
    for name, value in direction.gates.items():
        assert data["gates"][name] == value[:, 0].tolist(), name
    assert data["cell"] == direction.cell[:, 0].tolist()
    assert data["hidden"] == direction.hidden[:, 0].tolist()
    assert len(data["hidden"]) == len(ids) and len(data["hidden"][0]) == 16
    some = client.post("/api/trace", json={"text": TEXT, "layer": layer, "units": [7, 2]}).json()
    assert some["gates"]["forget"] == direction.gates["forget"][:, 0, [7, 2]].tolist()
    assert some["cell"] == direction.cell[:, 0, [7, 2]].tolist()


def test_colour_values_surprise_and_top_k(client, oracle):
    _, tokenizer, ids, logits, internals = oracle
    data = client.post("/api/colour", json={"text": TEXT, "layer": 1, "quantity": "forget",
                                            "unit": 5}).json()
    assert data["values"] == internals[1][0].gates["forget"][:, 0, 5].tolist()
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    expected = [-float(log_probs[t - 1, ids[t]]) for t in range(1, len(ids))]
    assert data["surprise"][0] is None
    np.testing.assert_allclose(data["surprise"][1:], expected, rtol=1e-5)
    probabilities, order = log_probs[3].exp().topk(5)
    assert [token for token, _ in data["top"][3]] == [tokenizer.decode([int(i)]) for i in order]
    np.testing.assert_allclose([p for _, p in data["top"][3]], probabilities.numpy(), atol=6e-7)
    cell = client.post("/api/colour", json={"text": TEXT, "layer": 0, "quantity": "activation",
                                            "unit": 2}).json()
    assert cell["values"] == np.tanh(internals[0][0].cell[:, 0, 2].numpy()).tolist()


def test_token_hover_and_connectivity(client, oracle):
    model, _, ids, logits, internals = oracle
    position = 12
    data = client.post("/api/token", json={"text": TEXT, "layer": 0, "position": position}).json()
    for name, value in internals[0][0].gates.items():
        assert data["gates"][name] == value[position, 0].tolist()
    # oracle: the whole model's forward with the embedding's output made a leaf by a hook
    target = int(logits[position].argmax())
    leaf = {}

    def make_leaf(module, inputs, output):
        leaf["x"] = output.detach().requires_grad_(True)
        return leaf["x"]

    handle = model.embedding.register_forward_hook(make_leaf)
    try:
        out, _ = model(torch.tensor(ids[: position + 1]).unsqueeze(1))
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(torch.log_softmax(out[-1, 0], -1)[target], leaf["x"])
    expected = grad[:, 0].norm(dim=-1)
    assert len(data["connectivity"]) == position + 1
    np.testing.assert_allclose(data["connectivity"], expected.numpy(), rtol=1e-4, atol=1e-9)


def test_hypothesis_ranks_units_by_correlation(client, oracle):
    _, _, ids, _, internals = oracle
    data = client.post("/api/units/hypothesis", json={
        "text": TEXT, "pattern": '"[^"]*"', "layer": 0, "quantity": "hidden"}).json()
    inside = TEXT.index('"'), TEXT.rindex('"') + 1
    feature = np.array([float(inside[0] <= t < inside[1]) for t in range(len(ids))])
    assert data["feature"] == feature.tolist()
    hidden = internals[0][0].hidden[:, 0].double().numpy()
    r = np.array([np.corrcoef(hidden[:, unit], feature)[0, 1] for unit in range(16)])
    expected = np.argsort(-np.abs(r))[: len(data["units"])]
    assert [unit["unit"] for unit in data["units"]] == expected.tolist()
    np.testing.assert_allclose([unit["r"] for unit in data["units"]], r[expected], rtol=1e-6)


def test_match_lists_units_on_over_the_span_and_where_they_fire(client, oracle):
    _, _, _, _, internals = oracle
    data = client.post("/api/units/match", json={"text": TEXT, "start": 3, "end": 6,
                                                  "threshold": 0.0, "layer": 1,
                                                  "quantity": "hidden"}).json()
    hidden = internals[1][0].hidden[:, 0].numpy()
    assert data["units"] == np.flatnonzero((hidden[3:6] > 0).all(axis=0)).tolist()
    assert data["selected"] == TEXT[3:6]
    assert data["units"], "the test span should have some unit on"
    on = (hidden[:, data["units"]] > 0).all(axis=1)
    covered = set()
    for span in data["spans"]:
        assert on[span["start"]:span["end"]].all()
        assert span["start"] == 0 or not on[span["start"] - 1]
        assert span["end"] == len(on) or not on[span["end"]]
        covered.update(range(span["start"], span["end"]))
    assert set(range(3, 6)) <= covered


def events(text: str) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in text.splitlines()
            if line.startswith("data: ") and line != "data: {}"]


def test_sample_streams_tokens_with_gates(client, oracle):
    model, tokenizer, *_ = oracle
    response = client.get("/api/sample?prime=All&length=30&seed=4&layer=1&temperature=0.9")
    assert response.headers["content-type"].startswith("text/event-stream")
    items = events(response.text)
    assert len(items) == 30 and "event: done" in response.text
    assert set(items[0]["gates"]) == {"input", "forget", "cell", "output"}
    again = events(client.get("/api/sample?prime=All&length=30&seed=4&layer=1"
                              "&temperature=0.9").text)
    assert [item["token"] for item in again] == [item["token"] for item in items]
    # the gates streamed are layer 1's, mean over units, for the text so far
    text = "All" + "".join(item["token"] for item in items)
    with torch.no_grad():
        _, _, internals = model(torch.tensor(tokenizer.encode(text)).unsqueeze(1),
                                return_internals=True)
    means = internals[1][0].gates["forget"][:, 0].mean(dim=-1)
    np.testing.assert_allclose([item["gates"]["forget"] for item in items],
                               means[2:-1].numpy(), rtol=1e-4)


def test_health_curves_come_from_metrics(client, explore_run):
    data = client.get("/api/health").json()
    records = read_metrics(explore_run)
    assert data["curves"]["train"] == [[r["step"], r["loss"]] for r in records
                                       if r.get("kind") == "train"]
    assert data["curves"]["validation"] == [[r["step"], r["val_loss"]] for r in records
                                            if r.get("kind") == "eval"]
    assert len(data["saturation"]) == 2 and set(data["saturation"][0]) == {"input", "forget",
                                                                           "output"}
    passage = ExploreRun.load(explore_run).validation_text(400)
    model, tokenizer, _ = load_run(explore_run)
    with torch.no_grad():
        _, _, internals = model(torch.tensor(tokenizer.encode(passage)).unsqueeze(1),
                                return_internals=True)
    forget = internals[1][0].gates["forget"].numpy()
    counts, _ = np.histogram(forget, bins=20, range=(0, 1))
    assert data["histograms"][1]["forget"] == counts.tolist()
    assert data["saturation"][1]["forget"]["below_0.1"] == pytest.approx((forget < 0.1).mean())
    flow = data["gradient_flow"]
    assert len(flow["hidden_norm"]) > 2 and len(flow["cell_norm"]) == len(flow["hidden_norm"])


BAD_REQUESTS = [
    ("/api/trace", {"text": "", "layer": 0}, 400, "empty"),
    ("/api/trace", {"text": "Before \u00e9t\u00e9", "layer": 0}, 400, "vocabulary"),
    ("/api/trace", {"text": "a" * 301, "layer": 0}, 413, "limit is 300"),
    ("/api/trace", {"text": "Before", "layer": 2}, 400, "layer 2 does not exist"),
    ("/api/trace", {"text": "Before", "layer": "0"}, 400, "integer"),
    ("/api/trace", {"text": 5, "layer": 0}, 400, "string"),
    ("/api/trace", {"text": "Before", "units": [16]}, 400, "'unit'"),
    ("/api/trace", {"text": "Before", "units": "all"}, 400, "'units'"),
    ("/api/colour", {"text": "Before", "quantity": "reset"}, 400, "quantity 'reset'"),
    ("/api/token", {"text": "Before", "position": 6}, 400, "position"),
    ("/api/units/hypothesis", {"text": "Before", "pattern": "(("}, 400, "regular expression"),
    ("/api/units/match", {"text": "Before", "start": 4, "end": 2}, 400, "start"),
]


@pytest.mark.parametrize("path, body, status, words", BAD_REQUESTS,
                         ids=[f"{path}-{words}" for path, _, _, words in BAD_REQUESTS])
def test_bad_requests_get_a_one_line_error_and_the_server_goes_on(client, path, body, status,
                                                                   words):
    message = assert_one_line_error(client.post(path, json=body), status)
    assert words in message
    assert client.post("/api/trace", json={"text": "Before", "layer": 0}).status_code == 200


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/static/../analysis.py",
                                  "/static/%2e%2e%2fanalysis.py", "/static/index.html",
                                  "/api/../../etc/passwd", "/static//etc/passwd", "/run"])
def test_no_path_reaches_the_file_system(client, path):
    assert_one_line_error(client.get(path), 404)
    assert client.get("/api/run").status_code == 200


def test_malformed_and_oversized_bodies(client):
    assert "JSON object" in assert_one_line_error(
        client.post("/api/trace", content=b"{not json"), 400)
    assert "JSON object" in assert_one_line_error(client.post("/api/trace", json=[1, 2]), 400)
    big = json.dumps({"text": "a" * (MAX_BODY + 10), "layer": 0})
    assert "over" in assert_one_line_error(client.post("/api/trace", content=big), 413)
    assert "'run'" in assert_one_line_error(client.get("/api/run?run=1"), 400)
    assert "'length'" in assert_one_line_error(client.get("/api/sample?length=0"), 400)
    assert "'temperature'" in assert_one_line_error(client.get("/api/sample?temperature=x"), 400)
    assert assert_one_line_error(client.get("/api/trace"), 405)


def test_page_and_assets_carry_a_content_security_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(src).status_code == 200


def test_other_host_headers_are_refused(explore_run):
    app = create_app([ExploreRun.load(explore_run)], allowed_hosts=["127.0.0.1", "localhost"])
    local = TestClient(app, base_url="http://127.0.0.1:8000")
    assert local.get("/api/run").status_code == 200
    assert TestClient(app, base_url="http://rebound.example").get("/api/run").status_code == 400


def test_two_runs_are_served_side_by_side(explore_run):
    client = TestClient(create_app([ExploreRun.load(explore_run)] * 2))
    assert client.get("/api/run?run=1").json()["runs"] == ["run", "run"]
    assert client.get("/api/health?run=1").status_code == 200


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["explore", str(tmp_path / "missing")]) == 2
    assert main(["explore", str(tmp_path), "--port", "70000"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("rnnkit: error: ") for line in lines)
    assert "does not exist" in lines[0] and "--port" in lines[1]


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def serve(arguments: list[str]):
    """Start ``rnnkit explore`` in a process; return it and the URL it printed."""
    # Ctrl-C reaches the command as from a terminal even when pytest itself runs as a
    # background job (`pytest &`), which starts with SIGINT ignored and would pass that on
    process = subprocess.Popen([sys.executable, "-m", "rnnkit.cli", "explore", *arguments,
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = process.stdout.readline()
    match = re.search(r"http://\S+/", line)
    if match is None:
        process.kill()
        raise AssertionError(f"no URL printed: {line!r} {process.stderr.read()}")
    return process, match.group(0)


def test_command_serves_on_loopback_and_warns_for_other_hosts(explore_run):
    process, url = serve([str(explore_run)])
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/run", timeout=30) as response:
            assert json.load(response)["name"] == "run"
        # the model work runs on the command's main thread: a trace and a streamed sample
        request = urllib.request.Request(url + "api/trace", method="POST",
                                         data=json.dumps({"text": "to be", "layer": 0}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.load(response)["tokens"] == list("to be")
        with urllib.request.urlopen(url + "api/sample?length=5&seed=1", timeout=60) as response:
            events = response.read().decode()
        assert events.count("data: {\"token\"") == 5 and events.endswith("data: {}\n\n")
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C stops the server cleanly
        assert process.wait(timeout=30) == 0
    assert "warning" not in process.stderr.read()
    process, url = serve([str(explore_run), "--host", "0.0.0.0"])
    process.terminate()
    process.wait(timeout=30)
    assert "rnnkit: warning: --host 0.0.0.0" in process.stderr.read()


@pytest.fixture(scope="module")
def supervised(explore_supervised_runs):
    from rnnkit.commands.explore import load_runs

    runs = load_runs([explore_supervised_runs["classifier"],
                      explore_supervised_runs["forecaster"]], 300)
    return TestClient(create_app(runs))


def expected_contributions(run, ids, predicted):
    """Oracle: the model's own forward with the embeddings' outputs swapped for leaves, in
    every member of an ensemble; each n-gram's gradient x input shared out token by token."""
    tokens, lengths = torch.tensor([ids]), torch.tensor([len(ids)])
    singles = run.model.singles()
    assert singles[0].config.ngrams == 3  # classify train's default: the bag of n-grams too
    leaves, handles = [], []
    for single in singles:
        embedded = single.embedding(tokens).detach().requires_grad_(True)
        grams = single.ngram_embedding(single.ngram_ids(tokens, lengths)[0])
        grams = grams.detach().requires_grad_(True)
        leaves += [embedded, grams]
        handles += [single.embedding.register_forward_hook(lambda m, i, o, x=embedded: x),
                    single.ngram_embedding.register_forward_hook(lambda m, i, o, x=grams: x)]
    try:
        logit = run.model(tokens, lengths)[0, predicted]
        grads = torch.autograd.grad(logit, leaves)
    finally:
        for handle in handles:
            handle.remove()
    steps = len(ids)
    expected = torch.zeros(steps)
    for member in range(len(singles)):
        embedded, grams = leaves[2 * member], leaves[2 * member + 1]
        grad, grams_grad = grads[2 * member], grads[2 * member + 1]
        expected += (grad[0] * embedded[0].detach()).sum(dim=-1)
        per_gram = (grams_grad[0] * grams[0].detach()).sum(dim=-1)  # (3 * T,): orders 1-3
        for order in (1, 2, 3):  # each real n-gram's share to each token it spans
            for start in range(steps - order + 1):
                for token in range(start, start + order):
                    expected[token] += per_gram[(order - 1) * steps + start] / order
    return expected


def check_classify(client, run, text):
    """POST /api/classify; its probabilities against the model's own: (data, ids, predicted)."""
    data = client.post("/api/classify?run=0", json={"text": text}).json()
    ids = run.encoder.encode(text)
    logits = run.model(torch.tensor([ids]), torch.tensor([len(ids)]))[0]
    np.testing.assert_allclose(data["probabilities"], logits.softmax(-1).detach().numpy(),
                               rtol=1e-5)
    return data, ids, int(logits.argmax())


def test_classifier_probabilities_and_contributions(supervised, explore_supervised_runs):
    from rnnkit.classify.run import load_classifier

    run = load_classifier(explore_supervised_runs["classifier"])
    assert len(run.model.singles()) == 4  # classify train's default: an ensemble of four
    text = "good fine bad 3"
    data, ids, predicted = check_classify(supervised, run, text)
    assert data["predicted"] == run.classes[predicted] and data["classes"] == run.classes
    assert data["tokens"] == [run.encoder.tokens()[i] for i in ids]
    expected = expected_contributions(run, ids, predicted)
    np.testing.assert_allclose(data["contributions"], expected.numpy(), rtol=1e-4, atol=1e-7)
    trace = supervised.post("/api/trace?run=0", json={"text": text, "layer": 0}).json()
    with torch.no_grad():
        first = run.model.singles()[0]
        _, _, internals = first.rnn(first.embedding(torch.tensor([ids])),
                                    return_internals=True)
    assert trace["hidden"] == internals[0][0].hidden[0].tolist()


def test_a_single_network_classifier_explains_too(tmp_path):
    from rnnkit.classify.run import load_classifier
    from rnnkit.commands.explore import load_runs
    from tests.test_cli_errors import reviews

    (tmp_path / "r.tsv").write_text(reviews(), encoding="utf-8")
    assert main(["classify", "train", str(tmp_path / "r.tsv"), "--embedding", "4", "--hidden",
                 "8", "--members", "1", "--max-steps", "2", "--no-progress", "--threads", "1",
                 "--out", str(tmp_path / "run")]) == 0
    client = TestClient(create_app(load_runs([tmp_path / "run"], 300)))
    run = load_classifier(tmp_path / "run")
    assert run.model.singles() == [run.model]  # one network, no members
    text = "good fine bad 3"
    data, ids, predicted = check_classify(client, run, text)
    expected = expected_contributions(run, ids, predicted)
    np.testing.assert_allclose(data["contributions"], expected.numpy(), rtol=1e-4, atol=1e-7)
    trace = client.post("/api/trace?run=0", json={"text": text, "layer": 0}).json()
    assert trace["tokens"] == [run.encoder.tokens()[i] for i in ids]


def test_forecaster_band_actual_and_gates(supervised, explore_supervised_runs):
    from rnnkit.forecast.evaluate import model_forecast
    from rnnkit.forecast.run import ForecastData, load_forecast

    run = load_forecast(explore_supervised_runs["forecaster"])
    data = ForecastData(run.config, scaler=run.scaler)
    info = supervised.get("/api/run?run=1").json()
    assert info["kind"] == "forecaster" and info["quantiles"] == [0.1, 0.5, 0.9]
    origin = info["origins"]["test"][0]
    answer = supervised.post("/api/forecast?run=1", json={"origin": origin, "layer": 0}).json()
    band = run.scaler.inverse_target(model_forecast(run, data.scaled, [origin])[0])  # (H, Q)
    np.testing.assert_allclose(answer["point"], band[:, 1], rtol=1e-5)
    np.testing.assert_allclose(answer["quantiles"]["0.9"], band[:, 2], rtol=1e-5)
    target = data.series.target
    assert answer["actual"] == target[origin:origin + 3].tolist()
    assert answer["history"] == target[origin - 6:origin].tolist()
    assert set(answer["gates"]) == {"input", "forget", "cell", "output"}
    assert len(answer["gates"]["forget"]) == 6
    trace = supervised.post("/api/trace?run=1", json={"origin": origin, "layer": 0}).json()
    np.testing.assert_allclose(np.mean(trace["gates"]["forget"], axis=1),
                               answer["gates"]["forget"], rtol=1e-6)
    for bad in (5, 10_000, "7"):
        assert "'origin'" in assert_one_line_error(
            supervised.post("/api/forecast?run=1", json={"origin": bad}), 400)


def test_views_of_one_kind_refuse_the_other(supervised, explore_supervised_runs):
    assert "language_model" not in assert_one_line_error(
        supervised.post("/api/colour?run=0", json={"text": "good"}), 400)
    assert "forecaster" in assert_one_line_error(
        supervised.post("/api/classify?run=1", json={"text": "good"}), 400)
    assert_one_line_error(supervised.get("/api/sample?run=0"), 400)
    for index, kind in enumerate(("classifier", "forecaster")):
        records = read_metrics(explore_supervised_runs[kind])
        curves = supervised.get(f"/api/health?run={index}").json()["curves"]
        assert curves["validation"] == [[r["step"], r["val_loss"]] for r in records
                                        if r.get("kind") == "eval"]
        assert curves["validation"]


def test_word_level_tokens_and_hypothesis(tmp_path):
    corpus = tmp_path / "words.txt"
    corpus.write_text("the cat sat on the mat\nthe dog ran to the cat\n" * 20, encoding="utf-8")
    assert main(["train", str(corpus), "--level", "word", "--out", str(tmp_path / "run"),
                 "--layers", "1", "--hidden", "8", "--embedding", "4", "--batch-size", "2",
                 "--seq-len", "8", "--max-steps", "2", "--no-progress", "--threads", "1"]) == 0
    client = TestClient(create_app([ExploreRun.load(tmp_path / "run")]))
    text = "the cat sat\non the mat"
    data = client.post("/api/colour", json={"text": text, "quantity": "surprise"}).json()
    assert data["tokens"] == ["the", "cat", "sat", "\n", "on", "the", "mat"]
    # "cat" and "mat": the units are ranked against the tokens the pattern falls in
    ranked = client.post("/api/units/hypothesis", json={"text": text, "pattern": "[cm]at",
                                                        "quantity": "hidden"}).json()
    assert ranked["feature"] == [0, 1, 0, 0, 0, 0, 1]
    sample = events(client.get("/api/sample?prime=the&length=5&seed=0").text)
    assert all(item["token"] == "\n" or item["token"].startswith(" ") for item in sample)


def test_non_finite_numbers_become_null():
    from rnnkit.explore.analysis import finite

    # an exploding gradient overflows float32 far back in a long text (an untrained
    # layer-norm LSTM does so on Tiny Shakespeare); JSON has no inf, the page draws null
    assert finite({"a": [1.0, float("inf"), float("nan")], "b": (2, -float("inf"))}) == \
        {"a": [1.0, None, None], "b": [2, None]}
