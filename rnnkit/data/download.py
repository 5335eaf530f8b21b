"""Public datasets the README uses, downloaded once into the cache and checked by SHA-256.

Each file comes from its public upstream (a ``raw.githubusercontent.com`` address pinned to a
commit, so the digest below stays the file's) into ``<cache>/data/`` (the cache is
``$RNNKIT_CACHE``, else ``$XDG_CACHE_HOME/rnnkit``, else ``~/.cache/rnnkit``, as for the
kernels). A download is written to a temporary file beside its final name, hashed while it
streams, and renamed into place only when its SHA-256 is the expected one: a wrong or broken
download is deleted and nothing half-written ever carries the final name. A cached file is
hashed again before it is used, so a file that went bad in the cache is fetched again.

``$RNNKIT_DATA_MIRROR`` (a URL ending in ``/``) replaces every upstream with a mirror that
serves the files flat under their rnnkit names (``<mirror>tinyshakespeare.txt``): an offline
machine serves a folder of them with ``python -m http.server``. The digests are checked the
same way whichever server answered.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from rnnkit import __version__
from rnnkit.errors import UserError

logger = logging.getLogger(__name__)

MIRROR_VARIABLE = "RNNKIT_DATA_MIRROR"
TIMEOUT_S = 60.0
CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name here, its upstream address, size and SHA-256."""

    name: str
    url: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    what: str
    source: str  # the upstream repository and path, in words
    licence: str
    licence_url: str  # the licence's text, where it has one
    credit: str  # what to cite or credit when using it
    files: tuple[RemoteFile, ...]

    @property
    def licence_text(self) -> str:
        return f"{self.licence} ({self.licence_url})" if self.licence_url else self.licence

    @property
    def size(self) -> int:
        return sum(file.size for file in self.files)


