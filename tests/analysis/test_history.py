import json

from harness.analysis.compare import compare_suite
from harness.analysis.history import history_rows
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.cli import main


def test_history_lists_each_compare_oldest_first_with_its_commit(tmp_path, capsys):
    runs = tmp_path / "runs"
    suite_dir = write_synthetic_suite(runs, git_sha="aaaaaaaaaaaa1111")
    compare_suite(suite_dir, n_resamples=100)
    write_synthetic_suite(runs, git_sha="bbbbbbbbbbbb2222", step_time_s={"bf16": 3.17, "fp8": 2.5})
    compare_suite(suite_dir, n_resamples=100)
    rows = history_rows(runs, "synth")
    assert [r["git_sha"] for r in rows] == ["aaaaaaaaaa", "bbbbbbbbbb"]
    assert rows[1]["speedup"] > rows[0]["speedup"]
    assert set(rows[0]["score_deltas"]) == {"aime24"}
    assert main(["history", "--suite", "synth", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "aaaaaaaaaa" in out and "bbbbbbbbbb" in out and "cpt/fp8/s0" in out


def test_history_without_an_index_exits_2(tmp_path, capsys):
    assert main(["history", "--runs-dir", str(tmp_path)]) == 2
    assert "no results index yet" in capsys.readouterr().err


def test_compare_cli_prints_a_table_and_writes_parity_json(tmp_path, capsys):
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    assert main(["compare", str(suite_dir), "--resamples", "200"]) == 0
    assert "cpt/fp8/s0" in capsys.readouterr().out
    assert json.loads((suite_dir / "parity.json").read_text())["comparisons"]


def test_history_marks_emulated_arms_and_shows_no_speed_for_them(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_synthetic_suite(runs, synthetic_suite(arms={"bf16": "bf16", "fp8": "emulated:row"}))
    compare_suite(runs / "synth", n_resamples=100)
    assert main(["history", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "cpt/fp8/s0 EMULATED" in out and "not measured" in out
