"""Text corpora on disk: find the files, check they are text, hash them, read them in chunks.

A corpus is one UTF-8 text file or a folder of them: the folder's ``*.txt`` files, found
recursively, in sorted order (a README.md or notes beside the corpus are not read; the files
read and those left out are logged). Files are read line-aligned in chunks, so a corpus larger
than memory streams; every problem is a one-line :class:`UserError`.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from rnnkit.errors import UserError

TEXT_SUFFIXES = (".txt",)  # what a folder corpus reads (any name for a file given itself)
CHUNK_BYTES = 1 << 20
LISTED = 10  # file names a log line lists before "and N more"

logger = logging.getLogger(__name__)


def corpus_files(path: str | Path, what: str = "corpus") -> list[Path]:
    """The text files ``path`` names: itself, or the text files under a folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{what} {path} is neither a file nor a folder")
    found = sorted(
        candidate
        for candidate in path.rglob("*")
        if candidate.is_file()
        and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
    )
    files = [file for file in found if file.suffix.lower() in TEXT_SUFFIXES]
    if not files:
        raise UserError(
            f"{what} folder {path} has no text files (expected {', '.join(TEXT_SUFFIXES)})"
        )
    left_out = [file for file in found if file.suffix.lower() not in TEXT_SUFFIXES]
    logger.info("Corpus folder %s: reading %d %s file(s): %s%s", path, len(files),
                "/".join(TEXT_SUFFIXES), _names(files, path),
                f"; not read: {_names(left_out, path)}" if left_out else "")
    return files


def _names(files: list[Path], folder: Path) -> str:
    names = [str(file.relative_to(folder)) for file in files[:LISTED]]
    more = len(files) - len(names)
    return ", ".join(names) + (f" and {more} more" if more else "")


def check_text_file(path: Path, encoding: str = "utf-8") -> int:
    """Read ``path`` once to check it is non-empty text in ``encoding``; return its size.

    A NUL byte means binary; an undecodable byte is named with its offset.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise UserError(f"--encoding {encoding!r} is not an encoding Python knows") from None
    offset = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            zero = chunk.find(b"\0")
            if zero >= 0 and "16" not in encoding and "32" not in encoding:
                raise UserError(
                    f"{path} looks binary (a NUL byte at byte offset {offset + zero}); expected "
                    f"a text file"
                )
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                raise UserError(
                    f"{path} is not valid {encoding} text: byte 0x{chunk[error.start]:02x} at "
                    f"byte offset {offset + error.start} cannot be decoded; if the file uses "
                    f"another encoding, pass it with --encoding (e.g. --encoding latin-1)"
                ) from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UserError(
                f"{path} is not valid {encoding} text: it ends inside a multi-byte character "
                f"(byte offset {offset}); pass the right --encoding"
            ) from None
    if offset == 0:
        raise UserError(f"{path} is empty; expected {encoding} text")
    return offset


class Corpus:
    """The checked text files of a corpus, with a content hash and a chunked reader."""

    def __init__(self, path: str | Path, encoding: str = "utf-8", what: str = "corpus"):
        self.path = Path(path)
        self.encoding = encoding
        self.files = corpus_files(path, what)
        self.sizes = [check_text_file(file, encoding) for file in self.files]
        self.content_hash = self._hash()
        if not any(chunk.strip() for chunk in self.chunks()):
            raise UserError(f"{what} {path} holds only whitespace; expected text")

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def _hash(self) -> str:
        digest = hashlib.sha256()
        for file, size in zip(self.files, self.sizes):
            digest.update(f"{size}\n".encode())  # a boundary, so files cannot run together
            with open(file, "rb") as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    digest.update(chunk)
        return digest.hexdigest()

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
        """The text in chunks that end at line ends; a file without a final newline gets one."""
        for file in self.files:
            with open(file, encoding=self.encoding, newline="") as handle:
                last = ""
                while lines := handle.readlines(chunk_bytes):
                    chunk = "".join(lines).replace("\r\n", "\n")
                    last = chunk
                    yield chunk
                if last and not last.endswith("\n") and len(self.files) > 1:
                    yield "\n"  # keep the last line of one file apart from the next file

    def lines(self) -> Iterator[str]:
        for chunk in self.chunks():
            yield from chunk.splitlines(keepends=True)

    def read(self) -> str:
        return "".join(self.chunks())
