"""Run directories: atomic writes, metrics reading and resume truncation, the results index."""

from __future__ import annotations

import json
import threading

import pytest

from harness.errors import InvalidInput
from harness.results_index import ResultsIndex
from harness.store import (
    MetricsWriter,
    RunDir,
    atomic_write_json,
    read_metrics,
    suite_runs,
    truncate_metrics,
)
from harness.suite import load_suite, plan


def test_atomic_write_leaves_no_temp_files_and_replaces_content(tmp_path):
    target = tmp_path / "a" / "summary.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2, "nan": float("nan")})
    assert json.loads(target.read_text()) == {"x": 2, "nan": None}
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]


def test_corrupt_metrics_line_is_named_with_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n')
    with pytest.raises(InvalidInput, match=r"metrics.jsonl:2: corrupt line"):
        read_metrics(path)


def test_truncate_metrics_keeps_checkpointed_steps_and_drops_torn_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    for step in range(1, 6):
        writer.write({"step": step, "loss": 1.0 / step})
    writer.close()
    with path.open("a") as fh:
        fh.write('{"step": 6, "lo')  # a kill in the middle of a write
    truncate_metrics(path, 3)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]


def test_suite_runs_requires_run_directories(tmp_path):
    with pytest.raises(InvalidInput, match="no such folder"):
        suite_runs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no run directories"):
        suite_runs(tmp_path / "empty")


def test_run_dir_reads_back_its_spec(tmp_path):
    spec = plan(load_suite("suites/smoke.toml"))[0]
    run = RunDir(tmp_path / spec.run_id)
    atomic_write_json(run.spec, spec.model_dump(mode="json"))
    assert run.read_spec() == spec
    with pytest.raises(InvalidInput, match="summary.json"):
        run.read_summary()


def test_results_index_concurrent_writers_lose_nothing(tmp_path):
    index = ResultsIndex(tmp_path / "index.sqlite")

    def write(worker: int) -> None:
        for i in range(20):
            index.record_comparison({"suite": "s", "arm": f"w{worker}", "speedup": 1.0 + i, "scores": {"a": i}})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = index.comparisons("s")
    assert len(rows) == 80
    assert rows[0]["scores"]["a"] in range(20)


def test_an_index_written_by_an_older_harness_gains_new_metric_columns(tmp_path):
    import sqlite3

    path = tmp_path / "index.sqlite"
    with sqlite3.connect(path) as conn:  # the comparisons table as the first harness versions created it
        conn.execute(
            "CREATE TABLE comparisons (id INTEGER PRIMARY KEY AUTOINCREMENT, suite TEXT NOT NULL, stage TEXT,"
            " seed INTEGER, arm TEXT, baseline TEXT, git_sha TEXT, recorded_at REAL, speedup REAL,"
            " memory_ratio REAL, loss_rel_error REAL, scores_json TEXT, verdict TEXT, gate_passed INTEGER)"
        )
        conn.execute("INSERT INTO comparisons (suite, arm, speedup) VALUES ('s', 'old', 1.2)")
    conn.close()
    index = ResultsIndex(path)
    index.record_comparison({"suite": "s", "arm": "new", "metrics": {"speedup": 1.3, "loss_excess_over_control": 0.01}})
    old, new = index.comparisons("s")
    assert (old["speedup"], old["loss_excess_over_control"]) == (1.2, None)
    assert (new["speedup"], new["loss_excess_over_control"]) == (1.3, 0.01)
