"""Names that become folder names (suite, stage, arm, benchmark) cannot reach outside the runs
folder: a hostile one is refused at load, exit 2 naming the field, and no file or folder appears
anywhere under the test's tree (the cwd, the runs folder, the suite's folder, their parents)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from relkit import write_suite

from harness.cli import main

HOSTILE = ["../../escape", "../escape", "a/b", "..", ".hidden", "x y", "ok\nname", "/ABSOLUTE/escape", "n" * 65]

# field -> (line replacements putting NAME there, the field the message names)
FIELDS = {
    "suite": ([('name = "rel"', "name = NAME")], "name:"),
    "stage": ([("[stages.cpt]", "[stages.NAME]")], "stages:"),
    "arm": ([('fp8 = "emulated:block"', 'NAME = "emulated:block"')], "arms:"),
    "benchmark": ([("[telemetry]", "[eval.benchmarks.NAME]\n[telemetry]")], "eval.benchmarks:"),
}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("command", ["validate", "plan", "run", "train", "launch"])
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n)[:12])
def test_a_hostile_name_is_refused_at_load_and_creates_nothing(name, field, command, tmp_path, corpus, capsys,
                                                               monkeypatch):  # fmt: skip
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # relative escapes would land in tmp_path's tree, which is watched
    value = name.replace("/ABSOLUTE", str(tmp_path))
    replace, named = FIELDS[field]
    suite = write_suite(work, corpus, replace=[(old, new.replace("NAME", json.dumps(value))) for old, new in replace])
    before = _tree(tmp_path)
    argv = {
        "validate": ["validate", str(suite)],
        "plan": ["plan", str(suite)],
        "run": ["run", str(suite), "--runs-dir", "runs", "--quiet"],
        "train": ["train", str(suite), "--run-id", "cpt-bf16-s0", "--runs-dir", "runs", "--quiet"],
        "launch": ["launch", str(suite), "--runs-dir", "runs"],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{suite}: {named} {value!r} is not a safe name" in err, err
    assert "letters, digits, '_', '.' and '-'" in err and "Traceback" not in err
    assert _tree(tmp_path) == before
