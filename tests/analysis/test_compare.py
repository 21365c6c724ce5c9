import json

import pandas as pd
import pytest

from harness.analysis.compare import compare_suite
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.errors import InvalidInput
from harness.results_index import ResultsIndex
from harness.suite import GatesConfig

TOP_KEYS = {"schema_version", "suite", "suite_dir", "generated_at", "recorded_at", "baseline_arm", "margin_points",
            "emulated", "git_sha", "gates", "comparisons", "failed", "summary"}  # fmt: skip
ROW_KEYS = {"id", "stage", "arm", "recipe", "seed", "baseline", "candidate", "emulated", "evaluate", "status", "reason",
            "speed", "memory", "energy", "loss", "eval", "verdicts", "verdict", "control", "cost_not_measured", "cost_diverged"}  # fmt: skip


@pytest.fixture
def suite_dir(tmp_path):
    return write_synthetic_suite(tmp_path / "runs")


def test_compare_writes_the_documented_parity_json(suite_dir):
    parity = compare_suite(suite_dir, n_resamples=500)
    on_disk = json.loads((suite_dir / "parity.json").read_text())
    assert set(on_disk) == TOP_KEYS
    assert on_disk["comparisons"][0].keys() == ROW_KEYS
    assert parity.suite == "synth" and parity.baseline_arm == "bf16"
    assert on_disk["comparisons"][0]["id"] == "cpt/fp8/s0"


def test_speed_memory_and_energy_follow_the_known_step_times_and_peaks(suite_dir):
    row = compare_suite(suite_dir, n_resamples=2000).comparisons[0]
    speedup = row.speed.speedup
    assert speedup.value == pytest.approx(3.170 / 2.950, rel=0.01)
    assert speedup.ci_low < speedup.value < speedup.ci_high
    assert row.speed.time_reduction_pct == pytest.approx((1 - 2.950 / 3.170) * 100, abs=1.0)
    assert row.speed.steady_steps.baseline == 60 - 3 - 3  # 60 steps - 3 warm-up - checkpoint steps 20, 40, 60
    assert row.memory.alloc_ratio == pytest.approx(51.7 / 57.8)
    assert row.memory.memory_reduction_pct == pytest.approx((1 - 51.7 / 57.8) * 100)
    assert row.energy.per_token_ratio == pytest.approx(2.950 / 3.170)
    assert row.verdicts.speed == "better" and row.verdicts.memory == "better"


def test_loss_and_eval_parity_per_benchmark(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, synthetic_suite(margin_points=30.0), n_problems=40, k=8)
    row = compare_suite(suite_dir, n_resamples=1000).comparisons[0]
    assert row.loss.max_rel_error < 0.0025 and row.verdicts.loss == "parity"
    bench = row.eval["aime24"]
    assert (bench.k, bench.n_problems, bench.margin_points) == (8, 40, 30.0)
    assert bench.delta.value == pytest.approx(bench.candidate_avg_at_k - bench.baseline_avg_at_k)
    assert bench.verdict == "parity" and row.verdict == "parity"


def test_a_large_score_drop_is_worse(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, accuracy_shift={"fp8": -0.5}, n_problems=40, k=8)
    row = compare_suite(suite_dir, n_resamples=1000).comparisons[0]
    assert row.eval["aime24"].delta.ci_high < 0
    assert row.eval["aime24"].verdict == "worse" and row.verdict == "worse"


def test_failed_arms_are_listed_with_their_reason_not_dropped(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, synthetic_suite(seeds=[0, 1]), failed={"cpt-fp8-s1": "loss NaN"})
    parity = compare_suite(suite_dir, n_resamples=200)
    assert [f.model_dump() for f in parity.failed] == [
        {"run_id": "cpt-fp8-s1", "stage": "cpt", "arm": "fp8", "seed": 1, "status": "failed", "reason": "loss NaN"}
    ]
    failed_row = next(r for r in parity.comparisons if r.id == "cpt/fp8/s1")
    assert failed_row.status == "failed" and failed_row.verdict == "failed"
    assert "loss NaN" in failed_row.reason
    assert parity.summary[0].failed_seeds == [1] and parity.summary[0].verdict == "failed"


