"""``rnnkit report``: a language-model run (load_run) and a demo folder become one HTML file
with its images embedded; the report opens in headless Chromium and every image loads."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.models.language_model import LanguageModel, ModelConfig
from rnnkit.train.checkpoint import save_checkpoint
from rnnkit.train.config import DataConfig, RunConfig
from rnnkit.train.metrics import MetricsLog
from rnnkit.train.runs import checkpoint_config

CORPUS = ('First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n'
          'Speak, speak. (He speaks.) "Quiet!" said one.\n') * 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_folder(tmp_path) -> Path:
    return make_run(tmp_path, layers=1)


def make_run(tmp_path, layers: int, folder: bool = False) -> Path:
    corpus = tmp_path / "corpus.txt"
    if folder:  # a folder corpus: the passage comes from its last .txt file
        (tmp_path / "corpus").mkdir()
        (tmp_path / "corpus" / "a.txt").write_text("Zzz\n", encoding="utf-8")
        corpus = tmp_path / "corpus" / "b.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    corpus = corpus.parent if folder else corpus
    tokenizer = CharTokenizer.train([CORPUS])
    config = RunConfig(data=DataConfig(path=str(corpus)), model=ModelConfig(
        vocab_size=tokenizer.vocab_size, layers=layers, hidden=16, embedding=8,
        backend="reference"))
    torch.manual_seed(0)
    model = LanguageModel(config.model)
    run = tmp_path / "run"
    save_checkpoint(run, model.state_dict(), checkpoint_config(config, tokenizer), step=20,
                    tags=("last", "best"))
    log = MetricsLog(run, tensorboard=False)
    for step, loss in ((10, 3.2), (20, 2.9)):
        log.write({"kind": "train", "step": step, "loss": loss})
        log.write({"kind": "eval", "step": step, "val_loss": loss + 0.1})
    return run


def embedded_images(page: str) -> list[bytes]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [base64.b64decode(data) for data in found]


def test_language_model_report(run_folder, capsys):
    assert main(["report", str(run_folder), "--cells", "2,5", "--chars", "200"]) == 0
    page = (run_folder / "report.html").read_text(encoding="utf-8")
    assert str(run_folder / "report.html") in capsys.readouterr().out
    images = embedded_images(page)
    assert len(images) >= 6 and all(image.startswith(PNG_SIGNATURE) for image in images)
    for heading in ("Learning curves", "Gradient flow over the passage", "Gates over the text",
                    "Cells that track the text", "Gate saturation", "Samples"):
        assert f"<h2>{heading}" in page
    assert "cell 5" in page and "inside quotes" in page
    spans = re.findall(r'<span style="background:rgb\(\d+,\d+,\d+\)" title="(-?[\d.]+)">', page)
    assert len(spans) >= 200  # a coloured span per character, several times over
    assert "src=\"http" not in page  # self-contained


def test_report_opens_with_a_settings_table_and_names_what_each_plot_shows(tmp_path, capsys,
                                                                            monkeypatch):
    """The config as a short table with the whole config.json folded under it; the learning
    curves' axis says train / validation loss (not "test"); every gate plot names its layer
    (read from the matplotlib figures the page's images are drawn from)."""
    from rnnkit.diagnostics import plots

    run = make_run(tmp_path, layers=2, folder=True)
    drawn = []  # per figure: (title, y label) of each titled axis
    real_png = plots._png

    def recording_png(figure):
        drawn.append([(axis.get_title(), axis.get_ylabel()) for axis in figure.axes
                      if axis.get_title()])
        return real_png(figure)

    monkeypatch.setattr(plots, "_png", recording_png)
    assert main(["report", str(run), "--samples", "0", "--chars", "200"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    run_section = page[page.index("<h2>Run</h2>"):page.index("</section>")]
    assert run_section.index("<table>") < run_section.index("<details>")
    assert "<td class=\"name\">model</td><td>LSTM, 2 layer(s) of 16 units" in run_section
    folded = re.search(r"<details><summary>every setting \(config.json\)</summary><pre>(.*?)"
                       r"</pre></details>", run_section, re.S).group(1)
    saved = json.loads((run / "last" / "config.json").read_text(encoding="utf-8"))["run"]
    assert json.loads(html.unescape(folded)) == saved
    curves = [axes for axes in drawn if any("loss" in title for title, _ in axes)]
    assert [ylabel for _, ylabel in curves[0]] == ["train / validation loss (nats per token)"]
    gate_titles = [title for axes in drawn for title, _ in axes if "gate" in title]
    gates = ("forget", "input", "output")
    assert {title.split(" gate")[0] for title in gate_titles} >= set(gates)
    assert gate_titles and all(", layer 1 (the last of 2)" in title for title in gate_titles), \
        gate_titles
    # and in the page: the heatmaps' alt text and the sections say which layer
    for gate in gates:
        assert f'alt="{gate} gate, layer 1 (the last of 2), over the first' in page
    assert "<h2>Gate saturation: layer 1 (the last of 2)</h2>" in page
    assert "<h2>Gates over the text: layer 1 (the last of 2)</h2>" in page


def test_report_errors(run_folder, tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(run_folder), "--passage", "Speak \u00e9"]) == 2
    assert "vocabulary lacks" in capsys.readouterr().err
    assert main(["report", str(run_folder), "--chars", "1"]) == 2
    assert "--chars must be at least 2" in capsys.readouterr().err
    assert main(["report", str(run_folder), "--cells", "a,b"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_results_folder_report_rebuilds(tmp_path):
    from rnnkit.tasks.training import RunResult

    runs = [RunResult("adding", 10, cell, 0, "MSE", final, final, None, 20, 1.0,
                      curve=[[0, 0.5], [10, 0.2], [20, final]]).to_dict()
            for cell, final in (("rnn", 0.17), ("lstm-chrono", 0.01))]
    (tmp_path / "results.json").write_text(json.dumps({"runs": runs, "settings": {"steps": 20}}))
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "again.html")]) == 0
    page = (tmp_path / "again.html").read_text(encoding="utf-8")
    assert len(embedded_images(page)) == 1 and "lstm-chrono" in page
    assert '<td class="good">0.0100</td>' in page and '<td class="bad">0.1700</td>' in page


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(run_folder, tmp_path):
    assert main(["report", str(run_folder), "--chars", "120", "--samples", "1"]) == 0
    page = (run_folder / "report.html").read_text(encoding="utf-8")
    # after load, write each image's decoded width into the title, which --dump-dom prints
    probe = ("<script>window.addEventListener('load', () => { document.title = 'widths:' + "
             "Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1)"
             ".join(','); });</script>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    completed = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    match = re.search(r"<title>widths:([\d,-]*)</title>", completed.stdout)
    assert match, completed.stdout[:500]
    widths = [int(value) for value in match.group(1).split(",")]
    assert len(widths) == len(embedded_images(page)) >= 6
    assert all(width > 100 for width in widths)  # every image decoded, none broken
