"""harness.textio: text that is not UTF-8 is named by file and line."""

from __future__ import annotations

import pytest

from harness.errors import InvalidInput
from harness.textio import find_non_utf8, read_text_utf8


def test_the_first_undecodable_line_is_named_with_its_text(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "na\xefve \xe9t\xe9"}\n{"text": "caf\xe9"}\n')
    assert find_non_utf8([path], "re-encode it") == (
        f'{path}:2: not UTF-8 text (byte 0xef in: {{"text": "na\ufffdve \ufffdt\ufffd"}}); re-encode it'
    )


def test_utf8_files_have_nothing_to_report(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text('{"text": "naïve été"}\n' * 3, encoding="utf-8")
    assert find_non_utf8([path], "fix") is None


def test_a_byte_order_mark_is_accepted_and_dropped(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_bytes(b'\xef\xbb\xbfname = "x"\n')
    assert read_text_utf8(path, "the suite file", "fix") == 'name = "x"\n'


def test_an_unreadable_file_is_named_with_the_reason(tmp_path):
    with pytest.raises(InvalidInput, match=rf"{tmp_path}: cannot read the suite file \(Is a directory\); fix"):
        read_text_utf8(tmp_path, "the suite file", "fix")
