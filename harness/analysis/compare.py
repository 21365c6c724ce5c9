"""`harness compare`: pair a suite's arms, measure FP8 against BF16, write parity.json.

Per FP8 arm and (stage, seed): speed-up with a bootstrap CI, memory and energy ratios, loss
parity, eval deltas with paired bootstrap CIs, a verdict per metric and overall. Failed arms
are listed with their reason, never dropped. The schema is documented in docs/REPORT.md.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean

from harness.analysis import rundata
from harness.analysis.control import attach_noise_floor
from harness.analysis.evaluation import compare_eval
from harness.analysis.loss import loss_parity, loss_verdict
from harness.analysis.pairing import Pair, Run, load_runs, pair_runs
from harness.analysis.results import (
    DIVERGED_LOSS,
    EMULATED_COST,
    PARITY_FILE,
    SCHEMA_VERSION,
    ArmSummary,
    Comparison,
    Energy,
    Estimate,
    FailedRun,
    LossParity,
    Memory,
    Parity,
    PeakMemory,
    RunInfo,
    SeedMean,
    Speed,
    SteadySteps,
    SummaryScores,
    Verdicts,
    diverged_cost,
    read_parity,
    write_parity,
)
from harness.analysis.stats import (
    N_RESAMPLES,
    combine_verdicts,
    median_ci,
    ratio_of_medians_ci,
    ratio_verdict,
    seed_mean_ci,
)
from harness.gate.specs import index_values
from harness.results_index import ResultsIndex, index_path
from harness.run_checks import check_usable_runs, refusal_removes
from harness.suite import GatesConfig

__all__ = ["PARITY_FILE", "SCHEMA_VERSION", "compare_pair", "compare_suite", "suite_summary", "warmup_steps"]


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _pct_change(ratio: float | None) -> float | None:
    return (ratio - 1.0) * 100.0 if ratio is not None else None


def warmup_steps(run: Run) -> int:
    """Steps dropped from loss parity: the larger of telemetry warm-up and LR warm-up."""
    stage, sched = run.spec.stage, run.spec.stage.schedule
    lr_warmup = sched.warmup_steps or 0
    if sched.warmup_fraction and stage.steps:
        lr_warmup = max(lr_warmup, int(sched.warmup_fraction * stage.steps))
    return max(run.spec.telemetry.warmup_steps, lr_warmup)


def _run_info(run: Run) -> RunInfo:
    return RunInfo(run_id=run.spec.run_id, run_dir=str(run.dir.path), arm=run.spec.arm, recipe=run.spec.recipe,
                   status=run.status, reason=run.manifest.get("reason"), emulated=run.emulated,
                   label=run.manifest.get("label"))  # fmt: skip


def _speed(base: list[dict], cand: list[dict], seed: int, n_resamples: int) -> Speed:
    base_t, cand_t = rundata.column(base, "step_time_s"), rundata.column(cand, "step_time_s")
    out = Speed(steady_steps=SteadySteps(baseline=len(base_t), candidate=len(cand_t)))
    if base_t and cand_t:
        kw = {"seed": seed, "n_resamples": n_resamples}
        speedup = ratio_of_medians_ci(base_t, cand_t, **kw)
        out.speedup = Estimate(**speedup.as_dict())
        out.baseline_step_time_s = Estimate(**median_ci(base_t, **kw).as_dict())
        out.candidate_step_time_s = Estimate(**median_ci(cand_t, **kw).as_dict())
        out.time_reduction_pct = (1.0 - 1.0 / speedup.value) * 100.0
    base_tps, cand_tps = rundata.column(base, "tokens_per_s"), rundata.column(cand, "tokens_per_s")
    if base_tps and cand_tps:
        out.baseline_tokens_per_s = float(sorted(base_tps)[len(base_tps) // 2])
        out.candidate_tokens_per_s = float(sorted(cand_tps)[len(cand_tps) // 2])
        out.throughput_gain_pct = _pct_change(_ratio(out.candidate_tokens_per_s, out.baseline_tokens_per_s))
    return out


def _memory(pair: Pair, base_records: list[dict], cand_records: list[dict]) -> tuple[Memory, Energy]:
    base_sum, cand_sum = rundata.read_summary_safe(pair.baseline.dir), rundata.read_summary_safe(pair.candidate.dir)
    base = PeakMemory(**rundata.peak_memory(pair.baseline.dir, base_sum, base_records))
    cand = PeakMemory(**rundata.peak_memory(pair.candidate.dir, cand_sum, cand_records))
    memory = Memory(
        alloc_ratio=_ratio(cand.peak_alloc_bytes, base.peak_alloc_bytes),
        reserved_ratio=_ratio(cand.peak_reserved_bytes, base.peak_reserved_bytes),
        nvml_ratio=_ratio(cand.nvml_peak_memory_bytes, base.nvml_peak_memory_bytes),
        rss_ratio=_ratio(cand.rss_peak_bytes, base.rss_peak_bytes),
        baseline=base,
        candidate=cand,
    )
    headline = memory.headline_ratio
    memory.memory_reduction_pct = (1.0 - headline) * 100.0 if headline is not None else None
    energy_base = rundata.finite(base_sum.get("energy_per_token_j"))
    energy_cand = rundata.finite(cand_sum.get("energy_per_token_j"))
    energy = Energy(per_token_ratio=_ratio(energy_cand, energy_base), baseline_j_per_token=energy_base,
                    candidate_j_per_token=energy_cand)  # fmt: skip
    return memory, energy


def compare_pair(pair: Pair, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> Comparison:
    """All parity metrics of one candidate run against its baseline run."""
    spec = pair.candidate.spec
    row = Comparison(
        id=pair.label, stage=spec.stage_name, arm=spec.arm, recipe=spec.recipe, seed=spec.seed,
        baseline=_run_info(pair.baseline), candidate=_run_info(pair.candidate),
        emulated=pair.baseline.emulated or pair.candidate.emulated, evaluate=spec.stage.evaluate,
        status="ok", verdict="failed",
    )  # fmt: skip
    broken = [r for r in (pair.baseline, pair.candidate) if not r.usable]
    if broken:
        row.status = "failed"
        row.reason = "; ".join(f"{r.spec.run_id} {r.status}: {r.manifest.get('reason') or 'no reason recorded'}"
                               for r in broken)  # fmt: skip
        return row
    base_all, cand_all = rundata.read_metrics_safe(pair.baseline.dir), rundata.read_metrics_safe(pair.candidate.dir)
    warm = pair.candidate.spec.telemetry.warmup_steps
    row.speed = _speed(rundata.steady_records(base_all, warm), rundata.steady_records(cand_all, warm),
                       seed, n_resamples)  # fmt: skip
    row.memory, row.energy = _memory(pair, base_all, cand_all)
    loss = loss_parity([r["step"] for r in base_all], [r.get("loss") for r in base_all],
                       [r["step"] for r in cand_all], [r.get("loss") for r in cand_all],
                       warmup_steps=warmup_steps(pair.candidate), bar=spec.stage.loss_parity_bar)  # fmt: skip
    row.loss = LossParity(**{k: v for k, v in loss.items() if k not in ("steps", "rel_error")})
    row.eval = compare_eval(pair, seed=seed, n_resamples=n_resamples)
    speedup, memory = row.speed.speedup, row.memory.headline_ratio
    row.verdicts = Verdicts(
        speed=ratio_verdict(speedup.ci_low if speedup else None, speedup.ci_high if speedup else None),
        memory=ratio_verdict(memory, memory, higher_is_better=False) if memory is not None else "inconclusive",
        loss=loss_verdict(loss),
        eval={bench: e.verdict for bench, e in row.eval.items()},
    )
    # Overall = quality (loss and every benchmark); efficiency verdicts are reported beside it.
    row.verdict = combine_verdicts([row.verdicts.loss, *row.verdicts.eval.values()])
    if row.emulated:
        withhold_cost_claims(row)
    elif loss["max_rel_error"] is not None and loss["max_rel_error"] > DIVERGED_LOSS:
        row.cost_diverged = diverged_cost(loss["max_rel_error"])
        row.verdicts.speed = row.verdicts.memory = "inconclusive"
    return row


def withhold_cost_claims(row: Comparison) -> None:
    """An emulated arm's FP8-vs-BF16 speed, memory and energy ratios are nulled and their verdicts
    `not_measured`; each arm's own step times and peaks stay (they are what this machine measured)."""
    row.cost_not_measured = EMULATED_COST
    row.speed.speedup = row.speed.time_reduction_pct = row.speed.throughput_gain_pct = None
    memory = row.memory
    memory.alloc_ratio = memory.reserved_ratio = memory.nvml_ratio = memory.rss_ratio = None
    memory.memory_reduction_pct = None
    row.energy.per_token_ratio = None
    row.verdicts.speed = row.verdicts.memory = "not_measured"


