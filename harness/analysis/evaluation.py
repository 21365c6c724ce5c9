"""Eval parity of one pair of runs: per benchmark, the paired avg@k delta, its verdict, lengths and power.

The verdict is an equivalence test (parity only when the whole 95% CI lies inside +/- margin);
it is *not conclusive* whatever the CI when many samples hit max_tokens or the arms are cut off
at different rates (`eval.max_truncation_rate`, `eval.max_truncation_gap`): a score gap caused by
truncation says nothing about FP8's numerics. Every benchmark also gets the smallest margin its
design can resolve (harness.analysis.power), and is marked underpowered when the suite's is below.
"""

from __future__ import annotations

from harness.analysis import rundata
from harness.analysis.pairing import Pair
from harness.analysis.power import observed_resolvable_margin
from harness.analysis.results import BenchEval, Estimate, EvalLengths
from harness.analysis.stats import N_RESAMPLES, equivalence_verdict, paired_delta_ci
from harness.errors import InvalidInput


def truncation_problem(base: EvalLengths, cand: EvalLengths, eval_config) -> str | None:
    """Why truncation makes this benchmark's verdict not conclusive, or None (also when unmeasured)."""
    rates = {"BF16": base.truncation_rate, "FP8": cand.truncation_rate}
    limit = eval_config.max_truncation_rate
    if limit is not None:
        over = [f"{arm} {rate:.1%}" for arm, rate in rates.items() if rate is not None and rate > limit]
        if over:
            return (f"truncated: {', '.join(over)} of samples hit max_tokens, above eval.max_truncation_rate "
                    f"{limit:.1%}; raise the benchmark's max_tokens")  # fmt: skip
    gap_limit = eval_config.max_truncation_gap
    if gap_limit is not None and None not in rates.values():
        gap = rates["FP8"] - rates["BF16"]
        if abs(gap) > gap_limit:
            return (f"truncation differs: FP8 {rates['FP8']:.1%} vs BF16 {rates['BF16']:.1%} of samples hit "
                    f"max_tokens (gap {gap:+.1%}, eval.max_truncation_gap {gap_limit:.1%}); the score gap may be "
                    "a length gap")  # fmt: skip
    return None


def compare_eval(pair: Pair, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict[str, BenchEval]:
    """Every benchmark both runs of a pair were evaluated on."""
    eval_config = pair.candidate.spec.eval
    margin = eval_config.margin_points
    out = {}
    base_benches = set(rundata.benchmarks(pair.baseline.dir))
    for bench in rundata.benchmarks(pair.candidate.dir):
        if bench not in base_benches:
            continue
        base_rows = rundata.read_samples(pair.baseline.dir, bench)
        cand_rows = rundata.read_samples(pair.candidate.dir, bench)
        base_pp, cand_pp = rundata.per_problem_scores(base_rows), rundata.per_problem_scores(cand_rows)
        if set(base_pp.index) != set(cand_pp.index):
            only = sorted(set(base_pp.index) ^ set(cand_pp.index))[:3]
            raise InvalidInput(
                f"eval/{bench}: {pair.candidate.dir.path} and {pair.baseline.dir.path} scored different problems "
                f"(e.g. {', '.join(only)}); evaluate both arms on the same problems (same limit and data)"
            )
        delta = paired_delta_ci(cand_pp.values * 100, base_pp.values * 100, seed=seed, n_resamples=n_resamples)
        k = int(cand_rows.groupby("problem_id").size().max())
        base_len = EvalLengths(**rundata.eval_lengths(base_rows, rundata.read_eval_summary(pair.baseline.dir, bench)))
        cand_len = EvalLengths(**rundata.eval_lengths(cand_rows, rundata.read_eval_summary(pair.candidate.dir, bench)))
        ci_verdict = equivalence_verdict(delta.ci_low, delta.ci_high, margin)
        problem = truncation_problem(base_len, cand_len, eval_config)
        resolvable = observed_resolvable_margin(base_rows, cand_rows, k)
        out[bench] = BenchEval(
            k=k,
            n_problems=len(cand_pp),
            baseline_avg_at_k=float(base_rows["score"].mean() * 100),
            candidate_avg_at_k=float(cand_rows["score"].mean() * 100),
            delta=Estimate(**delta.as_dict()),
            margin_points=margin,
            verdict="inconclusive" if problem else ci_verdict,
            ci_verdict=ci_verdict,
            not_conclusive=problem,
            baseline_lengths=base_len,
            candidate_lengths=cand_len,
            resolvable_margin_points=resolvable,
            underpowered=margin < resolvable,
        )
    return out
