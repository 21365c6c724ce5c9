"""Steady-state statistics of step records: pure functions, numbers in, numbers out.

Steady state drops the first `warmup_steps` steps of every process segment (the start and each
resume: compilation, allocator growth, cold caches) and every step that wrote a checkpoint.
Each statistic is the median and mean over the steady steps with a 95% percentile-bootstrap
confidence interval of the median (seeded, so the same records always give the same interval).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
STAT_FIELDS = ("step_time_s", "tokens_per_s", "mfu")


def steady_records(records: Sequence[dict], warmup_steps: int, segment_starts: Iterable[int] = (0,)) -> list[dict]:
    """Records that count for statistics.

    segment_starts: the step each process segment resumed after (0 for a fresh start); steps
    start+1 .. start+warmup_steps of every segment are warm-up. Checkpoint steps are dropped.
    """
    warm = set()
    for start in segment_starts:
        warm.update(range(start + 1, start + warmup_steps + 1))
    return [r for r in records if r["step"] not in warm and not r.get("checkpoint")]


def finite(values: Iterable[float | None]) -> np.ndarray:
    """The values that are real numbers (drops None, NaN and inf)."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return np.asarray(kept, dtype=float)


def bootstrap_median_ci(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median; deterministic for a given seed.

    Equivalent to scipy.stats.bootstrap(..., method="percentile") up to the random draws.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    # resample in chunks so long runs (tens of thousands of steps) stay within a few MB
    medians = []
    chunk = max(1, 2_000_000 // data.size)
    for begin in range(0, n_resamples, chunk):
        count = min(chunk, n_resamples - begin)
        idx = rng.integers(0, data.size, size=(count, data.size))
        medians.append(np.median(data[idx], axis=1))
    dist = np.concatenate(medians)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(dist, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def describe(values: Iterable[float | None], **bootstrap_kwargs) -> dict[str, float | None]:
    """{median, median_ci_low, median_ci_high, mean} of the finite values; all None when there are none.

    The interval bounds the median (a percentile bootstrap of it), and its names say so: the mean
    has no interval here and can lie outside it.
    """
    data = finite(values)
    if data.size == 0:
        return {"median": None, "median_ci_low": None, "median_ci_high": None, "mean": None}
    low, high = bootstrap_median_ci(data, **bootstrap_kwargs)
    return {
        "median": float(np.median(data)),
        "median_ci_low": low,
        "median_ci_high": high,
        "mean": float(np.mean(data)),
    }


def max_or_none(values: Iterable[float | None]) -> float | None:
    data = finite(values)
    return float(data.max()) if data.size else None


def step_windows(records: Sequence[dict]) -> list[tuple[float, float]]:
    """(start, end) of each step on the telemetry clock: end is time_s, start is end - step_time_s."""
    return [(r["time_s"] - r["step_time_s"], r["time_s"]) for r in records if r.get("step_time_s") is not None]


def energy_in_windows(
    times_s: Sequence[float], energy_j: Sequence[float], windows: Sequence[tuple[float, float]]
) -> float:
    """Energy spent inside the windows, from one GPU's cumulative energy samples.

    The cumulative counter is interpolated linearly at each window's edges (i.e. the average
    power between two samples is assumed constant between them).
    """
    if len(times_s) < 2:
        raise ValueError("need at least two energy samples")
    t = np.asarray(times_s, dtype=float)
    e = np.asarray(energy_j, dtype=float)
    starts = np.array([w[0] for w in windows], dtype=float)
    ends = np.array([w[1] for w in windows], dtype=float)
    return float(np.sum(np.interp(ends, t, e) - np.interp(starts, t, e)))


def build_summary(
    records: Sequence[dict],
    *,
    identity: dict,
    status: str,
    reason: str | None,
    warmup_steps: int,
    segment_starts: Iterable[int] = (0,),
    totals: dict | None = None,
) -> dict:
    """summary.json from the run's step records (docs/ARCHITECTURE.md, docs/TELEMETRY.md).

    identity: run_id, stage, arm, recipe, emulated, device, world_size (and any extra context).
    totals: rank-reduced end-of-run numbers: nvml_peak_memory_bytes, energy_j (whole run),
    steady_energy_j (inside the steady steps' windows), rss_peak_bytes; missing ones are None.
    energy_per_token_j = steady_energy_j / tokens of the steady steps.
    """
    totals = totals or {}
    steady = steady_records(records, warmup_steps, segment_starts)
    steady_tokens = sum(r.get("tokens") or 0 for r in steady)
    steady_energy = totals.get("steady_energy_j")
    losses = [r.get("loss") for r in records if r.get("loss") is not None]
    summary = dict(identity)
    summary.update(
        status=status,
        reason=reason,
        steps=len(records),
        steady_steps=len(steady),
        warmup_steps=warmup_steps,
        tokens_total=sum(r.get("tokens") or 0 for r in records),
        padding_fraction=_padding_fraction(records),
        final_loss=losses[-1] if losses else None,
        peak_alloc_bytes=_int_or_none(max_or_none(r.get("peak_alloc_bytes") for r in records)),
        peak_reserved_bytes=_int_or_none(max_or_none(r.get("peak_reserved_bytes") for r in records)),
        nvml_peak_memory_bytes=totals.get("nvml_peak_memory_bytes"),
        energy_j=totals.get("energy_j"),
        energy_per_token_j=steady_energy / steady_tokens if steady_energy is not None and steady_tokens else None,
        rss_peak_bytes=totals.get("rss_peak_bytes"),
    )
    for name in STAT_FIELDS:
        summary[name] = describe(r.get(name) for r in steady)
    return summary


def _padding_fraction(records: list[dict]) -> float | None:
    """Share of the processed tokens that were padding, over the whole run (None when not recorded)."""
    processed = sum(r.get("processed_tokens") or 0 for r in records)
    if not processed:
        return None
    return 1.0 - sum(r.get("tokens") or 0 for r in records) / processed


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)