def _avg(values) -> float | None:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def suite_summary(comparisons: list[Comparison]) -> list[ArmSummary]:
    """InfiR2-style headline per (stage, arm), averaged over seeds: time and memory reduction,
    throughput increase, scores of both arms and their delta."""
    groups: dict[tuple[str, str], list[Comparison]] = {}
    for row in comparisons:
        groups.setdefault((row.stage, row.arm), []).append(row)
    out = []
    for (stage, arm), rows in groups.items():
        ok = [r for r in rows if r.status == "ok"]
        benches = sorted({b for r in ok for b in r.eval})
        bias = seed_mean_ci([r.loss.mean_signed_rel_error if r.loss else None for r in ok])
        out.append(ArmSummary(
            stage=stage, arm=arm, recipe=rows[0].recipe, seeds=[r.seed for r in rows],
            failed_seeds=[r.seed for r in rows if r.status != "ok"],
            emulated=any(r.emulated for r in rows),
            time_reduction_pct=_avg(r.speed.time_reduction_pct for r in ok),
            speedup=_avg(r.speed.speedup.value if r.speed.speedup else None for r in ok),
            memory_reduction_pct=_avg(r.memory.memory_reduction_pct for r in ok),
            throughput_increase_pct=_avg(r.speed.throughput_gain_pct for r in ok),
            memory_source=next((r.memory.headline_source for r in ok if r.memory.headline_source), None),
            cost_not_measured=next((r.cost_not_measured for r in rows if r.cost_not_measured), None),
            cost_diverged=next((r.cost_diverged for r in rows if r.cost_diverged), None),
            loss_bias=SeedMean(**bias) if bias is not None else None,
            scores={b: SummaryScores(baseline=_avg(r.eval[b].baseline_avg_at_k for r in ok if b in r.eval),
                                     candidate=_avg(r.eval[b].candidate_avg_at_k for r in ok if b in r.eval),
                                     delta=_avg(r.eval[b].delta.value for r in ok if b in r.eval))
                    for b in benches},
            verdict="failed" if len(ok) < len(rows)
                    else "control" if all(r.control for r in ok)
                    else combine_verdicts([r.verdict for r in ok]),
        ))  # fmt: skip
    return out


