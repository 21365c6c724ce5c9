"""Per-benchmark results: avg@k from per-sample rows, and the atomic write of samples.parquet + summary.json.

avg@k is the mean score over problems x samples, in points (0-100); with k samples per problem
it equals the expected pass@1, so `pass_at_1` (also in points) is the same number. Error bars
are not computed here: the analysis stage bootstraps over problems from samples.parquet.
"""

from __future__ import annotations

import os
import tempfile
import time
from importlib import metadata
from pathlib import Path

from harness import __version__
from harness.store import atomic_write_json

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
) -> dict:
    """summary.json content for one benchmark (format in docs/ARCHITECTURE.md and docs/EVAL.md).

    engine_version: what the vLLM server reported; else the vllm package importable here.
    """
    problems = {r["problem_id"] for r in rows}
    score = avg_at_k(rows)
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
            "answer_after": "</think>",
        },
        "scorer": "evalscope",
        "evalscope_adapter": bench.adapter,
        "prompt_template": "evalscope" if bench.template else "bare question",
        "system_prompt": system_prompt,
        "n_excluded": sum(r["score_status"] == "excluded" for r in rows),
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
    return summary


def write_results(bench_dir: Path, rows: list[dict], summary: dict) -> None:
    """samples.parquet then summary.json, each via temp file + rename: a reader never sees half of either."""
    import pandas as pd

    bench_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["sample_index"] = frame["sample_index"].astype("int64")
    frame["score"] = frame["score"].astype("float64")
    for column in ("extracted", "score_status", "score_reason"):
        frame[column] = frame[column].astype("string")
    fd, tmp = tempfile.mkstemp(dir=bench_dir, prefix=".samples.", suffix=".parquet.tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, bench_dir / "samples.parquet")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_json(bench_dir / "summary.json", summary)
