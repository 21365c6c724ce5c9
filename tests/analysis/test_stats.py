import numpy as np
import pytest
from scipy import stats as scipy_stats

from harness.analysis.stats import (
    combine_verdicts,
    equivalence_verdict,
    median_ci,
    paired_delta_ci,
    ratio_of_medians_ci,
    ratio_verdict,
)


def test_median_ci_of_constant_values_is_that_value():
    est = median_ci([2.5] * 20, n_resamples=500)
    assert (est.value, est.ci_low, est.ci_high) == (2.5, 2.5, 2.5)


def test_median_ci_hand_computed_point_and_bounds_within_data():
    est = median_ci([1.0, 2.0, 3.0, 4.0, 100.0], n_resamples=2000)
    assert est.value == 3.0  # the outlier does not move a median
    assert 1.0 <= est.ci_low <= 3.0 <= est.ci_high <= 100.0


def test_median_ci_ignores_none_and_nan_and_rejects_empty():
    assert median_ci([None, float("nan"), 4.0, 4.0], n_resamples=100).value == 4.0
    with pytest.raises(ValueError):
        median_ci([None, float("nan")])


def test_bootstrap_is_deterministic_for_a_seed_and_varies_with_it():
    x = np.random.default_rng(1).normal(3.0, 0.3, 50)
    assert median_ci(x, seed=7) == median_ci(x, seed=7)
    assert median_ci(x, seed=7) != median_ci(x, seed=8)


def test_median_ci_agrees_with_scipy_percentile_bootstrap():
    x = np.random.default_rng(0).normal(3.17, 0.05, 200)
    ours = median_ci(x, n_resamples=20_000)
    ref = scipy_stats.bootstrap((x,), np.median, n_resamples=20_000, method="percentile", random_state=1)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.1 * width)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.1 * width)


def test_ratio_of_medians_is_baseline_over_candidate_step_time():
    est = ratio_of_medians_ci([3.17] * 10, [2.95] * 10, n_resamples=200)
    assert est.value == pytest.approx(3.17 / 2.95)
    assert est.ci_low == pytest.approx(3.17 / 2.95) and est.ci_high == pytest.approx(3.17 / 2.95)


def test_ratio_ci_brackets_the_point_estimate_for_noisy_arms():
    rng = np.random.default_rng(3)
    est = ratio_of_medians_ci(rng.normal(3.17, 0.05, 80), rng.normal(2.95, 0.05, 80))
    assert est.ci_low < est.value < est.ci_high
    assert est.ci_low > 1.0


def test_paired_delta_of_a_constant_shift_is_exact():
    base = np.array([0.1, 0.5, 0.9, 0.3])
    est = paired_delta_ci(base + 0.25, base, n_resamples=300)
    assert est.value == pytest.approx(0.25)
    assert est.ci_low == pytest.approx(0.25) and est.ci_high == pytest.approx(0.25)


def test_paired_delta_matches_scipy_bootstrap_of_the_differences():
    rng = np.random.default_rng(5)
    base = rng.uniform(0, 100, 60)
    cand = base + rng.normal(-1.0, 5.0, 60)
    ours = paired_delta_ci(cand, base, n_resamples=20_000)
    ref = scipy_stats.bootstrap((cand - base,), np.mean, n_resamples=20_000, method="percentile", random_state=2)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours.value == pytest.approx(np.mean(cand - base))
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.1 * width)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.1 * width)


def test_paired_delta_rejects_unequal_lengths():
    with pytest.raises(ValueError):
        paired_delta_ci([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(-1.0, 2.0, "parity"), (-4.0, -0.5, "worse"), (0.5, 6.0, "better"), (-2.0, 4.0, "inconclusive"),
     (None, None, "inconclusive")],
)  # fmt: skip
def test_equivalence_verdict_needs_the_whole_ci_inside_the_margin(low, high, expected):
    assert equivalence_verdict(low, high, margin=3.0) == expected


def test_ratio_verdict_for_speed_and_memory():
    assert ratio_verdict(1.05, 1.10) == "better"
    assert ratio_verdict(0.90, 0.95) == "worse"
    assert ratio_verdict(0.99, 1.01) == "parity"
    assert ratio_verdict(0.97, 1.05) == "inconclusive"
    assert ratio_verdict(0.89, 0.89, higher_is_better=False) == "better"  # memory: lower is better


def test_combine_verdicts_worst_wins():
    assert combine_verdicts(["parity", "parity"]) == "parity"
    assert combine_verdicts(["parity", "better"]) == "better"
    assert combine_verdicts(["better", "inconclusive"]) == "inconclusive"
    assert combine_verdicts(["parity", "worse", "inconclusive"]) == "worse"
    assert combine_verdicts([]) == "inconclusive"


def test_seed_mean_ci_is_students_t_over_seeds():
    from harness.analysis.stats import seed_mean_ci

    # Two seeds, +1% and -0.5%: mean +0.25%, half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.010607 / 1.4142.
    est = seed_mean_ci([0.01, -0.005, None])
    assert est["value"] == pytest.approx(0.0025) and est["n"] == 2
    assert est["ci_high"] - est["value"] == pytest.approx(0.0953, abs=5e-4)
    assert est["ci_low"] < 0 < est["ci_high"]  # opposite signs: no systematic bias shown
    assert seed_mean_ci([0.004]) == {"value": 0.004, "ci_low": None, "ci_high": None, "n": 1}
    assert seed_mean_ci([None]) is None
