"""Synthetic suite run directories with known numbers, for tests and report demos.

Everything written here is made up and labelled so (manifest "synthetic": true, host
"synthetic"): it exercises compare, report and gate without a GPU. Default numbers follow
InfiR2's 1.5B / 32k row (3170 -> 2950 ms per step, 57.8 -> 51.7 GB) so the report looks like
a real one; they are not measurements.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.recipes import is_emulated
from harness.store import RunDir, atomic_write_json
from harness.suite import Suite, plan

GB = 1e9


def synthetic_suite(name: str = "synth", arms: dict[str, str] | None = None, seeds: Sequence[int] = (0,),
                    stages: Sequence[str] = ("cpt",), steps: int = 60, margin_points: float = 3.0,
                    gates: dict | None = None) -> Suite:  # fmt: skip
    """A small valid Suite (tiny model) whose plan() gives the run specs."""
    stage = {
        "kind": "cpt", "data": {"path": "builtin:stdlib"}, "seq_len": 128, "global_batch_size": 8,
        "micro_batch_size": 4, "steps": steps, "optim": {"lr": 3e-3}, "schedule": {"kind": "cosine", "warmup_steps": 5},
    }  # fmt: skip
    return Suite.model_validate({
        "name": name, "seeds": list(seeds), "model": {"preset": "tiny"},
        "arms": arms or {"bf16": "bf16", "fp8": "te:blockwise"},
        "stages": {s: dict(stage, kind="cpt" if i == 0 else "sft") for i, s in enumerate(stages)},
        "eval": {"backend": "transformers", "margin_points": margin_points, "benchmarks": {"aime24": {"samples": 4}}},
        "telemetry": {"warmup_steps": 3}, "gates": gates or {},
    })  # fmt: skip


def write_synthetic_suite(
    runs_dir: Path,
    suite: Suite | None = None,
    *,
    step_time_s: dict[str, float] | None = None,
    loss_offset: dict[str, float] | None = None,
    peak_alloc_gb: dict[str, float] | None = None,
    accuracy_shift: dict[str, float] | None = None,
    n_problems: int = 30,
    k: int = 4,
    failed: dict[str, str] | None = None,
    with_nvml: bool = True,
    output_text: str = "The answer is 42.",
    versions: dict[str, dict[str, str]] | None = None,
    git_sha: str = "0123456789abcdef",
    seed: int = 0,
    on_cpu: bool = False,
    lengths: dict[str, tuple[int, float]] | None = None,
) -> Path:
    """Write runs_dir/<suite>/<run_id>/ for every planned run and return the suite folder.

    Per arm: step_time_s (mean seconds), loss_offset (relative, added to a shared curve),
    peak_alloc_gb, accuracy_shift (added to each problem's solve rate), failed (run_id -> reason),
    versions (arm -> {"torch": ...}) to override the software versions in the manifest. on_cpu: runs
    as a CPU machine records them, without allocator or NVML peaks; peak_alloc_gb is then the peak RSS.
    lengths (arm -> (mean output tokens, truncation rate)): write the eval's output_tokens and
    finish_reason columns and summary fields, as the eval does since it records lengths.
    """
    with_nvml = with_nvml and not on_cpu
    suite = suite or synthetic_suite()
    step_time_s = step_time_s or {"bf16": 3.170, "fp8": 2.950}
    peak_alloc_gb = peak_alloc_gb or {"bf16": 57.8, "fp8": 51.7}
    loss_offset, accuracy_shift = loss_offset or {}, accuracy_shift or {}
    failed, versions = failed or {}, versions or {}
    suite_dir = Path(runs_dir) / suite.name
    for spec in plan(suite):
        run = RunDir(suite_dir / spec.run_id)
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.spec, spec.model_dump(mode="json"))
        # One rng per (seed, stage) for shared structure, one per run for its own noise.
        shared = np.random.default_rng([seed, spec.seed, sum(map(ord, spec.stage_name))])
        own = np.random.default_rng([seed, spec.seed, sum(map(ord, spec.stage_name)), sum(map(ord, spec.arm))])
        reason = failed.get(spec.run_id)
        n_steps = spec.stage.steps // 2 if reason else spec.stage.steps
        base_curve = 2.0 + 8.0 * np.exp(-np.arange(1, n_steps + 1) / 12.0) + shared.normal(0, 0.05, n_steps)
        losses = base_curve * (1 + loss_offset.get(spec.arm, 0.0)) + own.normal(0, 0.002, n_steps)
        mean_t = step_time_s.get(spec.arm, 3.0)
        times = mean_t * (1 + own.normal(0, 0.01, n_steps))
        times[:3] *= 3  # warm-up steps are slow (compilation, allocator growth)
        tokens = spec.stage.global_batch_size * spec.stage.seq_len
        alloc = peak_alloc_gb.get(spec.arm, 50.0) * GB
        rss = alloc if on_cpu else 2 * GB
        alloc = None if on_cpu else alloc
        lines = []
        for i in range(n_steps):
            step = i + 1
            lines.append(json.dumps({
                "step": step, "loss": float(losses[i]), "lr": 3e-3, "grad_norm": 1.0, "tokens": tokens,
                "step_time_s": float(times[i]), "tokens_per_s": tokens / float(times[i]), "mfu": None,
                "peak_alloc_bytes": alloc and alloc * (0.9 if step == 1 else 1.0),
                "peak_reserved_bytes": alloc and alloc * 1.05,
                "checkpoint": step % 20 == 0, "time_s": float(times[: i + 1].sum()),
            }))  # fmt: skip
        run.metrics.write_text("\n".join(lines) + "\n")
        if with_nvml:
            _write_nvml(run, n_steps, mean_t, alloc, own)
        else:
            run.nvml.write_text(
                "time_s,gpu,memory_used_bytes,utilization_pct,power_w,energy_j,sm_clock_mhz,temperature_c\n"
            )
        status = "failed" if reason else "completed"
        atomic_write_json(run.manifest, {
            "status": status, "reason": reason, "emulated": is_emulated(spec.recipe), "synthetic": True,
            "label": "synthetic fixture (not a measurement)", "host": "synthetic",
            "versions": {"torch": "2.13.0", "transformers": "5.0.0", **versions.get(spec.arm, {})},
            "gpu": {"model": "synthetic GPU", "count": 1}, "git_sha": git_sha,
            "started_at": "2026-01-01T00:00:00+00:00", "ended_at": "2026-01-01T01:00:00+00:00",
        })  # fmt: skip
        energy = 700.0 * mean_t / tokens
        atomic_write_json(run.summary, {
            "run_id": spec.run_id, "stage": spec.stage_name, "arm": spec.arm, "recipe": spec.recipe,
            "emulated": is_emulated(spec.recipe), "status": status, "reason": reason, "steps": n_steps,
            "final_loss": float(losses[-1]), "peak_alloc_bytes": alloc, "peak_reserved_bytes": alloc and alloc * 1.05,
            "rss_peak_bytes": rss,
            "nvml_peak_memory_bytes": alloc * 1.08 if with_nvml else None,
            "energy_j": energy * tokens * n_steps if with_nvml else None,
            "energy_per_token_j": energy if with_nvml else None,
        })  # fmt: skip
        if not reason:
            _write_eval(run, spec.arm, shared, own, n_problems, k, accuracy_shift.get(spec.arm, 0.0), output_text,
                        (lengths or {}).get(spec.arm))  # fmt: skip
    return suite_dir


def _write_nvml(run: RunDir, n_steps: int, mean_t: float, alloc: float, rng: np.random.Generator) -> None:
    header = ["time_s", "gpu", "memory_used_bytes", "utilization_pct", "power_w", "energy_j", "sm_clock_mhz",
              "temperature_c"]  # fmt: skip
    with run.nvml.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        energy = 0.0
        for i, t in enumerate(np.arange(0, n_steps * mean_t, mean_t / 2)):
            power = 650 + rng.normal(0, 20)
            energy += power * mean_t / 2
            used = alloc * 1.08 * min(1.0, (i + 1) / 6)
            writer.writerow([f"{t:.2f}", 0, int(used), 97, f"{power:.1f}", f"{energy:.1f}", 1980, 61])


def _write_eval(run: RunDir, arm: str, shared: np.random.Generator, own: np.random.Generator, n_problems: int,
                k: int, shift: float, output_text: str, lengths: tuple[int, float] | None) -> None:  # fmt: skip
    solve_rate = shared.uniform(0.05, 0.95, n_problems)  # the problem-to-problem spread both arms share
    p = np.clip(solve_rate + shift, 0, 1)
    rows = []
    for pid in range(n_problems):
        for s in range(k):
            score = float(own.random() < p[pid])
            rows.append({
                "problem_id": f"p{pid:03d}", "sample_index": s, "prompt": f"Problem {pid}: what is 6 x 7?",
                "output": f"{output_text} (arm {arm}, sample {s})", "extracted": "42" if score else "41",
                "target": "42", "score": score,
            })  # fmt: skip
    bench_dir = run.eval_dir / "aime24"
    bench_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    extra = {}
    if lengths is not None:
        mean_tokens, truncated = lengths
        frame["output_tokens"] = own.poisson(mean_tokens, len(frame)).astype("int64")
        cut = own.random(len(frame)) < truncated
        frame["finish_reason"] = np.where(cut, "length", "stop")
        extra = {"output_tokens": {"mean": float(frame["output_tokens"].mean()),
                                   "p95": float(frame["output_tokens"].quantile(0.95))},
                 "truncation_rate": float(cut.mean()), "wall_time_s": 600.0, "gpu_hours": 600.0 * 8 / 3600}  # fmt: skip
    frame.to_parquet(bench_dir / "samples.parquet", index=False)
    atomic_write_json(bench_dir / "summary.json", {
        "benchmark": "aime24", "avg_at_k": float(frame["score"].mean() * 100), "pass_at_1": None, "k": k,
        "n_problems": n_problems, "n_samples": len(frame), "backend": "synthetic",
        "generation": {"data_parallel_size": 8} if lengths is not None else {}, "versions": {},  # where the eval writes it
        **extra,
    })  # fmt: skip
