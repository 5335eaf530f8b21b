"""Shared fixtures: the fused kernels required in CI, and proof that fused tests ran C++.

``RNNKIT_REQUIRE_FUSED=1`` (set by ``.ci/run``) makes a session whose kernels do not build or
load stop before any test runs, so a compile error in ``csrc/`` cannot land green as ~1,200
skipped tests. Without it, a machine with no compiler skips the tests marked ``fused``.

Every test marked ``fused`` runs with the operators (``rnnkit.kernels.ops.kernels``, i.e.
``torch.ops.rnnkit``) wrapped in a counter and fails if no C++ operator was called: a fused test
that quietly ran the reference path cannot pass.
"""

from __future__ import annotations

import collections
import os

import pytest
import torch

from rnnkit.kernels import loader

REQUIRE_FUSED = os.environ.get("RNNKIT_REQUIRE_FUSED") == "1"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fused: needs the fused C++ kernels, and must call them (tests/conftest.py)"
    )


def pytest_sessionstart(session):
    if REQUIRE_FUSED and loader.load_functions() is None:
        pytest.exit(f"RNNKIT_REQUIRE_FUSED=1 but the fused kernels did not build or load: "
                    f"{loader.failure()}", returncode=1)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (two cores shared by many: oversubscribed threads crawl);
    a module takes it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class CountingOperators:
    """The operator namespace with every operator call counted by name."""

    def __init__(self, operators, calls: collections.Counter) -> None:
        self._operators = operators
        self._calls = calls

    def __getattr__(self, name: str):
        value = getattr(self._operators, name)
        if not callable(value):
            return value

        def counted(*args, **kwargs):
            self._calls[name] += 1
            return value(*args, **kwargs)

        return counted


@pytest.fixture(autouse=True)
def _fused_kernels_ran(request, monkeypatch):
    """For a test marked ``fused``: skip (or, in CI, fail) without kernels; count their calls."""
    marker = request.node.get_closest_marker("fused")
    if marker is None:
        yield None
        return
    if loader.load_functions() is None:
        message = f"the fused kernels could not be built: {loader.failure()}"
        if REQUIRE_FUSED:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from rnnkit.kernels import ops

    calls: collections.Counter = collections.Counter()
    monkeypatch.setattr(ops, "kernels", CountingOperators(ops.kernels, calls))
    yield calls
    if marker.kwargs.get("calls", True):  # fused(calls=False): needs the build, runs no kernel
        assert sum(calls.values()) > 0, "a test marked fused never called a fused C++ operator"


EXPLORE_CORPUS = ('First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n'
                  'Speak, speak. (He speaks.) "Quiet!" said one; <b>bold</b> = x/y \'so\'.\n')


@pytest.fixture(scope="session")
def explore_run(tmp_path_factory):
    """A tiny character-level LSTM run (2 layers), trained for 20 steps by ``rnnkit train``,
    for the ``rnnkit explore`` tests: its folder, with metrics.jsonl and a best checkpoint."""
    from rnnkit.cli import main

    root = tmp_path_factory.mktemp("explore")
    corpus = root / "corpus.txt"
    corpus.write_text(EXPLORE_CORPUS * 30, encoding="utf-8")
    threads = torch.get_num_threads()
    status = main(["train", str(corpus), "--out", str(root / "run"), "--layers", "2",
                   "--hidden", "16", "--embedding", "8", "--batch-size", "4", "--seq-len", "16",
                   "--eval-every", "10", "--max-steps", "20", "--no-progress", "--threads", "1"])
    torch.set_num_threads(threads)
    assert status == 0
    return root / "run"


@pytest.fixture(scope="session")
def explore_supervised_runs(tmp_path_factory):
    """A 2-step classifier run and a 2-step forecaster run (with quantiles), trained by the
    CLI on the small files of tests/test_cli_errors.py: ``{"classifier": path, ...}``."""
    from rnnkit.cli import main
    from tests.test_cli_errors import monthly, reviews

    root = tmp_path_factory.mktemp("explore-supervised")
    (root / "m.csv").write_text(monthly(), encoding="utf-8")
    (root / "r.tsv").write_text(reviews(), encoding="utf-8")
    tiny = ["--max-steps", "2", "--no-progress", "--threads", "1", "--hidden", "8"]
    threads = torch.get_num_threads()
    assert main(["forecast", "train", str(root / "m.csv"), "--target", "value", "--horizon", "3",
                 "--lookback", "6", "--val-size", "12", "--test-size", "12", "--quantiles",
                 "0.1,0.5,0.9", "--out", str(root / "forecaster"), *tiny]) == 0
    assert main(["classify", "train", str(root / "r.tsv"), "--embedding", "4", "--out",
                 str(root / "classifier"), *tiny]) == 0
    torch.set_num_threads(threads)
    return {"classifier": root / "classifier", "forecaster": root / "forecaster"}