def _readable(path: Path) -> None:
    """The mode a plain ``open`` would give (a temporary file starts private, 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _github(repository: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repository}/{commit}/{path}"


CHAR_RNN = ("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e")
DARTS = ("unit8co/darts", "2be8e43fbdc1265209f33bbe8bae81f3e4d9146f")
NSMC = ("e9t/nsmc", "cc0670e872d4ac27bfe36c87456783004b39ef6c")

# Digests: the first four are the sha256 of the blobs at the pinned commits (identical to
# ../shared/data's copies); NSMC's are the sha256 Hugging Face datasets recorded for the same
# two upstream files (datasets/nsmc/dataset_infos.json, with the same byte counts).
DATASETS: dict[str, Dataset] = {dataset.name: dataset for dataset in (
    Dataset(
        name="tinyshakespeare",
        what="40,000 lines of Shakespeare plays, 65 distinct characters (the char-RNN corpus)",
        source="karpathy/char-rnn data/tinyshakespeare/input.txt",
        licence="public domain text",
        licence_url="",
        credit="the works of William Shakespeare, as collected by Andrej Karpathy for char-rnn",
        files=(RemoteFile("tinyshakespeare.txt",
                          _github(*CHAR_RNN, "data/tinyshakespeare/input.txt"), 1_115_394,
                          "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),),
    ),
    Dataset(
        name="airpassengers",
        what="monthly airline passengers 1949-1960, 144 points (columns Month,#Passengers)",
        source="unit8co/darts datasets/AirPassengers.csv",
        licence="Box & Jenkins classic series",
        licence_url="",
        credit="Box, G. E. P., Jenkins, G. M. and Reinsel, G. C., Time Series Analysis, "
               "Forecasting and Control (Series G)",
        files=(RemoteFile("AirPassengers.csv", _github(*DARTS, "datasets/AirPassengers.csv"),
                          1_746,
                          "5f8b316b84545d9cfb05612298df8415ce4c44421c7012d109465564b07ebc06"),),
    ),
    Dataset(
        name="sunspots",
        what="monthly mean sunspot number since 1749, 2,820 points (columns Month,Sunspots)",
        source="unit8co/darts datasets/monthly-sunspots.csv",
        licence="SILSO, CC BY-NC 4.0",
        licence_url="https://creativecommons.org/licenses/by-nc/4.0/",
        credit="Source: WDC-SILSO, Royal Observatory of Belgium, Brussels",
        files=(RemoteFile("monthly-sunspots.csv",
                          _github(*DARTS, "datasets/monthly-sunspots.csv"), 42_219,
                          "4b91dd8e13bdf6a95c3034c71ceca0152269986c6a91706c6eaf50c1d50081c8"),),
    ),
    Dataset(
        name="etth1",
        what="electricity transformer temperature, hourly, 17,420 rows, 7 columns (OT is the "
             "usual target): the long-horizon forecasting benchmark",
        source="unit8co/darts datasets/ETTh1.csv (from the ETDataset)",
        licence="CC BY-ND 4.0",
        licence_url="https://creativecommons.org/licenses/by-nd/4.0/",
        credit="Zhou et al., Informer (AAAI 2021), ETDataset "
               "https://github.com/zhouhaoyi/ETDataset",
        files=(RemoteFile("ETTh1.csv", _github(*DARTS, "datasets/ETTh1.csv"), 2_589_657,
                          "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),),
    ),
    Dataset(
        name="nsmc",
        what="Naver sentiment movie corpus, official split: 150,000 train / 50,000 test Korean "
             "reviews, TSV id,document,label (0 negative, 1 positive)",
        source="e9t/nsmc ratings_train.txt, ratings_test.txt",
        licence="CC0 1.0",
        licence_url="https://creativecommons.org/publicdomain/zero/1.0/",
        credit="Lucy Park, Naver Sentiment Movie Corpus v1.0, https://github.com/e9t/nsmc",
        files=(RemoteFile("nsmc-ratings-train.txt", _github(*NSMC, "ratings_train.txt"),
                          14_628_807,
                          "e03b7d14e9e41be8d464a28057cd25d7396c53e67aa7fd5f7e552c59b0ee2940"),
               RemoteFile("nsmc-ratings-test.txt", _github(*NSMC, "ratings_test.txt"),
                          4_893_335,
                          "8ac9f64052f11dbf6ae0acb5e038f03d90a76f0eda7820cfb3a92d02edfcebda")),
    ),
)}


class DownloadError(UserError):
    """A file could not be fetched, or what came was not the expected file."""


def data_cache() -> Path:
    """``<cache>/data``: the cache the kernels use (``rnnkit.kernels.loader``)."""
    from rnnkit.kernels.loader import cache_directory

    return cache_directory() / "data"


def dataset(name: str) -> Dataset:
    """The dataset called ``name`` (any case); a user error naming the known ones if none."""
    found = DATASETS.get(name.lower())
    if found is None:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} "
                        f"(rnnkit data list describes them)")
    return found


def source_url(file: RemoteFile) -> str:
    """Where ``file`` is fetched from: its upstream, or ``$RNNKIT_DATA_MIRROR<name>``."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    if mirror:
        return mirror.rstrip("/") + "/" + file.name
    return file.url


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(file: RemoteFile, progress: bool | None = None) -> Path:
    """The cached, verified copy of ``file``, downloaded first if the cache lacks it.

    ``progress``: a tqdm bar on stderr (default: when stderr is a terminal).
    """
    cache = data_cache()
    target = cache / file.name
    if target.is_file():
        if sha256_of(target) == file.sha256:
            logger.info("%s: in the cache, sha256 verified", target)
            return target
        logger.warning("%s: the cached copy's sha256 is not %s; fetching it again",
                       target, file.sha256)
        target.unlink()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the data cache {cache} ({error.strerror}); set "
                        f"$RNNKIT_CACHE to a folder you can write") from None
    url = source_url(file)
    if progress is None:
        progress = sys.stderr.isatty()
    logger.info("downloading %s (%s bytes)", url, f"{file.size:,}")
    handle = tempfile.NamedTemporaryFile(dir=cache, prefix=f".{file.name}.", suffix=".part",
                                         delete=False)
    partial = Path(handle.name)
    try:
        try:
            with handle:
                actual = _download(url, handle, file, progress)
        except OSError as error:  # the last buffered bytes not written when it closed
            raise _write_error(partial, error) from None
        if actual != file.sha256:
            raise DownloadError(f"{url}: sha256 {actual} is not the expected {file.sha256}; "
                                f"the download was deleted")
        _readable(partial)
        os.replace(partial, target)
        logger.info("%s: sha256 verified", target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _download(url: str, handle, file: RemoteFile, progress: bool) -> str:
    """Stream ``url`` into ``handle``; its SHA-256."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": f"rnnkit/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=file.name, disable=not progress, leave=False) as bar:
                received = 0
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    _write(handle, chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received < total:  # urllib reads an early close as EOF
                raise http.client.IncompleteRead(b"", total - received)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        upstream = "it" if url == file.url else file.url
        raise DownloadError(
            f"could not download {url} ({_reason(error)}); to place the file by hand, save "
            f"{upstream} as {data_cache() / file.name} (sha256 {file.sha256}), or point "
            f"${MIRROR_VARIABLE} at a server that has it") from None
    return digest.hexdigest()


def _write(handle, chunk: bytes) -> None:
    """A local write error (a full disk) is the cache's problem, not the download's."""
    try:
        handle.write(chunk)
    except OSError as error:
        raise _write_error(Path(handle.name), error) from None


def _write_error(path: Path, error: OSError) -> DownloadError:
    return DownloadError(f"cannot write {path} ({error.strerror or error}); free some room or "
                         f"set $RNNKIT_CACHE to another folder")


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, http.client.IncompleteRead) and error.expected is not None:
        return f"the connection closed {error.expected:,} bytes before the end"
    return str(error) or type(error).__name__


def get(name: str, out: str | Path, progress: bool | None = None) -> list[Path]:
    """Fetch dataset ``name`` into the cache, verified, and copy its files into ``out``.

    Beside them goes ``<name>.LICENSE.txt``: the source, licence and credit of the data.
    Returns the paths of the copied data files.
    """
    chosen = dataset(name)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; expected a folder to put the data in")
    copied = []
    try:
        for file in chosen.files:
            cached = fetch(file, progress=progress)
            out.mkdir(parents=True, exist_ok=True)
            copied.append(_copy(cached, out / file.name))
        _write_atomically(out / f"{chosen.name}.LICENSE.txt", licence_note(chosen).encode())
    except OSError as error:
        raise UserError(f"--out {out}: cannot write there ({error.strerror or error}); "
                        f"expected a folder you can write") from None
    return copied


def _copy(source: Path, destination: Path) -> Path:
    with tempfile.NamedTemporaryFile(dir=destination.parent, prefix=f".{destination.name}.",
                                     suffix=".part", delete=False) as handle:
        partial = Path(handle.name)
    try:
        shutil.copyfile(source, partial)
        _readable(partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _write_atomically(path: Path, content: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part",
                                     delete=False) as handle:
        handle.write(content)
    _readable(Path(handle.name))
    os.replace(handle.name, path)


def licence_note(chosen: Dataset) -> str:
    """The text written beside a dataset's files: what, where from, licence, credit."""
    lines = [f"{chosen.name}: {chosen.what}", "",
             f"source: {chosen.source}",
             f"licence: {chosen.licence_text}",
             f"credit: {chosen.credit}", "", "files (sha256, bytes, upstream):"]
    lines += [f"  {file.name}  {file.sha256}  {file.size:,}  {file.url}"
              for file in chosen.files]
    return "\n".join(lines) + "\n"
