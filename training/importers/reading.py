"""Streaming readers shared by the importers: plain or gzip files, strict UTF-8, bounded memory.

Every failure is turned into an ``ImportFormatError`` that names the file and the position (line or
record index): a truncated gzip, a binary file, invalid UTF-8, malformed JSON, an oversized record.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from training.importers.records import ImportFormatError

CHUNK_CHARS = 1 << 20
# A single line / JSON record above this is refused (a 100 MB line is an error, not a record).
MAX_RECORD_CHARS = 8 << 20
_GZIP_MAGIC = b"\x1f\x8b"


@contextmanager
def open_text(path: Path) -> Iterator[io.TextIOBase]:
    """Open a UTF-8 text file, transparently gunzipping it; refuse empty and binary files up front."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ImportFormatError(path, "", f"cannot open: {exc.strerror or exc}") from exc
    with raw:
        head = raw.read(2)
        raw.seek(0)
        if not head:
            raise ImportFormatError(path, "", "file is empty")
        binary: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if head == _GZIP_MAGIC else raw
        yield _StrictText(path, binary)


class _StrictText(io.TextIOBase):
    """Incremental strict UTF-8 decoding that counts lines, so decode errors can say where they are."""

    def __init__(self, path: Path, binary: io.BufferedIOBase) -> None:
        self.path = path
        self._binary = binary
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._pending = ""
        self._eof = False
        self.lines_read = 0  # newlines handed out so far
        self._first = True

    def _fill(self, want: int) -> None:
        while len(self._pending) < want and not self._eof:
            try:
                data = self._binary.read(CHUNK_CHARS)
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
                raise ImportFormatError(self.path, f"line {self.lines_read + 1}",
                                        f"truncated or corrupt gzip data ({exc})") from exc
            if not data and self._first:
                raise ImportFormatError(self.path, "", "file is empty (no data after decompression)")
            self._first = False
            line = self.lines_read + 1 + self._pending.count("\n")  # of the first byte of `data`
            nul = data.find(b"\x00")
            if nul >= 0:
                line += data.count(b"\n", 0, nul)
                raise ImportFormatError(self.path, f"line {line}",
                                        "binary data (NUL byte), not a text file")
            try:
                self._pending += self._decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                line += data.count(b"\n", 0, max(exc.start, 0))
                raise ImportFormatError(self.path, f"line {line}", f"not valid UTF-8 text ({exc.reason})") from exc
            if not data:
                self._eof = True

    def read(self, size: int = -1) -> str:  # type: ignore[override]
        self._fill(CHUNK_CHARS if size is None or size < 0 else size)
        if size is None or size < 0:
            while not self._eof:
                self._fill(len(self._pending) + CHUNK_CHARS)
            out, self._pending = self._pending, ""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        self.lines_read += out.count("\n")
        return out

    def readline(self, size: int = -1) -> str:  # type: ignore[override]
        """One line including its newline; at most ``size`` characters when size >= 0."""
        start = 0
        while True:
            nl = self._pending.find("\n", start)
            if nl >= 0 or self._eof or (0 <= size <= len(self._pending)):
                break
            start = len(self._pending)
            self._fill(len(self._pending) + CHUNK_CHARS)
        end = nl + 1 if nl >= 0 else len(self._pending)
        if size >= 0:
            end = min(end, size)
        out, self._pending = self._pending[:end], self._pending[end:]
        self.lines_read += out.count("\n")
        return out


def iter_lines(path: Path, text: _StrictText | io.TextIOBase) -> Iterator[tuple[int, str]]:
    """(line number, line without newline), refusing any line longer than ``MAX_RECORD_CHARS``."""
    lineno = 0
    while True:
        line = text.readline(MAX_RECORD_CHARS + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_RECORD_CHARS and not line.endswith("\n"):
            raise ImportFormatError(path, f"line {lineno}",
                                    f"line longer than {MAX_RECORD_CHARS:,} characters; refusing to load it")
        yield lineno, line.rstrip("\r\n")


def json_array_items(path: Path, text: Any) -> Iterator[tuple[str, Any]]:
    """``(position, object)`` for each element of a top-level JSON array, positioned as importers report it."""
    for i, line, obj in iter_json_array(path, text):
        yield f"record {i}, line {line}", obj


def iter_json_array(path: Path, text: io.TextIOBase) -> Iterator[tuple[int, int, Any]]:
    """Stream the elements of a top-level JSON array: (record index, line, value), one at a time.

    Not ijson, on purpose: a bad record must be reported as "record 1, line 2" (ijson's items carry no line
    and its errors no record), a record longer than ``MAX_RECORD_CHARS`` must be refused before it is built
    (ijson builds each item whole), and floats stay floats (ijson gives ``Decimal``). The stdlib decoder
    does the parsing; this loop only feeds it chunks."""
    decoder = json.JSONDecoder()
    buf = text.read(CHUNK_CHARS)
    pos, line = 0, 1

    def skip_ws() -> None:
        nonlocal buf, pos, line
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                line += buf[pos] == "\n"
                pos += 1
            if pos < len(buf):
                return
            more = text.read(CHUNK_CHARS)
            if not more:
                return
            buf, pos = more, 0

    skip_ws()
    if pos >= len(buf):
        raise ImportFormatError(path, "", "file is empty (only whitespace)")
    if buf[pos] != "[":
        raise ImportFormatError(path, f"line {line}", f"expected a JSON array, found {buf[pos]!r}")
    pos += 1
    index = 0
    while True:
        skip_ws()
        if pos >= len(buf):
            raise ImportFormatError(path, f"record {index}, line {line}", "unexpected end of file inside the JSON array")
        if buf[pos] == "]" and index == 0:
            return _expect_end(path, text, buf, pos + 1, line)
        want = CHUNK_CHARS
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                if end < len(buf):
                    break
                more = text.read(want)  # a value ending exactly at the buffer's end may continue
                if not more:
                    break
                buf = buf[pos:] + more
                pos = 0
                continue
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_RECORD_CHARS:
                    raise ImportFormatError(path, f"record {index}, line {line}",
                                            f"record longer than {MAX_RECORD_CHARS:,} characters") from exc
                more = text.read(want)
                if not more:
                    bad_line = line + buf.count("\n", pos, exc.pos)
                    raise ImportFormatError(path, f"record {index}, line {bad_line}",
                                            f"malformed JSON: {exc.msg}") from exc
                buf = buf[pos:] + more
                pos = 0
                want *= 2  # keep re-decoding linear for large records
        line += buf.count("\n", pos, end)
        yield index, line, value
        index += 1
        pos = end
        skip_ws()
        if pos < len(buf) and buf[pos] == ",":
            pos += 1
            continue
        if pos < len(buf) and buf[pos] == "]":
            return _expect_end(path, text, buf, pos + 1, line)
        found = repr(buf[pos]) if pos < len(buf) else "end of file"
        raise ImportFormatError(path, f"record {index}, line {line}", f"malformed JSON: expected ',' or ']', found {found}")


def _expect_end(path: Path, text: io.TextIOBase, buf: str, pos: int, line: int) -> None:
    rest = buf[pos:]
    while True:
        if rest.strip():
            raise ImportFormatError(path, f"line {line + rest[: len(rest) - len(rest.lstrip())].count(chr(10))}",
                                    "unexpected data after the JSON array")
        line += rest.count("\n")
        rest = text.read(CHUNK_CHARS)
        if not rest:
            return
