"""Per-benchmark results: avg@k from per-sample rows, and the atomic write of samples.parquet + summary.json.

avg@k is the mean score over problems x samples, in points (0-100); with k samples per problem
it equals the expected pass@1, so `pass_at_1` (also in points) is the same number. Error bars
are not computed here: the analysis stage bootstraps over problems from samples.parquet.
"""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path

import numpy as np

from harness import __version__
from harness.store import atomic_path, atomic_write_json

COLUMNS = (
    "problem_id",
    "sample_index",
    "prompt",
    "output",
    "extracted",
    "target",
    "score",
    "score_status",  # EvalScope's ScoreStatus: "success", or "excluded" when it could not score (scored 0.0)
    "score_reason",  # EvalScope's reason (math_reason, LiveCodeBench error message) where it gives one
    "output_tokens",  # tokens generated (null where the backend did not say, or for older caches)
    "finish_reason",  # "stop", or "length" when the sample hit max_tokens (truncated)
)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def avg_at_k(rows: list[dict]) -> float:
    """Mean score over all (problem, sample) rows, in points."""
    return 100.0 * sum(r["score"] for r in rows) / len(rows) if rows else float("nan")


def summarise(
    benchmark: str,
    rows: list[dict],
    *,
    k: int,
    bench,
    system_prompt: str | None,
    backend: str,
    checkpoint: Path,
    config,
    eval_config,
    engine_version: str | None = None,
    sessions: list[dict] = (),
) -> dict:
    """summary.json content for one benchmark (format in docs/ARCHITECTURE.md and docs/EVAL.md).

    engine_version: what the vLLM server reported; else the vllm package importable here.
    sessions: the generation sessions of these samples (harness.eval.progress), for wall time and GPU-hours.
    """
    problems = {r["problem_id"] for r in rows}
    score = avg_at_k(rows)
    lengths = [r["output_tokens"] for r in rows if r.get("output_tokens") is not None]
    reasons = [r.get("finish_reason") for r in rows if r.get("finish_reason") is not None]
    summary = {
        "benchmark": benchmark,
        "avg_at_k": score,
        "pass_at_1": score,
        "k": k,
        "n_problems": len(problems),
        "n_samples": len(rows),
        "backend": backend,
        "checkpoint": str(checkpoint),
        "generation": {
            "max_tokens": config.max_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": eval_config.seed,
            "sample_seeds": "sha256(seed|benchmark|problem_id|sample_index)[:31 bits]",
            "limit": config.limit,
            "tensor_parallel_size": eval_config.tensor_parallel_size if backend == "vllm" else None,
            "data_parallel_size": max((s["gpus"] for s in sessions), default=0) // eval_config.tensor_parallel_size
            if backend == "vllm" and sessions
            else None,
            "max_concurrency": eval_config.max_concurrency if backend == "vllm" else None,
            "server_args": list(eval_config.server_args) if backend == "vllm" else None,
            "answer_after": "</think>",
        },
        "scorer": "evalscope",
        "evalscope_adapter": bench.adapter,
        "prompt_template": "evalscope" if bench.template else "bare question",
        "system_prompt": system_prompt,
        "n_excluded": sum(r["score_status"] == "excluded" for r in rows),
        "output_tokens": {"mean": float(np.mean(lengths)), "p95": float(np.percentile(lengths, 95))}
        if lengths
        else None,
        # share of samples cut at max_tokens: a score gap they cause is no parity result
        "truncation_rate": sum(r == "length" for r in reasons) / len(reasons) if reasons else None,
        "wall_time_s": sum(s["wall_time_s"] for s in sessions) if sessions else None,
        # benchmarks generated together split the GPU time by generated tokens ("share")
        "gpu_hours": sum(s["wall_time_s"] * s["gpus"] * s.get("share", 1.0) for s in sessions) / 3600
        if sessions
        else None,
        "output_tokens_per_s": _rate(sessions),
        "generation_sessions": len(sessions),
        "versions": {
            "harness": __version__,
            "evalscope": _version("evalscope"),
            "evalscope_rules": _version("evalscope"),  # kept for readers of older results: same as evalscope
            "vllm": (engine_version or _version("vllm")) if backend == "vllm" else None,
            "transformers": _version("transformers"),
            "torch": _version("torch"),
        },
        "created_at": time.time(),
    }
    if bench.code:
        from harness.eval.sandbox import containment

        summary["sandbox"] = containment(allow_weak=eval_config.allow_weak_sandbox).level
        summary["window"] = [str(d) for d in bench.window(config)]  # contest_date range evaluated
    return summary


def _rate(sessions: list[dict]) -> float | None:
    """Generated tokens per second of wall time over the sessions (of all benchmarks generated with these)."""
    wall = sum(s["wall_time_s"] for s in sessions)
    tokens = sum(s["output_tokens"] / s["share"] for s in sessions if s.get("share")) if sessions else 0
    return tokens / wall if wall > 0 and tokens else None


def write_results(bench_dir: Path, rows: list[dict], summary: dict) -> None:
    """samples.parquet then summary.json, each via temp file + rename: a reader never sees half of either."""
    import pandas as pd

    bench_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["sample_index"] = frame["sample_index"].astype("int64")
    frame["score"] = frame["score"].astype("float64")
    for column in ("extracted", "score_status", "score_reason", "finish_reason"):
        frame[column] = frame[column].astype("string")
    frame["output_tokens"] = frame["output_tokens"].astype("Int64")  # nullable: older caches have none
    with atomic_path(bench_dir / "samples.parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    atomic_write_json(bench_dir / "summary.json", summary)
