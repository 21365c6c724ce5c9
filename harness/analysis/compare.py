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
from harness.analysis.loss import loss_parity, loss_verdict
from harness.analysis.pairing import Pair, Run, load_runs, pair_runs
from harness.analysis.stats import (
    N_RESAMPLES,
    combine_verdicts,
    equivalence_verdict,
    median_ci,
    paired_delta_ci,
    ratio_of_medians_ci,
    ratio_verdict,
    seed_mean_ci,
)
from harness.errors import InvalidInput
from harness.run_checks import check_usable_runs, refusal_removes
from harness.store import ResultsIndex, atomic_write_json, index_path, read_json

SCHEMA_VERSION = 1
PARITY_FILE = "parity.json"


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


def _run_info(run: Run) -> dict:
    return {
        "run_id": run.spec.run_id,
        "run_dir": str(run.dir.path),
        "arm": run.spec.arm,
        "recipe": run.spec.recipe,
        "status": run.status,
        "reason": run.manifest.get("reason"),
        "emulated": run.emulated,
        "label": run.manifest.get("label"),
    }


def _speed(base: list[dict], cand: list[dict], seed: int, n_resamples: int) -> dict:
    base_t, cand_t = rundata.column(base, "step_time_s"), rundata.column(cand, "step_time_s")
    out = {"speedup": None, "time_reduction_pct": None, "throughput_gain_pct": None,
           "baseline_step_time_s": None, "candidate_step_time_s": None,
           "baseline_tokens_per_s": None, "candidate_tokens_per_s": None,
           "steady_steps": {"baseline": len(base_t), "candidate": len(cand_t)}}  # fmt: skip
    if base_t and cand_t:
        kw = {"seed": seed, "n_resamples": n_resamples}
        speedup = ratio_of_medians_ci(base_t, cand_t, **kw)
        out["speedup"] = speedup.as_dict()
        out["baseline_step_time_s"] = median_ci(base_t, **kw).as_dict()
        out["candidate_step_time_s"] = median_ci(cand_t, **kw).as_dict()
        out["time_reduction_pct"] = (1.0 - 1.0 / speedup.value) * 100.0
    base_tps, cand_tps = rundata.column(base, "tokens_per_s"), rundata.column(cand, "tokens_per_s")
    if base_tps and cand_tps:
        out["baseline_tokens_per_s"] = float(sorted(base_tps)[len(base_tps) // 2])
        out["candidate_tokens_per_s"] = float(sorted(cand_tps)[len(cand_tps) // 2])
        out["throughput_gain_pct"] = _pct_change(_ratio(out["candidate_tokens_per_s"], out["baseline_tokens_per_s"]))
    return out


def _memory(pair: Pair, base_records: list[dict], cand_records: list[dict]) -> dict:
    base_sum, cand_sum = rundata.read_summary_safe(pair.baseline.dir), rundata.read_summary_safe(pair.candidate.dir)
    base = rundata.peak_memory(pair.baseline.dir, base_sum, base_records)
    cand = rundata.peak_memory(pair.candidate.dir, cand_sum, cand_records)
    alloc = _ratio(cand["peak_alloc_bytes"], base["peak_alloc_bytes"])
    nvml = _ratio(cand["nvml_peak_memory_bytes"], base["nvml_peak_memory_bytes"])
    headline = alloc if alloc is not None else nvml
    energy_base = rundata.finite(base_sum.get("energy_per_token_j"))
    energy_cand = rundata.finite(cand_sum.get("energy_per_token_j"))
    return {
        "memory": {
            "alloc_ratio": alloc,
            "reserved_ratio": _ratio(cand["peak_reserved_bytes"], base["peak_reserved_bytes"]),
            "nvml_ratio": nvml,
            "memory_reduction_pct": (1.0 - headline) * 100.0 if headline is not None else None,
            "baseline": base,
            "candidate": cand,
        },
        "energy": {
            "per_token_ratio": _ratio(energy_cand, energy_base),
            "baseline_j_per_token": energy_base,
            "candidate_j_per_token": energy_cand,
        },
    }


def _eval(pair: Pair, margin: float, seed: int, n_resamples: int) -> dict:
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
        out[bench] = {
            "k": int(cand_rows.groupby("problem_id").size().max()),
            "n_problems": len(cand_pp),
            "baseline_avg_at_k": float(base_rows["score"].mean() * 100),
            "candidate_avg_at_k": float(cand_rows["score"].mean() * 100),
            "delta": delta.as_dict(),
            "margin_points": margin,
            "verdict": equivalence_verdict(delta.ci_low, delta.ci_high, margin),
        }
    return out


def compare_pair(pair: Pair, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict:
    """All parity metrics of one candidate run against its baseline run."""
    spec = pair.candidate.spec
    row = {
        "id": pair.label, "stage": spec.stage_name, "arm": spec.arm, "recipe": spec.recipe, "seed": spec.seed,
        "baseline": _run_info(pair.baseline), "candidate": _run_info(pair.candidate),
        "emulated": pair.baseline.emulated or pair.candidate.emulated,
        "evaluate": spec.stage.evaluate, "status": "ok", "reason": None,
        "speed": None, "memory": None, "energy": None, "loss": None, "eval": {},
        "verdicts": {}, "verdict": "failed",
    }  # fmt: skip
    broken = [r for r in (pair.baseline, pair.candidate) if not r.usable]
    if broken:
        row["status"] = "failed"
        row["reason"] = "; ".join(f"{r.spec.run_id} {r.status}: {r.manifest.get('reason') or 'no reason recorded'}"
                                  for r in broken)  # fmt: skip
        return row
    base_all, cand_all = rundata.read_metrics_safe(pair.baseline.dir), rundata.read_metrics_safe(pair.candidate.dir)
    warm = pair.candidate.spec.telemetry.warmup_steps
    row["speed"] = _speed(rundata.steady_records(base_all, warm), rundata.steady_records(cand_all, warm),
                          seed, n_resamples)  # fmt: skip
    row.update(_memory(pair, base_all, cand_all))
    loss = loss_parity([r["step"] for r in base_all], [r.get("loss") for r in base_all],
                       [r["step"] for r in cand_all], [r.get("loss") for r in cand_all],
                       warmup_steps=warmup_steps(pair.candidate))  # fmt: skip
    row["loss"] = {k: v for k, v in loss.items() if k not in ("steps", "rel_error")}
    row["eval"] = _eval(pair, spec.eval.margin_points, seed, n_resamples)
    speedup = row["speed"]["speedup"] or {}
    alloc = row["memory"]["alloc_ratio"] if row["memory"]["alloc_ratio"] is not None else row["memory"]["nvml_ratio"]
    row["verdicts"] = {
        "speed": ratio_verdict(speedup.get("ci_low"), speedup.get("ci_high")),
        "memory": ratio_verdict(alloc, alloc, higher_is_better=False) if alloc is not None else "inconclusive",
        "loss": loss_verdict(loss),
        "eval": {bench: e["verdict"] for bench, e in row["eval"].items()},
    }
    # Overall = quality (loss and every benchmark); efficiency verdicts are reported beside it.
    row["verdict"] = combine_verdicts([row["verdicts"]["loss"], *row["verdicts"]["eval"].values()])
    return row


def suite_summary(comparisons: list[dict]) -> list[dict]:
    """InfiR2-style headline per (stage, arm), averaged over seeds: time and memory reduction,
    throughput increase, scores of both arms and their delta."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in comparisons:
        groups.setdefault((row["stage"], row["arm"]), []).append(row)
    out = []
    for (stage, arm), rows in groups.items():
        ok = [r for r in rows if r["status"] == "ok"]

        def avg(values):
            values = [v for v in values if v is not None]
            return mean(values) if values else None

        benches = sorted({b for r in ok for b in r["eval"]})
        out.append({
            "stage": stage, "arm": arm, "recipe": rows[0]["recipe"], "seeds": [r["seed"] for r in rows],
            "failed_seeds": [r["seed"] for r in rows if r["status"] != "ok"],
            "emulated": any(r["emulated"] for r in rows),
            "time_reduction_pct": avg(r["speed"]["time_reduction_pct"] for r in ok),
            "speedup": avg((r["speed"]["speedup"] or {}).get("value") for r in ok),
            "memory_reduction_pct": avg(r["memory"]["memory_reduction_pct"] for r in ok),
            "throughput_increase_pct": avg(r["speed"]["throughput_gain_pct"] for r in ok),
            "loss_bias": seed_mean_ci([(r.get("loss") or {}).get("mean_signed_rel_error") for r in ok]),
            "scores": {b: {"baseline": avg(r["eval"][b]["baseline_avg_at_k"] for r in ok if b in r["eval"]),
                           "candidate": avg(r["eval"][b]["candidate_avg_at_k"] for r in ok if b in r["eval"]),
                           "delta": avg(r["eval"][b]["delta"]["value"] for r in ok if b in r["eval"])}
                       for b in benches},
            "verdict": "failed" if len(ok) < len(rows)
                       else "control" if all(r.get("control") for r in ok)
                       else combine_verdicts([r["verdict"] for r in ok]),
        })  # fmt: skip
    return out


def compare_suite(
    suite_dir: Path, gates=None, *, record: bool = True, seed: int = 0, n_resamples: int = N_RESAMPLES
) -> dict:
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
        gates = gates if isinstance(gates, dict) else gates.model_dump(mode="json")
    elif (suite_dir / PARITY_FILE).is_file():
        gates = read_json(suite_dir / PARITY_FILE, PARITY_FILE).get("gates")
    recorded_at = time.time()
    parity = {
        "schema_version": SCHEMA_VERSION,
        "suite": runs[0].spec.suite,
        "suite_dir": str(suite_dir),
        "generated_at": datetime.fromtimestamp(recorded_at, UTC).isoformat(timespec="seconds"),
        "recorded_at": recorded_at,
        "baseline_arm": pairs[0].baseline.spec.arm,
        "margin_points": runs[0].spec.eval.margin_points,
        "emulated": any(r["emulated"] for r in comparisons),
        "git_sha": _git_sha(pairs[0].candidate),
        "gates": gates,
        "comparisons": comparisons,
        "failed": [{"run_id": r.spec.run_id, "stage": r.spec.stage_name, "arm": r.spec.arm, "seed": r.spec.seed,
                    "status": r.status, "reason": r.manifest.get("reason")} for r in runs if not r.usable],
        "summary": suite_summary(comparisons),
    }  # fmt: skip
    atomic_write_json(suite_dir / PARITY_FILE, parity)
    if record:
        record_comparisons(parity, index_path(suite_dir.parent))
    return parity


def _git_sha(run: Run) -> str | None:
    git = run.manifest.get("git")
    return run.manifest.get("git_sha") or (git.get("sha") if isinstance(git, dict) else None)


def record_comparisons(parity: dict, index_file: Path) -> None:
    """One results-index row per comparison (gate_passed stays null until `harness gate`)."""
    index = ResultsIndex(index_file)
    for row in parity["comparisons"]:
        memory = row["memory"] or {}
        index.record_comparison({
            "suite": parity["suite"], "stage": row["stage"], "seed": row["seed"], "arm": row["arm"],
            "baseline": row["baseline"]["arm"], "git_sha": parity.get("git_sha"),
            "recorded_at": parity["recorded_at"],
            "speedup": ((row["speed"] or {}).get("speedup") or {}).get("value"),
            "memory_ratio": memory.get("alloc_ratio") if memory.get("alloc_ratio") is not None
            else memory.get("nvml_ratio"),
            "loss_rel_error": (row["loss"] or {}).get("max_rel_error"),
            "scores": {b: {"baseline": e["baseline_avg_at_k"], "candidate": e["candidate_avg_at_k"],
                           "delta": e["delta"]["value"]} for b, e in row["eval"].items()},
            "verdict": row["verdict"], "gate_passed": None,
        })  # fmt: skip
