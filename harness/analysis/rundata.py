"""Read the numbers analysis needs from one run directory (the I/O edge of the analysis).

Steady-state steps exclude warm-up and checkpoint steps, as the telemetry contract says;
NVML and eval files are optional, and their absence is reported as None, never as zero.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.errors import InvalidInput
from harness.store import RunDir, read_json

EVAL_COLUMNS = ("problem_id", "sample_index", "score")


def finite(value) -> float | None:
    """value as a float, or None when it is absent, not a number, NaN or infinite."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def steady_records(records: list[dict], warmup_steps: int) -> list[dict]:
    """Steps after warm-up that wrote no checkpoint (those pay for I/O, not compute)."""
    return [r for r in records if r["step"] > warmup_steps and not r.get("checkpoint")]


def column(records: list[dict], name: str) -> list[float]:
    """Finite values of one metrics field, in step order."""
    return [v for v in (finite(r.get(name)) for r in records) if v is not None]


def read_metrics_safe(run_dir: RunDir) -> list[dict]:
    return run_dir.read_metrics() if run_dir.metrics.is_file() else []


def read_summary_safe(run_dir: RunDir) -> dict:
    return run_dir.read_summary() if run_dir.summary.is_file() else {}


def read_nvml(run_dir: RunDir) -> pd.DataFrame | None:
    """nvml.csv as a frame, or None when it is absent or has no rows (no GPU, NVML unavailable)."""
    if not run_dir.nvml.is_file():
        return None
    try:
        frame = pd.read_csv(run_dir.nvml)
    except pd.errors.EmptyDataError:
        return None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{run_dir.nvml}: unreadable CSV ({exc}); delete it or re-run the run") from None
    return frame if len(frame) else None


def read_profile(run_dir: RunDir) -> dict | None:
    """profile.json (telemetry.profile_steps) as written, or None when the run was not profiled."""
    path = run_dir.profile
    if not path.is_file():
        return None
    profile = read_json(path, "profile.json")
    if not isinstance(profile, dict) or not isinstance(profile.get("per_step_ms"), dict):
        raise InvalidInput(f"{path}: no per_step_ms table (not written by telemetry.profile_steps?); delete it")
    return profile


def peak_memory(run_dir: RunDir, summary: dict, records: list[dict]) -> dict[str, float | None]:
    """Allocator peaks (summary, else max over metrics), NVML peak (summary, else nvml.csv), peak RSS (summary)."""
    out: dict[str, float | None] = {}
    for name in ("peak_alloc_bytes", "peak_reserved_bytes"):
        value = finite(summary.get(name))
        if value is None:
            values = column(records, name)
            value = max(values) if values else None
        out[name] = value
    nvml_peak = finite(summary.get("nvml_peak_memory_bytes"))
    if nvml_peak is None:
        frame = read_nvml(run_dir)
        if frame is not None and "memory_used_bytes" in frame and frame["memory_used_bytes"].notna().any():
            # memory_used_bytes is per GPU; the peak of the busiest GPU is what limits a run.
            nvml_peak = float(frame["memory_used_bytes"].max())
    out["nvml_peak_memory_bytes"] = nvml_peak
    out["rss_peak_bytes"] = finite(summary.get("rss_peak_bytes"))  # the process's peak resident set
    return out


def benchmarks(run_dir: RunDir) -> list[str]:
    """Benchmarks with a samples.parquet under eval/."""
    if not run_dir.eval_dir.is_dir():
        return []
    return sorted(p.parent.name for p in run_dir.eval_dir.glob("*/samples.parquet"))


def read_samples(run_dir: RunDir, bench: str) -> pd.DataFrame:
    """Per-sample eval rows of one benchmark; the columns analysis needs must be there."""
    path = run_dir.eval_dir / bench / "samples.parquet"
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: unreadable parquet ({exc}); re-run `harness eval {run_dir.path}`") from None
    missing = [c for c in EVAL_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}; re-run `harness eval {run_dir.path}`")
    frame = frame.copy()
    frame["problem_id"] = frame["problem_id"].astype(str)
    return frame


def read_eval_summary(run_dir: RunDir, bench: str) -> dict:
    path = run_dir.eval_dir / bench / "summary.json"
    return read_json(path, "eval summary.json") if path.is_file() else {}


def eval_lengths(frame: pd.DataFrame, summary: dict) -> dict[str, float | None]:
    """Output tokens (mean, p95) and truncation rate of one arm's samples, and its eval cost.

    From samples.parquet's `output_tokens` and `finish_reason` ("length": the sample hit max_tokens)
    where the eval wrote them, else from summary.json's `output_tokens` / `truncation_rate`; wall time,
    GPU-hours and data parallelism (`generation.data_parallel_size`) from summary.json. None for whatever an older result lacks.
    """
    tokens = frame["output_tokens"].dropna().astype(float) if "output_tokens" in frame else pd.Series(dtype=float)
    reasons = frame["finish_reason"].dropna() if "finish_reason" in frame else pd.Series(dtype=object)
    recorded = summary.get("output_tokens") if isinstance(summary.get("output_tokens"), dict) else {}
    generation = summary.get("generation") if isinstance(summary.get("generation"), dict) else {}
    dp = generation.get("data_parallel_size")  # the replicas that served it (harness/eval/summary.py)
    return {
        "output_tokens_mean": float(tokens.mean()) if len(tokens) else finite(recorded.get("mean")),
        "output_tokens_p95": float(tokens.quantile(0.95)) if len(tokens) else finite(recorded.get("p95")),
        "truncation_rate": float((reasons == "length").mean())
        if len(reasons)
        else finite(summary.get("truncation_rate")),
        "wall_time_s": finite(summary.get("wall_time_s")),
        "gpu_hours": finite(summary.get("gpu_hours")),
        "data_parallel_size": int(dp) if isinstance(dp, int | float) and not isinstance(dp, bool) else None,
    }


def per_problem_scores(frame: pd.DataFrame) -> pd.Series:
    """Mean score over the k samples of each problem, indexed by problem_id (sorted)."""
    return frame.groupby("problem_id")["score"].mean().sort_index()


def suite_name(suite_dir: Path) -> str:
    return Path(suite_dir).resolve().name
