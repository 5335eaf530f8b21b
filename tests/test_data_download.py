"""``rnnkit data``: downloads into the cache checked by SHA-256, against a local HTTP server.

The server (http.server in a thread) stands in for the upstream through
``$RNNKIT_DATA_MIRROR``; where ``../shared/data`` holds the real files it serves them, so the
digests rnnkit carries are checked against the real bytes. The expected error lines are
built from ``hashlib`` digests of what was served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rnnkit.data import download
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
AIR = download.DATASETS["airpassengers"].files[0]
SUNSPOTS = download.DATASETS["sunspots"].files[0]
needs_shared = pytest.mark.skipif(not (SHARED / "AirPassengers.csv").exists(),
                                  reason="no ../shared/data")


class Mirror(http.server.ThreadingHTTPServer):
    """Serves ``files`` (name -> bytes) flat; ``short`` names get a Content-Length larger
    than what is sent before the connection closes; every request path is recorded."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.short: set[str] = set()
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server: Mirror = self.server
        server.requests.append(self.path)
        body = server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404, "File not found")
            return
        self.send_response(200)
        claimed = len(body) * 4 if self.path.lstrip("/") in server.short else len(body)
        self.send_header("Content-Length", str(claimed))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    server = Mirror()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(download.MIRROR_VARIABLE, server.url)
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def every_file(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("rnnkit: error:")]


@needs_shared
@pytest.mark.parametrize("name", ["tinyshakespeare", "airpassengers", "sunspots", "etth1"])
def test_the_digests_are_those_of_the_real_files(name):
    """../shared/data holds byte-identical copies of these upstream files."""
    (file,) = download.DATASETS[name].files
    assert download.sha256_of(SHARED / file.name) == file.sha256
    assert (SHARED / file.name).stat().st_size == file.size


def test_every_upstream_is_pinned_to_a_commit():
    for dataset in download.DATASETS.values():
        for file in dataset.files:
            assert re.fullmatch(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/"
                                r"[0-9a-f]{40}/\S+", file.url), file.url
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256), file.sha256


@needs_shared
def test_get_downloads_verifies_copies_then_uses_the_cache(mirror, tmp_path, capsys):
    mirror.files["AirPassengers.csv"] = (SHARED / "AirPassengers.csv").read_bytes()
    out = tmp_path / "out"
    status, stdout, err = run_cli(["data", "get", "airpassengers", "--out", out], capsys)
    assert status == 0, err
    assert stdout == f"{out / 'AirPassengers.csv'}\n"
    assert (out / "AirPassengers.csv").read_bytes() == mirror.files["AirPassengers.csv"]
    assert mirror.requests == ["/AirPassengers.csv"]
    cache = tmp_path / "cache" / "data"
    assert every_file(cache) == ["AirPassengers.csv"]  # no temporary file left behind
    assert every_file(out) == ["AirPassengers.csv", "airpassengers.LICENSE.txt"]
    note = (out / "airpassengers.LICENSE.txt").read_text(encoding="utf-8")
    assert "Box & Jenkins" in note and AIR.sha256 in note and AIR.url in note
    assert (out / "AirPassengers.csv").stat().st_mode & 0o044  # readable, not 0600

    again = tmp_path / "again"
    status, stdout, err = run_cli(["data", "get", "AirPassengers", "--out", again], capsys)
    assert status == 0, err
    assert mirror.requests == ["/AirPassengers.csv"]  # the server saw no second request
    assert "in the cache, sha256 verified" in err
    assert (again / "AirPassengers.csv").read_bytes() == mirror.files["AirPassengers.csv"]

    (cache / "AirPassengers.csv").write_bytes(b"Month,#Passengers\n1949-01,1\n")  # gone bad
    status, stdout, err = run_cli(["data", "get", "airpassengers", "--out", again], capsys)
    assert status == 0, err
    assert mirror.requests == ["/AirPassengers.csv"] * 2  # fetched again
    assert "fetching it again" in err
    assert download.sha256_of(cache / "AirPassengers.csv") == AIR.sha256


def test_a_corrupted_download_is_refused_and_deleted(mirror, tmp_path, capsys):
    body = b"Month,#Passengers\n1949-01,112\n1949-02,118\n"
    mirror.files["AirPassengers.csv"] = body
    out = tmp_path / "out"
    status, stdout, err = run_cli(["data", "get", "airpassengers", "--out", out], capsys)
    assert status == 2 and stdout == ""
    assert error_lines(err) == [
        f"rnnkit: error: {mirror.url}AirPassengers.csv: sha256 {sha256(body)} is not the "
        f"expected {AIR.sha256}; the download was deleted"]
    assert every_file(tmp_path / "cache" / "data") == []  # neither the final name nor a part
    assert not out.exists()


