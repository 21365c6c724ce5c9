"""Steady-state selection, bootstrap intervals, energy windows and summary assembly on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from fakes import SUMMARY_KEYS

from harness.telemetry.stats import (
    bootstrap_median_ci,
    build_summary,
    describe,
    energy_in_windows,
    steady_records,
    step_windows,
)


def _records(times, tokens=100, checkpoints=()):
    out, clock = [], 0.0
    for step, seconds in enumerate(times, 1):
        clock += seconds
        out.append(
            {
                "step": step,
                "step_time_s": seconds,
                "tokens": tokens,
                "tokens_per_s": tokens / seconds,
                "mfu": None,
                "loss": 10.0 / step,
                "checkpoint": step in checkpoints,
                "time_s": clock,
                "peak_alloc_bytes": None,
                "peak_reserved_bytes": None,
            }
        )
    return out


def test_steady_state_drops_warmup_and_checkpoint_steps():
    records = _records([9.0, 5.0, 1.0, 1.0, 7.0, 1.0], checkpoints={5})
    assert [r["step"] for r in steady_records(records, warmup_steps=2)] == [3, 4, 6]


def test_steady_state_drops_warmup_again_after_each_resume():
    records = _records([1.0] * 10)
    steady = steady_records(records, warmup_steps=2, segment_starts=[0, 6])
    assert [r["step"] for r in steady] == [3, 4, 5, 6, 9, 10]


def test_describe_gives_hand_computed_median_and_mean():
    stats = describe([1.0, 2.0, 3.0, 10.0])
    assert stats["median"] == 2.5
    assert stats["mean"] == 4.0


def test_describe_ignores_missing_and_nan_and_is_all_none_without_values():
    assert describe([None, float("nan"), 4.0])["median"] == 4.0
    assert describe([None, None]) == {"median": None, "median_ci_low": None, "median_ci_high": None, "mean": None}


def test_bootstrap_ci_contains_the_median_and_is_deterministic():
    values = [1.00, 1.02, 0.98, 1.01, 1.05, 0.97, 1.00, 1.03, 0.99, 1.20]
    low, high = bootstrap_median_ci(values)
    assert low <= float(np.median(values)) <= high
    assert low < high
    assert bootstrap_median_ci(values) == (low, high)
    assert describe(values) == describe(values)


def test_bootstrap_ci_of_constant_steps_is_that_constant():
    assert bootstrap_median_ci([2.0] * 7) == (2.0, 2.0)


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap():
    data = np.random.default_rng(1).normal(1.0, 0.1, size=41)
    ours = bootstrap_median_ci(data, n_resamples=20_000)
    ref = scipy.stats.bootstrap(
        (data,), np.median, method="percentile", n_resamples=20_000, random_state=np.random.default_rng(5)
    ).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), abs=0.005)


def test_energy_in_windows_interpolates_the_cumulative_counter():
    # 100 W constant: counter 0, 100, 200, 300 J at t = 0, 1, 2, 3 s
    times, energy = [0.0, 1.0, 2.0, 3.0], [0.0, 100.0, 200.0, 300.0]
    assert energy_in_windows(times, energy, [(0.5, 1.5), (2.0, 2.25)]) == pytest.approx(125.0)


def test_step_windows_end_at_time_s_and_last_step_time_s():
    assert step_windows([{"time_s": 5.0, "step_time_s": 2.0}]) == [(3.0, 5.0)]


def test_summary_has_documented_keys_and_energy_per_token_over_steady_steps():
    records = _records([9.0, 1.0, 1.0, 3.0], tokens=50, checkpoints={4})
    identity = {
        "run_id": "r",
        "stage": "cpt",
        "arm": "a",
        "recipe": "bf16",
        "emulated": False,
        "device": "cpu",
        "world_size": 1,
    }
    summary = build_summary(
        records,
        identity=identity,
        status="completed",
        reason=None,
        warmup_steps=1,
        totals={"energy_j": 1000.0, "steady_energy_j": 40.0, "nvml_peak_memory_bytes": 7},
    )
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["steps"] == 4 and summary["steady_steps"] == 2  # step 1 warm-up, step 4 checkpoint
    assert summary["tokens_total"] == 200
    assert summary["final_loss"] == 2.5
    assert summary["step_time_s"]["median"] == 1.0
    assert summary["energy_per_token_j"] == pytest.approx(40.0 / 100)
    assert summary["mfu"]["median"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in summary.values())
