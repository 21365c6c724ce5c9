"""Loss parity: how far the FP8 loss curve strays from the BF16 one (pure functions).

Both curves are smoothed with an exponential moving average (raw per-step losses are noisy
in the same way in both arms but not at the same steps), warm-up steps are dropped, and the
relative error |L_fp8 - L_bf16| / L_bf16 is taken per step and averaged over windows.
DeepSeek-V3 reports its FP8 relative loss error "consistently below 0.25%"; we report the
mean and max over windows and the fraction of windows under that bar.

The signed mean, (L_fp8 - L_bf16) / L_bf16 averaged the same way, says on which side FP8 ran:
positive when its loss was higher. Early in training one seed's FP8 curve can sit a steady 1%
above BF16 and another seed's 0.5% below (docs/PERFORMANCE.md, H200, 1.5B shape), so a
systematic cost of FP8 shows only as a signed mean above zero across seeds
(compare.suite_summary's `loss_bias`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEEPSEEK_V3_BAR = 0.0025  # 0.25% relative loss error
EMA_ALPHA = 0.1  # weight of the newest step in the smoothed curve
WINDOW_STEPS = 10


def ema(values: Sequence[float], alpha: float = EMA_ALPHA) -> np.ndarray:
    """Bias-corrected exponential moving average (so the first steps are not pulled to 0)."""
    out = np.empty(len(values))
    avg, weight = 0.0, 0.0
    for i, value in enumerate(values):
        avg = (1 - alpha) * avg + alpha * value
        weight = (1 - alpha) * weight + alpha
        out[i] = avg / weight
    return out


def _series(steps: Sequence[int], losses: Sequence[float | None]) -> dict[int, float]:
    return {int(s): float(v) for s, v in zip(steps, losses, strict=True) if v is not None and math.isfinite(v)}


def loss_parity(
    baseline_steps: Sequence[int],
    baseline_loss: Sequence[float | None],
    candidate_steps: Sequence[int],
    candidate_loss: Sequence[float | None],
    *,
    warmup_steps: int = 0,
    window_steps: int = WINDOW_STEPS,
    alpha: float = EMA_ALPHA,
    bar: float = DEEPSEEK_V3_BAR,
) -> dict:
    """Relative loss error of the candidate (FP8) against the baseline (BF16).

    Only steps present in both curves count; smoothing runs over those shared steps, and steps
    <= warmup_steps are dropped afterwards (the EMA needs them to start). Returns the window
    statistics, each window's errors (what the statistics and the report's figure are made of)
    and the per-step arrays; None statistics when no step remains.
    """
    base, cand = _series(baseline_steps, baseline_loss), _series(candidate_steps, candidate_loss)
    shared = sorted(set(base) & set(cand))
    result = {
        "warmup_steps": warmup_steps,
        "window_steps": window_steps,
        "ema_alpha": alpha,
        "bar": bar,
        "steps_compared": 0,
        "mean_rel_error": None,
        "mean_signed_rel_error": None,
        "max_rel_error": None,
        "final_rel_error": None,
        "fraction_windows_under_bar": None,
        "n_windows": 0,
        "baseline_final_loss": base[max(base)] if base else None,
        "candidate_final_loss": cand[max(cand)] if cand else None,
        "window_end_steps": [],  # last step of each window, and its mean |error| and signed error
        "window_rel_error": [],
        "window_signed_rel_error": [],
        "steps": [],
        "rel_error": [],
    }
    if not shared:
        return result
    smooth_base = ema([base[s] for s in shared], alpha)
    smooth_cand = ema([cand[s] for s in shared], alpha)
    keep = np.asarray(shared) > warmup_steps
    steps = np.asarray(shared)[keep]
    if steps.size == 0:
        return result
    signed = (smooth_cand[keep] - smooth_base[keep]) / np.abs(smooth_base[keep])
    rel = np.abs(signed)
    windows = [rel[i : i + window_steps].mean() for i in range(0, rel.size, window_steps)]
    signed_windows = [signed[i : i + window_steps].mean() for i in range(0, signed.size, window_steps)]
    result.update(
        steps_compared=int(steps.size),
        mean_rel_error=float(np.mean(windows)),
        mean_signed_rel_error=float(np.mean(signed_windows)),
        max_rel_error=float(np.max(windows)),
        final_rel_error=float(windows[-1]),
        fraction_windows_under_bar=float(np.mean([w < bar for w in windows])),
        n_windows=len(windows),
        window_end_steps=[
            int(steps[min(i + window_steps, steps.size) - 1]) for i in range(0, steps.size, window_steps)
        ],
        window_rel_error=[float(w) for w in windows],
        window_signed_rel_error=[float(w) for w in signed_windows],
        steps=[int(s) for s in steps],
        rel_error=[float(r) for r in rel],
    )
    return result


def loss_verdict(stats: dict) -> str:
    """parity: every window under the bar; worse: the mean over windows is above it;
    inconclusive: no data, or some windows over the bar while the mean is under it."""
    if stats.get("max_rel_error") is None:
        return "inconclusive"
    if stats["max_rel_error"] < stats["bar"]:
        return "parity"
    if stats["mean_rel_error"] > stats["bar"]:
        return "worse"
    return "inconclusive"