def test_a_connection_closed_early_leaves_nothing_under_the_final_name(mirror, tmp_path,
                                                                      capsys):
    mirror.files["AirPassengers.csv"] = b"Month,#Passengers\n1949-01,112\n"
    mirror.short.add("AirPassengers.csv")
    status, _, err = run_cli(["data", "get", "airpassengers", "--out", tmp_path / "out"],
                             capsys)
    assert status == 2
    (line,) = error_lines(err)
    assert line.startswith(f"rnnkit: error: could not download {mirror.url}AirPassengers.csv "
                           f"(the connection closed 90 bytes before the end)"), line
    assert every_file(tmp_path / "cache" / "data") == []


def test_a_dead_server_says_where_to_place_the_file_by_hand(mirror, tmp_path, monkeypatch,
                                                            capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    monkeypatch.setenv(download.MIRROR_VARIABLE, dead)
    out = tmp_path / "out"
    status, stdout, err = run_cli(["data", "get", "sunspots", "--out", out], capsys)
    assert status == 2 and stdout == ""
    by_hand = tmp_path / "cache" / "data" / "monthly-sunspots.csv"
    (line,) = error_lines(err)
    assert re.fullmatch(
        re.escape(f"rnnkit: error: could not download {dead}monthly-sunspots.csv (") + r".+"
        + re.escape(f"); to place the file by hand, save {SUNSPOTS.url} as {by_hand} "
                    f"(sha256 {SUNSPOTS.sha256}), or point $RNNKIT_DATA_MIRROR at a server "
                    f"that has it"), line), line
    assert "refused" in line.lower()
    if (SHARED / "monthly-sunspots.csv").exists():  # the instructions work as written
        by_hand.write_bytes((SHARED / "monthly-sunspots.csv").read_bytes())
        status, stdout, err = run_cli(["data", "get", "sunspots", "--out", out], capsys)
        assert status == 0, err
        assert stdout == f"{out / 'monthly-sunspots.csv'}\n"


def test_a_missing_file_on_the_server_names_the_http_status(mirror, tmp_path, capsys):
    status, _, err = run_cli(["data", "get", "sunspots", "--out", tmp_path], capsys)
    assert status == 2
    (line,) = error_lines(err)
    assert f"could not download {mirror.url}monthly-sunspots.csv (HTTP 404 " in line


def test_an_unknown_name_lists_the_known_ones_and_fetches_nothing(mirror, tmp_path, capsys):
    status, stdout, err = run_cli(["data", "get", "airpassengers", "shakespeare",
                                   "--out", tmp_path / "out"], capsys)
    assert status == 2 and stdout == ""
    assert error_lines(err) == [
        "rnnkit: error: unknown dataset 'shakespeare'; known: tinyshakespeare, airpassengers, "
        "sunspots, etth1, nsmc (rnnkit data list describes them)"]
    assert mirror.requests == []
    assert not (tmp_path / "out").exists()


def test_list_names_every_file_its_size_source_and_licence(mirror, tmp_path, capsys):
    status, stdout, _ = run_cli(["data", "list"], capsys)
    assert status == 0
    for dataset in download.DATASETS.values():
        assert f"{dataset.name}: {dataset.what}\n  licence: {dataset.licence}" in stdout
        for file in dataset.files:
            assert f"{file.name}: {file.size:,} bytes from {file.url}\n" in stdout
    for licence in ("public domain text", "Box & Jenkins", "SILSO, CC BY-NC 4.0", "CC BY-ND 4.0",
                    "CC0 1.0"):
        assert licence in stdout
    assert f"cache: {tmp_path / 'cache' / 'data'}\n" in stdout

    cache = tmp_path / "cache" / "data"
    cache.mkdir(parents=True)
    if (SHARED / "AirPassengers.csv").exists():
        (cache / "AirPassengers.csv").write_bytes((SHARED / "AirPassengers.csv").read_bytes())
    status, stdout, _ = run_cli(["data", "list", "--json"], capsys)
    listed = {f["name"]: f for d in json.loads(stdout)["datasets"] for f in d["files"]}
    assert listed["nsmc-ratings-train.txt"]["bytes"] == 14_628_807
    assert listed["AirPassengers.csv"]["cached"] == (SHARED / "AirPassengers.csv").exists()
    assert listed["tinyshakespeare.txt"]["cached"] is False


def test_a_progress_bar_on_a_terminal_only(mirror, tmp_path, capsys):
    body = b"x" * 5000
    mirror.files["AirPassengers.csv"] = body
    with pytest.raises(download.DownloadError):
        download.fetch(AIR, progress=True)
    bar = capsys.readouterr().err
    assert "AirPassengers.csv" in bar and "4.88k" in bar  # tqdm's bar, in KiB (5000 / 1024)
    with pytest.raises(download.DownloadError):
        download.fetch(AIR, progress=False)
    assert capsys.readouterr().err == ""


@needs_shared
def test_the_command_in_a_child_process(mirror, tmp_path):
    mirror.files["monthly-sunspots.csv"] = (SHARED / "monthly-sunspots.csv").read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "data", "get", "sunspots"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{Path('data') / 'monthly-sunspots.csv'}\n"  # the default --out
    assert download.sha256_of(tmp_path / "data" / "monthly-sunspots.csv") == SUNSPOTS.sha256
    assert "\r" not in done.stderr  # no progress bar when stderr is not a terminal
    assert mirror.requests == ["/monthly-sunspots.csv"]


def test_without_a_mirror_the_upstream_is_asked(tmp_path, monkeypatch, capsys):
    """No $RNNKIT_DATA_MIRROR: the file's own address is fetched, and the error says to save
    "it" where the cache looks; a file saved there by hand is then used, no network needed."""
    monkeypatch.delenv(download.MIRROR_VARIABLE, raising=False)
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/AirPassengers.csv"
    unreachable = dataclasses.replace(AIR, url=dead)
    with pytest.raises(download.DownloadError) as raised:
        download.fetch(unreachable)
    cache = tmp_path / "cache" / "data"
    assert str(raised.value).startswith(f"could not download {dead} (")
    assert (f"; to place the file by hand, save it as {cache / 'AirPassengers.csv'} "
            f"(sha256 {AIR.sha256})") in str(raised.value)
    if (SHARED / "AirPassengers.csv").exists():
        (cache / "AirPassengers.csv").write_bytes((SHARED / "AirPassengers.csv").read_bytes())
        assert download.fetch(unreachable) == cache / "AirPassengers.csv"


def readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def test_the_readme_commands_read_only_what_rnnkit_data_get_provides():
    """A fresh clone has no ../shared/data: the README's command blocks read data/ files that
    `rnnkit data get` writes, and the README's table gives each file's name and size."""
    commands = "\n".join(readme_blocks("bash"))
    assert commands and "shared/data" not in commands
    provided = {file.name for d in download.DATASETS.values() for file in d.files}
    read = set(re.findall(r"(?<![\w/.])data/([\w.-]+\.(?:txt|csv|tsv))", commands))
    assert read and read <= provided, read - provided
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for dataset in download.DATASETS.values():
        assert f"| `{dataset.name}` |" in readme, dataset.name
        for file in dataset.files:
            assert f"`{file.name}`" in readme and f"{file.size:,}" in readme, file.name


def test_a_cache_that_cannot_be_created_says_so(mirror, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("RNNKIT_CACHE", str(blocker))
    status, _, err = run_cli(["data", "get", "sunspots", "--out", tmp_path / "out"], capsys)
    assert status == 2
    assert error_lines(err) == [f"rnnkit: error: cannot create the data cache {blocker / 'data'} "
                                f"(Not a directory); set $RNNKIT_CACHE to a folder you can write"]
    assert mirror.requests == []


def test_a_full_disk_is_reported_as_such_and_leaves_nothing(mirror, tmp_path):
    """The child may write files of 4 KiB at most (RLIMIT_FSIZE, as on a full disk: EFBIG)."""
    mirror.files["monthly-sunspots.csv"] = b"1749-01,58.0\n" * 3000  # 39,000 bytes
    limited = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
               "from rnnkit.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run(
        [sys.executable, "-c", limited, "data", "get", "sunspots"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    cache = tmp_path / "cache" / "data"
    assert re.fullmatch(re.escape(f"rnnkit: error: cannot write {cache}/.monthly-sunspots.csv.")
                        + r"\w+\.part" + re.escape(" (File too large); free some room or set "
                                                   "$RNNKIT_CACHE to another folder"), line), line
    assert every_file(cache) == []
    assert "Traceback" not in done.stderr


@needs_shared
def test_an_out_folder_that_cannot_be_made_is_one_line(mirror, tmp_path, capsys):
    mirror.files["AirPassengers.csv"] = (SHARED / "AirPassengers.csv").read_bytes()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    status, _, err = run_cli(["data", "get", "airpassengers", "--out", blocker], capsys)
    assert status == 2
    assert error_lines(err) == [f"rnnkit: error: --out {blocker}: is a file; expected a folder "
                                f"to put the data in"]
    status, _, err = run_cli(["data", "get", "airpassengers", "--out", blocker / "sub"], capsys)
    assert status == 2
    assert error_lines(err) == [f"rnnkit: error: --out {blocker / 'sub'}: cannot write there "
                                f"(Not a directory); expected a folder you can write"]
    assert every_file(tmp_path / "cache" / "data") == ["AirPassengers.csv"]  # still cached
