"""Every results file the README cites exists, is valid JSON and says where it was measured."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CITED = re.compile(r"benchmarks/results/[\w.-]+\.json")
sys.path.insert(0, str(REPO / "benchmarks"))
from results import REQUIRED_KEYS, write_results  # noqa: E402


def cited_files() -> list[str]:
    return sorted(set(CITED.findall((REPO / "README.md").read_text(encoding="utf-8"))))


def test_the_readme_cites_results_files():
    assert len(cited_files()) >= 5, "the README's figures must name the files behind them"


@pytest.mark.parametrize("name", cited_files())
def test_each_cited_results_file_is_valid(name):
    path = REPO / name
    assert path.is_file(), f"README cites {name}, which does not exist"
    record = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in REQUIRED_KEYS if key not in record]
    assert not missing, f"{name} lacks {missing}"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", record["commit"]), record["commit"]
    assert {"cpu", "cores", "torch"} <= record["machine"].keys()
    assert record["command"] and record["results"]


def test_every_results_file_is_cited():
    """No orphan: a file in benchmarks/results/ that the README does not cite is stale."""
    cited = set(cited_files())
    present = {f"benchmarks/results/{p.name}" for p in (REPO / "benchmarks/results").glob("*.json")}
    assert present <= cited, f"not cited in the README: {sorted(present - cited)}"


def test_write_results_records_the_context(tmp_path):
    path = write_results("example", {"ratio": 1.5}, command=["rnnkit", "bench"], folder=tmp_path)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["results"] == {"ratio": 1.5}
    assert record["command"] == "rnnkit bench"
    assert record["machine"]["torch"] and record["machine"]["cores"] >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["date"])
