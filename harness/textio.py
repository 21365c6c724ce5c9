"""Reading the user's text files as UTF-8, with the file and line named when one is not.

Python's UnicodeDecodeError names a byte offset and no file; every reader of a suite, a corpus or a
run folder turns it into one InvalidInput message with the file, the line and the fix instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from harness.errors import InvalidInput


def decode_utf8(data: bytes, path: Path | str, fix: str) -> str:
    """data as text (a leading byte-order mark dropped); InvalidInput naming path:line and the fix otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(not_utf8_message(path, data, exc.start, fix)) from None


def read_text_utf8(path: Path | str, what: str, fix: str) -> str:
    """The text of a file; InvalidInput naming the file when it cannot be read or is not UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read {what} ({exc.strerror or exc}); {fix}") from None
    return decode_utf8(data, path, fix)


def not_utf8_message(path: Path | str, data: bytes, offset: int, fix: str, first_line: int = 1) -> str:
    """'<path>:<line>: not UTF-8 text (byte 0xe9 in: <the line, undecodable bytes shown as U+FFFD>); <fix>'."""
    line = first_line + data.count(b"\n", 0, offset)
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    shown = data[start : end if end >= 0 else len(data)].decode("utf-8", errors="replace").strip()
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{path}:{line}: not UTF-8 text (byte {data[offset]:#04x} in: {shown}); {fix}"


def find_non_utf8(files: Iterable[Path], fix: str) -> str | None:
    """The not_utf8_message of the first undecodable line among files, or None (reads line by line)."""
    for path in files:
        with path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return not_utf8_message(path, line, exc.start, fix, first_line=number)
    return None
