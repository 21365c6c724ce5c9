"""A bad SFT record through the real front door: exit 2, one message naming the file, line and field,
nothing trained (the record-level cases: tests/train/test_sft_formats.py)."""

from __future__ import annotations

import json

from relkit import write_suite

from harness.cli import main

GOOD = {"messages": [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "2"}]}
WIZARD = {"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "2"}]}


def test_a_bad_sft_record_stops_harness_run_with_exit_2_and_one_message(tmp_path, capsys):
    data = tmp_path / "chats.jsonl"
    data.write_text(json.dumps(GOOD) + "\n" + json.dumps(WIZARD) + "\n")
    suite = write_suite(tmp_path, data, replace=[('kind = "cpt"', 'kind = "sft"')])
    code = main(["run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--skip-eval", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{data}:2: messages[0].role: unknown role 'wizard'" in err
    assert not list((tmp_path / "runs").rglob("metrics.jsonl"))  # nothing trained
