"""``rnnkit explore`` in a real browser: Debian's headless Chromium driven by Playwright
(``executable_path``, so nothing is downloaded), against uvicorn serving the app on a free
port in a thread. Screenshots of each view go to ``$RNNKIT_TEST_ARTIFACTS/explore`` when that
is set, else to the test's tmp folder."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

from starlette.testclient import TestClient  # noqa: E402

from rnnkit.explore.analysis import ExploreRun  # noqa: E402
from rnnkit.explore.server import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                 "(.ci/run installs it)"), pytest.mark.usefixtures("one_thread")]
TEXT = 'First Citizen:\nSpeak, speak. "Quiet!" said one.'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app(explore_run):
    return create_app([ExploreRun.load(explore_run, max_chars=2000)])


def serve(app):
    """Serve ``app`` with uvicorn on a free port in a thread; yield its URL, then stop it."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{config.port}/"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(app):
    yield from serve(app)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = os.environ.get("RNNKIT_TEST_ARTIFACTS")
    path = Path(folder) / "explore" if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(browser, server):
    """A fresh page on the app; fails the test if the page logged any console error."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(server)
    page.wait_for_selector("body[data-ready=true]")
    page.console_problems = problems
    yield page
    context.close()
    assert problems == [], f"console errors: {problems}"


def type_text(page, text: str) -> None:
    page.fill("#text-input", text)
    page.wait_for_function("(n) => document.querySelectorAll('#tokens .tok').length === n",
                           arg=len(text))


def test_typing_colours_tokens_and_hover_shows_the_apis_gates(page, app, artifacts):
    page.select_option("#quantity", "forget")
    page.select_option("#layer", "1")
    page.fill("#unit", "3")
    type_text(page, TEXT)
    spans = page.locator("#tokens .tok")
    assert spans.all_text_contents() == [("\u21b5\n" if c == "\n" else c) for c in TEXT]
    api = TestClient(app).post("/api/trace", json={"text": TEXT, "layer": 1}).json()
    colours = [span.evaluate("s => getComputedStyle(s).backgroundColor") for span in spans.all()]
    assert len(set(colours)) > 3 and "rgb(255, 255, 255)" not in colours
    values = [float(v) for v in page.eval_on_selector_all(
        "#tokens .tok", "spans => spans.map(s => s.dataset.value)")]
    assert values == [row[3] for row in api["gates"]["forget"]]
    position = 20
    spans.nth(position).hover()
    page.wait_for_selector("#hover-gates")
    page.wait_for_function("(i) => document.querySelectorAll('#tokens .tok')[i].style.boxShadow",
                           arg=position)
    for name in ("input", "forget", "cell", "output"):
        shown = page.get_attribute(f"#hover-gates td[data-gate={name}]", "data-value")
        assert float(shown) == api["gates"][name][position][3], name
    assert float(page.get_attribute("#hover-gates td[data-gate=cell_state]", "data-value")) \
        == api["cell"][position][3]
    assert page.locator("#hover-top tr").count() == 6  # header and the top 5
    later = page.eval_on_selector_all("#tokens .tok", f"s => s.slice({position + 1})"
                                      ".map(x => x.style.boxShadow)")
    assert set(later) == {""}  # connectivity shades only the token and what came before it
    page.screenshot(path=str(artifacts / "text.png"), full_page=True)


def test_script_typed_as_text_is_shown_not_run(page):
    # every character here is in the tiny run's vocabulary (tests/conftest.py)
    attack = '<b>bold</b> "<script>document.title=\'owned\'</script>" <b onclick=x>'
    title = page.title()
    type_text(page, attack)
    shown = "".join(page.locator("#tokens .tok").all_text_contents())
    assert shown == attack
    assert page.title() == title
    assert page.locator("#tokens b, #tokens script").count() == 0


def test_errors_are_shown_on_the_page(page):
    page.fill("#text-input", "caf\u00e9")
    page.wait_for_selector("#error:not([hidden])")
    assert "vocabulary" in page.inner_text("#error")
    # the browser logs the refused request itself; that one is expected here
    page.console_problems[:] = [problem for problem in page.console_problems
                                if "status of 400" not in problem]


def test_live_sampling_streams_tokens(page, artifacts):
    page.click("button[data-view=sample]")
    page.fill("#prime", "All")
    page.fill("#length", "2000")
    page.fill("#seed", "1")
    page.click("#sample-start")
    page.wait_for_function("() => document.querySelectorAll('#sample-out .tok').length >= 20")
    page.click("#sample-stop")  # tokens arrived while the stream was still open
    count = page.locator("#sample-out .tok").count()
    assert 20 <= count < 2000
    assert page.is_enabled("#sample-start")
    assert "forget" in page.get_attribute("#sample-out .tok >> nth=0", "title")
    page.fill("#length", "60")
    page.click("#sample-start")
    page.wait_for_function("() => document.getElementById('sample-status').textContent "
                           "=== '60 tokens'")
    assert page.locator("#sample-out .tok").count() == 60
    assert page.locator("#sample-chart polyline").count() == 4
    page.screenshot(path=str(artifacts / "sample.png"), full_page=True)


def test_units_and_health_views(page, artifacts):
    page.click("button[data-view=units]")
    page.wait_for_function("() => document.querySelectorAll('#units-tokens .tok').length > 50")
    page.click("#rank")
    page.wait_for_selector("#ranked svg polyline")
    assert page.locator("#ranked > div").count() == 8
    page.fill("#threshold", "0")
    spans = page.locator("#units-tokens .tok")
    spans.nth(2).click()  # one token selected by a click-drag over it
    box = spans.nth(2).bounding_box()
    page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
    page.mouse.down()
    end = spans.nth(4).bounding_box()
    page.mouse.move(end["x"] + end["width"] - 1, end["y"] + end["height"] / 2)
    page.mouse.up()
    assert "tokens 2 to 4 selected" in page.inner_text("#selection-status")
    page.click("#match")
    page.wait_for_selector("#matched p")
    assert "unit(s) on over" in page.inner_text("#matched")
    page.screenshot(path=str(artifacts / "units.png"), full_page=True)
    page.click("button[data-view=health]")
    page.wait_for_selector("#health h2")
    page.wait_for_function("() => document.querySelectorAll('#health circle').length > 0")
    assert page.locator("#health polyline").count() >= 3  # train, validation, gradient flow
    assert page.locator("#health svg.histogram").count() == 6  # 3 gates x 2 layers
    page.screenshot(path=str(artifacts / "health.png"), full_page=True)


@pytest.fixture(scope="module")
def supervised_server(explore_supervised_runs):
    from rnnkit.commands.explore import load_runs

    runs = load_runs([explore_supervised_runs["classifier"],
                      explore_supervised_runs["forecaster"]], 300)
    yield from serve(create_app(runs))


def test_classifier_and_forecaster_views(browser, supervised_server, artifacts):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(supervised_server)
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_visible("#view-classify") and not page.is_visible("button[data-view=text]")
    text = "good fine <b>bad</b>"
    page.fill("#classify-input", text)
    page.click("#classify-go")
    page.wait_for_selector("#classify-table")
    assert page.locator("#classify-table tr").count() == 3  # header, neg, pos
    shown = page.locator("#classify-tokens .tok").all_text_contents()  # one per character
    assert len(shown) == len(text) and "".join(shown[:9]) == "good fine" and "<unk>" in shown
    assert page.locator("#classify-tokens b").count() == 0
    page.screenshot(path=str(artifacts / "classify.png"), full_page=True)
    page.select_option("#run-select", "1")
    page.wait_for_selector("#view-forecast:not([hidden])")
    page.click("#forecast-go")
    page.wait_for_selector("#forecast-gates svg polyline")
    assert page.locator("#forecast-chart polyline").count() == 5  # history, actual, 3 bands
    page.screenshot(path=str(artifacts / "forecast.png"), full_page=True)
    page.close()
    assert problems == []
