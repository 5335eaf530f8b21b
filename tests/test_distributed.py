"""Training on two processes (``--nproc 2``: torchrun's elastic launcher, gloo on 127.0.0.1).

The oracle is one process with the same global batch: with dropout 0 two ranks must follow
its loss curve (within float32 summation error), write the same run folder (rank 0 alone
writes), and continue each other's checkpoints. Faults are real: a rank killed with SIGKILL,
a rank stopped with SIGSTOP, SIGTERM to the launcher.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_classify_cli import write_reviews
from tests.test_lm_helpers import VERSE

ROOT = Path(__file__).resolve().parents[1]
LM = ["--hidden", "24", "--embedding", "16", "--layers", "1", "--batch-size", "8",
      "--seq-len", "12", "--eval-every", "20", "--log-every", "5", "--threads", "1",
      "--no-progress",
      # the plain settings (not the defaults): the oracle's curve holds without dropout, a
      # resume extends the budget a cosine would decay over, and with layer norm at AdamW 5e-3
      # the ranks' float32 summation differences grow past 2e-5 within 60 steps
      "--dropout", "0", "--schedule", "constant", "--lr", "2e-3", "--weight-decay", "0",
      "--warmup", "0", "--no-layer-norm"]
STEPS = 60  # the corpus gives 36 batches a pass: the run crosses an epoch (states restart)


def rnnkit(*args, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnkit", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=timeout, check=False)


STARTED: list[subprocess.Popen] = []


def start(*args, cwd: Path) -> subprocess.Popen:
    """The command in a process group of its own (a terminal's job: Ctrl-C reaches it all)."""
    process = subprocess.Popen([sys.executable, "-m", "rnnkit", *map(str, args)], cwd=cwd,
                               env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    STARTED.append(process)
    return process


@pytest.fixture(autouse=True)
def _no_run_left_behind():
    """A test that fails half-way leaves no launcher or rank running (and no stopped rank)."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            ranks = workers(process)  # torch starts each rank in a session of its own
            os.killpg(process.pid, signal.SIGKILL)
            for pid in ranks.values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.communicate()


def records(run: Path, kind: str) -> list[tuple[int, float]]:
    key = "loss" if kind == "train" else "val_loss"
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [(r["step"], r[key]) for r in map(json.loads, lines) if r["kind"] == kind]


def assert_same_curve(actual: Path, expected: Path, exact: bool = False) -> None:
    for kind in ("train", "eval"):
        got, want = records(actual, kind), records(expected, kind)
        assert [step for step, _ in got] == [step for step, _ in want], kind
        if exact:
            assert got == want, kind
        else:
            assert [loss for _, loss in got] == pytest.approx([loss for _, loss in want],
                                                              rel=2e-5, abs=2e-6), kind


def files(run: Path) -> list[str]:
    return sorted(str(path.relative_to(run)) for path in run.rglob("*"))


def workers(launcher: subprocess.Popen) -> dict[int, int]:
    """{rank: pid} of the worker processes the launcher started."""
    found = {}
    for task in Path(f"/proc/{launcher.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            values = dict(item.split(b"=", 1) for item in environ if b"=" in item)
            if b"RANK" in values:
                found[int(values[b"RANK"])] = int(pid)
    return found


def wait_for(condition, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lm")
    (folder / "corpus.txt").write_text(VERSE * 5, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def one_process(corpus) -> Path:
    """The oracle: one process, global batch 8, STEPS steps."""
    result = rnnkit("train", "corpus.txt", "--out", "one", "--max-steps", STEPS, *LM,
                    "--cache-dir", "cache", cwd=corpus)
    assert result.returncode == 0, result.stderr
    return corpus / "one"


@pytest.fixture(scope="module")
def two_ranks(corpus) -> Path:
    result = rnnkit("train", "corpus.txt", "--out", "two", "--max-steps", STEPS, *LM,
                    "--cache-dir", "cache", "--nproc", 2, cwd=corpus)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Stopped at step") == 1  # rank 0 alone prints
    return corpus / "two"


def test_two_ranks_follow_the_loss_curve_of_one_process(one_process, two_ranks):
    assert_same_curve(two_ranks, one_process)
    assert len(records(two_ranks, "eval")) == STEPS // 20  # each record once: rank 0 wrote


def test_only_rank_zero_writes_the_run_folder(one_process, two_ranks):
    assert files(two_ranks) == files(one_process)
    config = json.loads((two_ranks / "config.json").read_text(encoding="utf-8"))
    assert config["train"]["batch_size"] == 8  # the global batch


def test_torchrun_dash_m_rnnkit_trains_the_same_run(corpus, one_process):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "rnnkit", "train", "corpus.txt", "--out", "torchrun", "--max-steps", str(STEPS),
         *LM, "--cache-dir", "cache"], cwd=corpus, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr
    assert_same_curve(corpus / "torchrun", one_process)


@pytest.mark.parametrize("first, second", [
    pytest.param(2, 2, marks=pytest.mark.slow),  # (the killed-rank test resumes 2 on 2 too)
    (2, 1), (1, 2)])
def test_resume_continues_on_any_world_size(corpus, one_process, two_ranks, first, second):
    run = f"resume-{first}-{second}"
    nproc = lambda n: ["--nproc", n] if n > 1 else []  # noqa: E731
    begun = rnnkit("train", "corpus.txt", "--out", run, "--max-steps", 40, *LM,
                   "--cache-dir", "cache", *nproc(first), cwd=corpus)
    assert begun.returncode == 0, begun.stderr
    resumed = rnnkit("train", "--resume", run, "--max-steps", STEPS, *nproc(second),
                     cwd=corpus)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stdout
    expected = two_ranks if second == 2 else one_process
    # the same world size resumes exactly; another one within float32 summation error
    assert_same_curve(corpus / run, expected, exact=first == second)


@pytest.mark.parametrize("batch, message", [
    (7, r"--batch-size 7 is the global batch and must divide evenly among the 2 processes"),
    pytest.param(1, r"--batch-size 1 \(the global batch\) has fewer streams than the 2 "
                 r"processes", marks=pytest.mark.slow),
])
def test_a_batch_the_ranks_cannot_share_is_one_line_and_exit_2_on_every_rank(
        corpus, batch, message):
    result = rnnkit("train", "corpus.txt", "--out", f"bad-{batch}", "--max-steps", 5,
                    *LM, "--batch-size", batch, "--cache-dir", "cache", "--nproc", 2,
                    cwd=corpus)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in result.stderr, result.stderr  # one per rank
    assert all(line.startswith("rnnkit: error: ") and re.search(message, line)
               for line in lines), lines
    assert not (corpus / f"bad-{batch}").exists()


def test_every_variant_trains_under_ddp_without_find_unused_parameters(corpus):
    """Weight drop (DropConnect on W_hh, rebuilt inside forward from the one leaf parameter)
    with the other variants of the layer, on the fused C++ kernels."""
    result = rnnkit("train", "corpus.txt", "--out", "variants", "--max-steps", 20, *LM,
                    "--backend", "fused", "--weight-drop", "0.5", "--zoneout", "0.1",
                    "--recurrent-dropout", "0.1", "--layer-norm", "--dropout", "0.1",
                    "--cache-dir", "cache", "--nproc", 2,
                    cwd=corpus)
    assert result.returncode == 0, result.stderr
    losses = [loss for _, loss in records(corpus / "variants", "train")]
    assert len(losses) == 4 and losses[-1] < losses[0]


@pytest.mark.parametrize("how", [
    "sigterm",  # to the launcher, which passes it on to the ranks
    # a terminal's Ctrl-C: SIGINT to the launcher's process group (torch starts each rank
    # in a session of its own, and the launcher passes the signal on)
    pytest.param("ctrl-c", marks=pytest.mark.slow),
])
def test_sigterm_or_ctrl_c_saves_one_checkpoint_and_exits(corpus, how):
    launcher = start("train", "corpus.txt", "--out", how, "--max-steps", 100000, *LM,
                     "--cache-dir", "cache", "--nproc", 2, cwd=corpus)
    metrics = corpus / how / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, "training to start")
    if how == "sigterm":
        launcher.send_signal(signal.SIGTERM)
    else:
        os.killpg(launcher.pid, signal.SIGINT)
    out, err = launcher.communicate(timeout=120)
    expected = signal.SIGTERM if how == "sigterm" else signal.SIGINT
    assert launcher.returncode == 128 + expected, err
    assert out.count("Interrupted at step") == 1, out
    step = int(out.split("Interrupted at step ")[1].split(";")[0])
    last = (corpus / how / "last").resolve()
    assert last.name == f"step-{step:08d}" and (last / "trainer_state.pt").exists()
    assert len(list((corpus / how / "checkpoints").iterdir())) == 1


def test_a_killed_rank_restarts_the_group_which_resumes_and_finishes(corpus, two_ranks):
    launcher = start("train", "corpus.txt", "--out", "killed", "--max-steps", STEPS, *LM,
                     "--cache-dir", "cache", "--nproc", 2, "--max-restarts", 1, cwd=corpus)
    wait_for(lambda: (corpus / "killed" / "last").exists(), "the first checkpoint")
    os.kill(workers(launcher)[1], signal.SIGKILL)
    out, err = launcher.communicate(timeout=240)
    assert launcher.returncode == 0, err
    assert "Restart 1: resuming" in err, err  # the kill came before the end of the run
    assert_same_curve(corpus / "killed", two_ranks, exact=True)


def test_a_hung_rank_ends_the_run_with_a_message_naming_the_waiting_rank(corpus):
    launcher = start("train", "corpus.txt", "--out", "hung", "--max-steps", 100000, *LM,
                     "--cache-dir", "cache", "--nproc", 2, "--dist-timeout", 3, cwd=corpus)
    wait_for(lambda: (corpus / "hung" / "last").exists(), "the first checkpoint")
    ranks = workers(launcher)
    os.kill(ranks[1], signal.SIGSTOP)  # a hang: alive, holding its sockets, doing nothing
    try:
        wait_for(lambda: 0 not in workers(launcher), "rank 0 to give up", limit=60)
    finally:
        os.kill(ranks[1], signal.SIGKILL)
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    assert "rnnkit: error: rank 0 of 2 at step" in err, err
    assert "waited longer than the collective timeout (3 s, --dist-timeout)" in err, err


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("classify")
    write_reviews(folder / "reviews.tsv", 120, seed=3)
    return folder


CLASSIFY = ["--hidden", "12", "--embedding", "8", "--batch-size", "16", "--threads", "1",
            "--max-steps", "14", "--eval-every", "7", "--log-every", "1", "--no-progress"]


def test_classifier_on_two_ranks_follows_one_process(reviews):
    one = rnnkit("classify", "train", "reviews.tsv", "--out", "one", *CLASSIFY, cwd=reviews)
    assert one.returncode == 0, one.stderr
    two = rnnkit("classify", "train", "reviews.tsv", "--out", "two", *CLASSIFY, "--nproc", 2,
                 cwd=reviews)
    assert two.returncode == 0, two.stderr
    assert_same_curve(reviews / "two", reviews / "one")
    assert files(reviews / "two") == files(reviews / "one")
    last = [json.loads(line) for line in (reviews / "two" / "metrics.jsonl").read_text(
        encoding="utf-8").splitlines()][-1]
    expected = [json.loads(line) for line in (reviews / "one" / "metrics.jsonl").read_text(
        encoding="utf-8").splitlines()][-1]
    assert last["val_confusion"] == expected["val_confusion"]  # summed over the ranks


@pytest.mark.slow
def test_forecaster_on_two_ranks_follows_one_process(tmp_path):
    import math

    lines = ["t,y"] + [f"{i},{10 + 5 * math.sin(i / 3) + (i % 7) / 7:.4f}" for i in range(160)]
    (tmp_path / "series.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = ["forecast", "train", "series.csv", "--target", "y", "--horizon", "4",
              "--lookback", "12", "--hidden", "8", "--batch-size", "8", "--max-steps", "12",
              "--eval-every", "6", "--log-every", "1", "--threads", "1", "--no-progress"]
    one = rnnkit(*common, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = rnnkit(*common, "--out", "two", "--nproc", 2, cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert_same_curve(tmp_path / "two", tmp_path / "one")


def test_the_launcher_passes_the_command_on_without_its_own_flags():
    from rnnkit.train.distributed import worker_argv

    argv = ["-q", "train", "c.txt", "--nproc", "2", "--max-restarts=1", "--lr", "1e-3"]
    assert worker_argv(argv) == ["-q", "train", "c.txt", "--lr", "1e-3"]


def test_nproc_under_torchrun_is_refused(monkeypatch, capsys):
    from tests.helpers import run_cli

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "outer")  # what torchrun gives its workers
    status, _, err = run_cli(["train", "c.txt", "--nproc", "2"], capsys)
    assert status == 2 and err.startswith("rnnkit: error: --nproc starts its own launcher")


@pytest.mark.parametrize("joined", [True, False])
def test_a_rank_ends_without_the_interpreter_teardown(monkeypatch, capsys, joined):
    """A process that joined a group exits through os._exit with main's status after its
    output is flushed (gloo's teardown at interpreter exit aborted about one finished rank
    in thirty); a single process exits as any program does."""
    import rnnkit.cli as cli
    import rnnkit.train.distributed as distributed

    class Exited(Exception):
        pass

    def fake_exit(status):
        raise Exited(status)

    monkeypatch.setattr(distributed, "_joined", joined)
    monkeypatch.setattr(cli, "main", lambda: print("Stopped at step 40") or 3)
    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    expected = Exited if joined else SystemExit
    with pytest.raises(expected) as ended:
        cli.run()
    assert ended.value.args[0] == 3
    assert capsys.readouterr().out == "Stopped at step 40\n"