def compare_suite(
    suite_dir: Path, gates=None, *, record: bool = True, seed: int = 0, n_resamples: int = N_RESAMPLES
) -> Parity:
    """Pair the suite's runs, write suite_dir/parity.json and record each comparison to the index.

    gates (a harness.suite.GatesConfig or dict) is stored in parity.json so `harness gate
    runs/<suite>` needs nothing else; when None, gates of an earlier parity.json are kept.
    """
    suite_dir = Path(suite_dir)
    with refusal_removes(suite_dir / PARITY_FILE):  # no gate passes on a parity.json of refused runs
        runs = load_runs(suite_dir)
        check_usable_runs(runs)  # each metrics.jsonl whole: steps once each, in order
        pairs = pair_runs(runs)
    comparisons = [compare_pair(p, seed=seed, n_resamples=n_resamples) for p in pairs]
    attach_noise_floor(comparisons)  # BF16 control arms: mark them, give FP8 rows their noise floor
    if gates is not None:
        gates = gates if isinstance(gates, GatesConfig) else GatesConfig.model_validate(gates)
    elif (suite_dir / PARITY_FILE).is_file():
        gates = read_parity(suite_dir / PARITY_FILE).gates
    recorded_at = time.time()
    parity = Parity(
        schema_version=SCHEMA_VERSION,
        suite=runs[0].spec.suite,
        suite_dir=str(suite_dir),
        generated_at=datetime.fromtimestamp(recorded_at, UTC).isoformat(timespec="seconds"),
        recorded_at=recorded_at,
        baseline_arm=pairs[0].baseline.spec.arm,
        margin_points=runs[0].spec.eval.margin_points,
        emulated=any(r.emulated for r in comparisons),
        git_sha=_git_sha(pairs[0].candidate),
        gates=gates,
        comparisons=comparisons,
        failed=[FailedRun(run_id=r.spec.run_id, stage=r.spec.stage_name, arm=r.spec.arm, seed=r.spec.seed,
                          status=r.status, reason=r.manifest.get("reason")) for r in runs if not r.usable],
        summary=suite_summary(comparisons),
    )  # fmt: skip
    write_parity(suite_dir / PARITY_FILE, parity)
    if record:
        record_comparisons(parity, index_path(suite_dir.parent))
    return parity


def _git_sha(run: Run) -> str | None:
    git = run.manifest.get("git")
    return run.manifest.get("git_sha") or (git.get("sha") if isinstance(git, dict) else None)


def record_comparisons(parity: Parity, index_file: Path) -> None:
    """One results-index row per comparison (gate_passed stays null until `harness gate`)."""
    index = ResultsIndex(index_file)
    for row in parity.comparisons:
        index.record_comparison({
            "suite": parity.suite, "stage": row.stage, "seed": row.seed, "arm": row.arm,
            "baseline": row.baseline.arm, "git_sha": parity.git_sha, "recorded_at": parity.recorded_at,
            "metrics": index_values(row),
            "scores": {b: {"baseline": e.baseline_avg_at_k, "candidate": e.candidate_avg_at_k,
                           "delta": e.delta.value} for b, e in row.eval.items()},
            "verdict": row.verdict, "gate_passed": None, "emulated": row.emulated,
        })  # fmt: skip
