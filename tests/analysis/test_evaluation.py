"""Eval parity per benchmark: lengths and truncation per arm, verdicts truncation makes inconclusive, power."""

import json

import pandas as pd
import pytest

from harness.analysis.compare import compare_suite
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.report.html import write_report


def _suite(tmp_path, lengths=None, **eval_fields):
    suite = synthetic_suite(margin_points=60.0)
    suite = suite.model_copy(update={"eval": suite.eval.model_copy(update=eval_fields)})
    return write_synthetic_suite(tmp_path / "runs", suite, n_problems=40, k=8, lengths=lengths)


def test_each_arm_reports_output_tokens_truncation_and_eval_cost(tmp_path):
    suite_dir = _suite(tmp_path, lengths={"bf16": (900, 0.0), "fp8": (1100, 0.0)})
    e = compare_suite(suite_dir, n_resamples=100).comparisons[0].eval["aime24"]
    frame = pd.read_parquet(suite_dir / "cpt-fp8-s0" / "eval" / "aime24" / "samples.parquet")
    assert e.candidate_lengths.output_tokens_mean == pytest.approx(frame["output_tokens"].mean())
    assert e.candidate_lengths.output_tokens_p95 == pytest.approx(frame["output_tokens"].quantile(0.95))
    assert e.baseline_lengths.truncation_rate == 0.0 and e.candidate_lengths.gpu_hours == pytest.approx(4 / 3)
    assert e.candidate_lengths.data_parallel_size == 8 and e.not_conclusive is None


def test_the_lengths_read_a_summary_as_vllm_on_the_h200_wrote_it():
    # One benchmark's summary.json from `harness eval --backend vllm` on the H200 (docs/EVAL.md, fourth
    # session): one replica, every sample cut at 31,000 tokens. The report once showed "-" for its replicas.
    from pathlib import Path

    from harness.analysis.rundata import eval_lengths

    summary = json.loads((Path(__file__).parents[1] / "fixtures" / "eval" / "h200-vllm-summary.json").read_text())
    lengths = eval_lengths(pd.DataFrame({"score": [0.0]}), summary)
    assert lengths == {"output_tokens_mean": 31000.0, "output_tokens_p95": 31000.0, "truncation_rate": 1.0,
                       "wall_time_s": pytest.approx(365.94, abs=0.01), "gpu_hours": pytest.approx(0.0419, abs=1e-4),
                       "data_parallel_size": 1}  # fmt: skip


def test_results_without_length_columns_or_fields_still_compare(tmp_path):
    e = compare_suite(_suite(tmp_path), n_resamples=100).comparisons[0].eval["aime24"]
    assert e.baseline_lengths.output_tokens_mean is None and e.candidate_lengths.truncation_rate is None
    assert e.verdict == e.ci_verdict and e.not_conclusive is None


def test_lengths_fall_back_to_the_eval_summary_when_samples_lack_the_columns(tmp_path):
    suite_dir = _suite(tmp_path, lengths={"bf16": (900, 0.1), "fp8": (900, 0.1)})
    path = suite_dir / "cpt-fp8-s0" / "eval" / "aime24" / "samples.parquet"
    pd.read_parquet(path).drop(columns=["output_tokens", "finish_reason"]).to_parquet(path)
    recorded = json.loads((path.parent / "summary.json").read_text())
    e = compare_suite(suite_dir, n_resamples=100).comparisons[0].eval["aime24"]
    assert e.candidate_lengths.output_tokens_mean == recorded["output_tokens"]["mean"]
    assert e.candidate_lengths.truncation_rate == recorded["truncation_rate"]


def test_a_truncation_gap_between_arms_makes_the_verdict_not_conclusive(tmp_path):
    suite_dir = _suite(tmp_path, lengths={"bf16": (900, 0.02), "fp8": (900, 0.30)})
    row = compare_suite(suite_dir, n_resamples=100).comparisons[0]
    e = row.eval["aime24"]
    assert e.ci_verdict == "parity" and e.verdict == "inconclusive" and row.verdict == "inconclusive"
    assert "truncation differs" in e.not_conclusive and "eval.max_truncation_gap 5.0%" in e.not_conclusive
    html = write_report(suite_dir, tmp_path / "out").read_text()
    assert "not conclusive, truncation differs" in html and "inconclusive (truncation)" in html


def test_a_truncation_rate_above_the_suite_limit_is_not_conclusive(tmp_path):
    suite_dir = _suite(tmp_path, lengths={"bf16": (900, 0.2), "fp8": (900, 0.2)}, max_truncation_rate=0.1)
    e = compare_suite(suite_dir, n_resamples=100).comparisons[0].eval["aime24"]
    assert e.verdict == "inconclusive" and "above eval.max_truncation_rate 10.0%" in e.not_conclusive


def test_a_margin_below_what_the_design_resolves_is_flagged_and_warned(tmp_path):
    suite = synthetic_suite(margin_points=1.0)  # 30 problems x 4 samples resolve far more than 1 point
    suite_dir = write_synthetic_suite(tmp_path / "runs", suite)
    e = compare_suite(suite_dir, n_resamples=100).comparisons[0].eval["aime24"]
    assert e.underpowered is True and e.resolvable_margin_points > 5
    html = write_report(suite_dir, tmp_path / "out").read_text()
    assert "parity cannot be shown here even for identical models" in html


def test_the_lengths_table_gives_each_arms_replicas_and_small_gpu_hours_unrounded(tmp_path):
    from harness.report.tables import _hours, lengths_table

    parity = compare_suite(_suite(tmp_path, lengths={"bf16": (900, 0.0), "fp8": (1100, 0.5)}), n_resamples=100)
    [row] = lengths_table(parity).rows
    assert row.cells[-2:] == ["1.33 / 1.33", "8 / 8"]  # GPU-hours, data-parallel replicas (BF16 / FP8)
    assert [_hours(v) for v in (0.0041875, 0.0419, 12.5, None)] == ["0.0042", "0.042", "12.50", "-"]
