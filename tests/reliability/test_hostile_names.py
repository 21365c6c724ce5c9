"""Names that become folder names (suite, stage, arm, benchmark, a spec.json's run id) cannot reach
outside the runs folder: a hostile one is refused at load, exit 2 naming the field, and no file or
folder appears anywhere under the test's tree (the cwd, the runs folder, the suite's folder, their
parents)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from relkit import write_suite

from harness.analysis.synthetic import write_synthetic_suite
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


@pytest.mark.parametrize("field", ["run_id", "suite", "stage_name", "arm"])
def test_a_spec_json_naming_a_hostile_run_is_refused_before_anything_is_written(field, tmp_path, capsys):
    # `harness train RUN_DIR` trains in <parent>/<spec.run_id>: a tampered spec.json must not move it.
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    spec_file = suite_dir / "cpt-fp8-s0" / "spec.json"
    spec = json.loads(spec_file.read_text())
    spec[field] = "../../escape"
    spec_file.write_text(json.dumps(spec))
    before = _tree(tmp_path)
    for argv in (["train", str(spec_file.parent)], ["eval", str(spec_file.parent)], ["compare", str(suite_dir)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{spec_file}: invalid spec.json: {field}: '../../escape' is not a safe name" in err, err
        assert _tree(tmp_path) == before


def test_a_run_folder_renamed_away_from_its_run_id_is_refused(tmp_path, capsys):
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    moved = suite_dir / "renamed"
    (suite_dir / "cpt-fp8-s0").rename(moved)
    before = _tree(tmp_path)
    assert main(["train", str(moved)]) == 2
    err = capsys.readouterr().err
    assert f"{moved / 'spec.json'}: run_id 'cpt-fp8-s0' does not match its folder 'renamed'" in err, err
    assert _tree(tmp_path) == before  # in particular no new cpt-fp8-s0/ beside it
