"""Combining ranks: tokens and energy add up, memory and step time are the worst rank's."""

from __future__ import annotations

from harness.telemetry.ranks import FINISH_OPS, STEP_OPS, gather_reduce, reduce_ranks


def test_step_reduction_sums_tokens_and_takes_max_time_and_memory():
    ranks = [
        {"tokens": 1000, "processed_tokens": 1024, "step_time_s": 1.50, "peak_alloc_bytes": 10, "peak_reserved_bytes": 20},
        {"tokens": 900, "processed_tokens": 960, "step_time_s": 1.75, "peak_alloc_bytes": 12, "peak_reserved_bytes": 19},
        {"tokens": 1100, "processed_tokens": 1152, "step_time_s": 1.25, "peak_alloc_bytes": 11, "peak_reserved_bytes": 25},
    ]  # fmt: skip
    assert reduce_ranks(ranks, STEP_OPS) == {
        "tokens": 3000,
        "processed_tokens": 3136,
        "step_time_s": 1.75,
        "peak_alloc_bytes": 12,
        "peak_reserved_bytes": 25,
    }


def test_finish_reduction_sums_energy_and_takes_max_device_memory():
    ranks = [
        {"nvml_peak_memory_bytes": 70, "energy_j": 500.0, "steady_energy_j": 300.0, "rss_peak_bytes": 5},
        {"nvml_peak_memory_bytes": 75, "energy_j": 520.0, "steady_energy_j": 310.0, "rss_peak_bytes": 4},
    ]
    assert reduce_ranks(ranks, FINISH_OPS) == {
        "nvml_peak_memory_bytes": 75,
        "energy_j": 1020.0,
        "steady_energy_j": 610.0,
        "rss_peak_bytes": 5,
    }


def test_a_value_missing_on_any_rank_is_reported_missing_not_partial():
    ranks = [{"energy_j": 500.0, "nvml_peak_memory_bytes": 3}, {"energy_j": None, "nvml_peak_memory_bytes": None}]
    reduced = reduce_ranks(ranks, FINISH_OPS)
    assert reduced["energy_j"] is None
    assert reduced["nvml_peak_memory_bytes"] is None


def test_without_torch_distributed_the_local_values_pass_through():
    local = {
        "tokens": 7,
        "processed_tokens": 8,
        "step_time_s": 0.5,
        "peak_alloc_bytes": None,
        "peak_reserved_bytes": None,
    }
    assert gather_reduce(local, STEP_OPS) == local
