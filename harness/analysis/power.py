"""What an evaluation design can resolve: the equivalence margin a paired CI can fit inside (pure functions).

The parity verdict needs the 95% CI of FP8 - BF16 avg@k to lie inside +/- `eval.margin_points`.
Even for two identical models that CI has a width: per problem, the mean of k samples of each arm
varies by chance, and n problems average that down. Under no difference, per problem i with
score variance v_i per sample (p(1 - p) for pass/fail), the paired difference of the two arms'
k-sample means has variance 2 v_i / k, so the mean over n problems has standard error

    se = sqrt(2 * mean_i(v_i) / (k * n))

and the expected half-width of the 95% CI is 1.96 * se (x 100 for points). A margin below that
half-width cannot be shown even when nothing differs: with 30 AIME problems, k = 32 and solve
rates spread evenly over 0..1 it is about 3.7 points, so a 3-point margin cannot be reached.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
WORST_CASE_VARIANCE = 0.25  # p(1 - p) at p = 0.5: what a plan assumes without a pilot run


def resolvable_margin(mean_variance: float, n_problems: int, k: int) -> float:
    """Expected half-width, in points, of the paired 95% CI of the avg@k difference under no difference."""
    if n_problems <= 0 or k <= 0:
        raise ValueError(f"need problems and samples (got n={n_problems}, k={k})")
    return 100.0 * Z95 * float(np.sqrt(2.0 * mean_variance / (k * n_problems)))


def pooled_problem_variance(baseline: pd.DataFrame, candidate: pd.DataFrame) -> float:
    """Mean over problems of the per-sample score variance, both arms' samples pooled (as if no difference).

    Unbiased per problem (ddof 1 over its 2k samples); for pass/fail scores that is p(1 - p) x 2k / (2k - 1).
    """
    both = pd.concat([baseline[["problem_id", "score"]], candidate[["problem_id", "score"]]])
    per_problem = both.groupby("problem_id")["score"].var(ddof=1).fillna(0.0)
    return float(per_problem.mean()) if len(per_problem) else 0.0


def observed_resolvable_margin(baseline: pd.DataFrame, candidate: pd.DataFrame, k: int) -> float:
    """resolvable_margin with the variance observed in both arms' samples (one row per problem x sample)."""
    n = baseline["problem_id"].nunique()
    return resolvable_margin(pooled_problem_variance(baseline, candidate), n, k)


def planned_margin(n_problems: int, k: int, variance: float = WORST_CASE_VARIANCE) -> float:
    """resolvable_margin before any run, from an assumed per-sample variance (default: the worst case, 0.25)."""
    return resolvable_margin(variance, n_problems, k)


# Problems in each paper benchmark as InfiR2 evaluates it (AIME 2024 and 2025: 30 each; GPQA-Diamond:
# 198; LiveCodeBench v5 in the DeepSeek-R1 window 2024-08-01..2025-02-01: 279) and the local arith
# set's default; a plan without a pilot run counts on these when the suite sets no limit.
PUBLISHED_PROBLEMS = {"aime24": 30, "aime25": 30, "gpqa_diamond": 198, "livecodebench_v5": 279, "arith": 200}


def plan_lines(eval_config) -> list[str]:
    """What `harness plan` says of each benchmark's power, from the suite alone (worst-case variance)."""
    lines = []
    for bench, cfg in eval_config.benchmarks.items():
        n = cfg.limit or PUBLISHED_PROBLEMS.get(bench)
        if n is None:
            lines.append(f"{bench}: number of problems unknown; set eval.benchmarks.{bench}.limit to estimate")
            continue
        resolvable = planned_margin(n, cfg.samples)
        verdict = (
            "below it: at that variance parity could not be shown even for identical models (raise samples or "
            "problems, or the margin; a pilot run's report gives the observed figure)"
            if eval_config.margin_points < resolvable
            else "above it"
        )
        lines.append(f"{bench}: {n} problems x {cfg.samples} samples resolve +/-{resolvable:.1f} points at worst; "
                     f"eval.margin_points +/-{eval_config.margin_points:g} is {verdict}")  # fmt: skip
    return lines
