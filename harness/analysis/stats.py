"""Bootstrap confidence intervals and verdicts: numbers in, numbers out (no I/O).

Every resampler takes a seed, so the same inputs always give the same interval; the
intervals are percentile intervals (the 2.5th and 97.5th percentiles of the resampled
statistic for 95%). The one exception is `seed_mean_ci`: across a handful of seeds a bootstrap
has too few values to resample, so it takes Student's t interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
VERDICTS = ("parity", "better", "worse", "inconclusive")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile bootstrap interval."""

    value: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict:
        return asdict(self)


def _clean(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise ValueError(f"{what}: no finite values to bootstrap")
    return arr


def _percentiles(stat: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(stat, [tail, 100.0 - tail])
    return float(low), float(high)


def _resampled_medians(x: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    # Chunked so a 10k x 100k-step resample never needs gigabytes at once.
    out = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // max(1, x.size))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        out[start:stop] = np.median(x[idx], axis=1)
    return out


def median_ci(
    values: Sequence[float], *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> Estimate:
    """Median of `values` with a percentile bootstrap CI (resampling the values with replacement)."""
    x = _clean(values, "median_ci")
    rng = np.random.default_rng(seed)
    low, high = _percentiles(_resampled_medians(x, n_resamples, rng), confidence)
    return Estimate(float(np.median(x)), low, high)


def ratio_of_medians_ci(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Estimate:
    """median(numerator) / median(denominator), each sample resampled independently.

    Speed-up = ratio_of_medians_ci(bf16_step_times, fp8_step_times): the two arms' steps are
    independent measurements, so each arm is resampled on its own.
    """
    num = _clean(numerator, "ratio_of_medians_ci numerator")
    den = _clean(denominator, "ratio_of_medians_ci denominator")
    rng = np.random.default_rng(seed)
    ratios = _resampled_medians(num, n_resamples, rng) / _resampled_medians(den, n_resamples, rng)
    low, high = _percentiles(ratios, confidence)
    return Estimate(float(np.median(num) / np.median(den)), low, high)


def paired_delta_ci(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Estimate:
    """Mean of candidate - baseline over paired items (problems), with a paired bootstrap CI.

    Inputs are per-problem scores (the mean over k samples of one problem), in the same problem
    order for both arms; problems are resampled together so the problem-to-problem spread,
    which both arms share, cancels.
    """
    cand = np.asarray(candidate, dtype=float)
    base = np.asarray(baseline, dtype=float)
    if cand.shape != base.shape or cand.size == 0:
        raise ValueError(f"paired_delta_ci: need equally long, non-empty inputs (got {cand.size} and {base.size})")
    diff = cand - base
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // diff.size)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        means[start:stop] = diff[rng.integers(0, diff.size, size=(stop - start, diff.size))].mean(axis=1)
    low, high = _percentiles(means, confidence)
    return Estimate(float(diff.mean()), low, high)


def seed_mean_ci(values: Sequence[float | None], confidence: float = CONFIDENCE) -> dict | None:
    """Mean over seeds of one number per seed, with Student's t interval ({value, ci_low, ci_high, n}).

    None values (a seed without the number) are left out; None when no value remains; the
    interval is null with a single seed (one run says nothing about seed-to-seed spread).
    """
    from scipy import stats

    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size < 2:
        return {"value": mean, "ci_low": None, "ci_high": None, "n": 1}
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return {"value": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(x.size)}


# ---------------------------------------------------------------- verdicts


def equivalence_verdict(ci_low: float | None, ci_high: float | None, margin: float) -> str:
    """Verdict on a difference (FP8 - BF16) from its CI and an equivalence margin.

    parity: the whole CI lies inside [-margin, +margin] (an equivalence test, not "the point
    estimate is small"); better / worse: the CI excludes zero on that side; else inconclusive.
    """
    if ci_low is None or ci_high is None:
        return "inconclusive"
    if -margin <= ci_low and ci_high <= margin:
        return "parity"
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "inconclusive"


def ratio_verdict(
    ci_low: float | None, ci_high: float | None, *, higher_is_better: bool = True, tolerance: float = 0.02
) -> str:
    """Verdict on a ratio FP8 / BF16 (or BF16 / FP8 for speed-up) from its CI.

    better / worse: the CI lies entirely above / below 1 (beyond `tolerance` on the good side);
    parity: the CI lies inside [1 - tolerance, 1 + tolerance]; else inconclusive.
    """
    if ci_low is None or ci_high is None:
        return "inconclusive"
    if 1 - tolerance <= ci_low and ci_high <= 1 + tolerance:
        return "parity"
    above, below = ci_low > 1, ci_high < 1
    if above or below:
        return "better" if above == higher_is_better else "worse"
    return "inconclusive"


def combine_verdicts(verdicts: Sequence[str | None]) -> str:
    """Overall verdict of several metrics: any worse -> worse; any inconclusive or missing ->
    inconclusive; any better (and the rest parity) -> better; all parity -> parity."""
    if not verdicts:
        return "inconclusive"
    if "worse" in verdicts:
        return "worse"
    if any(v not in ("parity", "better") for v in verdicts):
        return "inconclusive"
    return "better" if "better" in verdicts else "parity"