def test_emulated_arms_are_flagged(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, synthetic_suite(arms={"bf16": "bf16", "fp8": "emulated:block"}))
    parity = compare_suite(suite_dir, n_resamples=200)
    assert parity.emulated is True and parity.comparisons[0].emulated is True
    assert parity.summary[0].emulated is True


def test_absent_nvml_and_energy_are_null_not_zero(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, with_nvml=False)
    row = compare_suite(suite_dir, n_resamples=200).comparisons[0]
    assert row.memory.nvml_ratio is None and row.energy.per_token_ratio is None
    assert row.memory.alloc_ratio is not None


def test_gates_are_stored_and_kept_by_a_later_compare_without_gates(suite_dir):
    compare_suite(suite_dir, {"min_speedup": 1.05}, n_resamples=100)
    assert compare_suite(suite_dir, n_resamples=100).gates == GatesConfig(min_speedup=1.05)


def test_each_comparison_is_recorded_in_the_results_index(suite_dir):
    parity = compare_suite(suite_dir, n_resamples=100)
    rows = ResultsIndex(suite_dir.parent / "index.sqlite").comparisons("synth")
    assert len(rows) == 1
    assert rows[0]["speedup"] == pytest.approx(parity.comparisons[0].speed.speedup.value)
    assert rows[0]["git_sha"] == "0123456789abcdef" and rows[0]["scores"]["aime24"]["delta"] is not None


def test_arms_scored_on_different_problems_are_refused(suite_dir):
    path = suite_dir / "cpt-fp8-s0" / "eval" / "aime24" / "samples.parquet"
    frame = pd.read_parquet(path)
    frame[frame["problem_id"] != "p000"].to_parquet(path)
    with pytest.raises(InvalidInput, match="scored different problems"):
        compare_suite(suite_dir, n_resamples=100)


def test_summary_gives_the_loss_bias_across_seeds(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, synthetic_suite(seeds=[0, 1, 2]), loss_offset={"fp8": 0.01})
    parity = compare_suite(suite_dir, n_resamples=200)
    signed = [r.loss.mean_signed_rel_error for r in parity.comparisons]
    bias = parity.summary[0].loss_bias
    assert bias.n == 3 and bias.value == pytest.approx(sum(signed) / 3)
    assert 0 < bias.ci_low < 0.01 < bias.ci_high  # FP8 1% above BF16 in every seed: a bias, CI clear of 0


def test_an_emulated_arm_makes_no_speed_or_memory_claim(tmp_path):
    suite = synthetic_suite(arms={"bf16": "bf16", "fp8": "emulated:block"})
    parity = compare_suite(write_synthetic_suite(tmp_path, suite, step_time_s={"bf16": 3.0, "fp8": 2.0}),
                           n_resamples=100)  # fmt: skip
    row, summary = parity.comparisons[0], parity.summary[0]
    assert row.cost_not_measured and "emulated FP8" in row.cost_not_measured
    assert (row.speed.speedup, row.speed.time_reduction_pct, row.memory.headline_ratio) == (None, None, None)
    assert row.verdicts.speed == row.verdicts.memory == "not_measured"
    assert row.speed.candidate_step_time_s.value == pytest.approx(2.0, rel=0.05)  # what this machine measured
    assert (summary.speedup, summary.time_reduction_pct, summary.memory_reduction_pct) == (None, None, None)
    history = ResultsIndex(tmp_path / "index.sqlite").comparisons("synth")
    assert history[0]["emulated"] == 1 and history[0]["speedup"] is None


def test_cpu_runs_compare_memory_by_peak_rss_and_say_so(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path, peak_alloc_gb={"bf16": 2.0, "fp8": 1.5}, on_cpu=True)
    row = compare_suite(suite_dir, n_resamples=100).comparisons[0]
    assert row.memory.alloc_ratio is None and row.memory.nvml_ratio is None
    assert row.memory.headline_ratio == pytest.approx(0.75) and row.memory.headline_source == "peak RSS (CPU)"
    assert row.verdicts.memory == "better"
