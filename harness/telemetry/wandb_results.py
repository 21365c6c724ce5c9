"""The end of `harness run` with the W&B logger: what the comparison found, into every W&B run.

Training logs steps and summary.json (wandb_logger.py); speed-up, memory, loss parity and eval
scores exist only once every arm is trained and evaluated. So at the end of `harness run` each run
that logged to W&B is opened once more (same id: one more segment of the same W&B run) for its
summary values (run_results) and the suite's HTML report as an artifact. No step is logged in
that segment, so the history stays metrics.jsonl's. An earlier results segment of the same run
(an earlier `harness run` of the suite) is replaced in offline mode.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.errors import InvalidInput
from harness.store import RunDir, read_json, suite_runs
from harness.telemetry.wandb_logger import (
    close_wandb,
    open_run,
    read_state,
    remove_offline_folders,
    segment_folder,
    write_state,
)

REPORT_ARTIFACT_TYPE = "report"


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in values.items() if v is not None}


def eval_summaries(run_dir: RunDir) -> dict[str, dict]:
    """eval/<bench>/summary.json of a run, by benchmark."""
    if not run_dir.eval_dir.is_dir():
        return {}
    found = sorted(run_dir.eval_dir.glob("*/summary.json"))
    return {p.parent.name: read_json(p, f"eval/{p.parent.name}/summary.json") for p in found}


def run_results(run_id: str, parity: dict, evals: dict[str, dict], gate_passed: bool | None = None) -> dict:
    """W&B summary values of one run: its eval scores, and, for an FP8 arm, its comparison row."""
    out: dict[str, Any] = {}
    for bench, summary in evals.items():
        out.update(_flat(f"eval/{bench}/", {k: summary.get(k) for k in ("avg_at_k", "pass_at_1", "k", "n_problems")}))
    for row in parity.get("comparisons", []):
        if row["candidate"]["run_id"] != run_id:
            continue
        speed, memory = row.get("speed") or {}, row.get("memory") or {}
        loss, energy, speedup = row.get("loss") or {}, row.get("energy") or {}, speed.get("speedup") or {}
        alloc = memory.get("alloc_ratio")
        out.update(_flat("parity/", {
            "verdict": row.get("verdict"), "status": row.get("status"), "baseline_run_id": row["baseline"]["run_id"],
            "speedup": speedup.get("value"), "speedup_ci_low": speedup.get("ci_low"),
            "speedup_ci_high": speedup.get("ci_high"), "time_reduction_pct": speed.get("time_reduction_pct"),
            "throughput_gain_pct": speed.get("throughput_gain_pct"),
            "memory_ratio": alloc if alloc is not None else memory.get("nvml_ratio"),
            "memory_reduction_pct": memory.get("memory_reduction_pct"), "nvml_memory_ratio": memory.get("nvml_ratio"),
            "energy_per_token_ratio": energy.get("per_token_ratio"),
            "loss_mean_rel_error": loss.get("mean_rel_error"), "loss_max_rel_error": loss.get("max_rel_error"),
            "loss_mean_signed_rel_error": loss.get("mean_signed_rel_error"),
        }))  # fmt: skip
        for bench, result in (row.get("eval") or {}).items():
            delta = result.get("delta") or {}
            out.update(_flat(f"parity/eval/{bench}/", {
                "delta": delta.get("value"), "delta_ci_low": delta.get("ci_low"),
                "delta_ci_high": delta.get("ci_high"), "verdict": result.get("verdict"),
            }))  # fmt: skip
    if gate_passed is not None:
        out["parity/gate_passed"] = gate_passed
    return out


def publish_results(suite_dir: Path, parity: dict, report_html: Path, gate_passed: bool | None = None) -> list[str]:
    """Summary values and the report artifact into the W&B run of every run that has one; their run ids.

    A W&B run that cannot be opened is reported on stderr and skipped, so it never changes the exit
    code the gate decided."""
    import wandb

    published = []
    for run_dir in suite_runs(suite_dir):
        state = read_state(run_dir)
        if state is None:  # trained without the W&B logger (or imported)
            continue
        spec = run_dir.read_spec()
        try:
            run = open_run(run_dir, spec, state["id"], state.get("mode") or "offline")
        except InvalidInput as exc:  # e.g. online and the network is gone: the gate's verdict still stands
            print(f"W&B: {exc}", file=sys.stderr)
            continue
        try:
            run.summary.update(run_results(spec.run_id, parity, eval_summaries(run_dir), gate_passed))
            artifact = wandb.Artifact(f"{spec.suite}-report", type=REPORT_ARTIFACT_TYPE,
                                      metadata={"suite": spec.suite, "generated_at": parity.get("generated_at")})  # fmt: skip
            artifact.add_file(str(report_html), name="index.html")
            run.log_artifact(artifact)
        finally:
            run.finish()
        folder = segment_folder(run)
        write_state(run_dir, {**state, "results": folder})
        if state.get("results") not in (None, folder) and state.get("mode") == "offline":
            remove_offline_folders(run_dir, [state["results"]])  # the earlier results segment: replaced
        published.append(spec.run_id)
    close_wandb()
    return published
