"""`harness import`: turn a Megatron-LM training log or TensorBoard events into a run directory.

The run directory follows the contract (spec.json, manifest.json with status "imported" and a
label, metrics.jsonl, summary.json), so compare, report and gate treat it like our own runs.
spec.json of an imported run is a placeholder: only the stage, arm, recipe, seed, step count
and global batch size come from the source, so pairing two imports trusts those labels.
"""

from __future__ import annotations

import json
import re
import statistics
from datetime import UTC, datetime
from pathlib import Path

from harness.analysis.stats import median_ci
from harness.errors import InvalidInput
from harness.recipes import RECIPES, is_emulated
from harness.store import RunDir, atomic_write_json, atomic_write_text
from harness.suite import RunSpec, fingerprint

MB = 1024 * 1024
_ITERATION = re.compile(r"iteration\s+(\d+)\s*/\s*(\d+)\s*\|(.*)")
_MEMORY = re.compile(r"\(after (\d+) iterations\) memory \(MB\)\s*\|(.*)")
# TensorBoard tag -> metrics field: Megatron's tag names first, then generic ones.
TB_TAGS = {
    "loss": ("lm loss", "train/loss", "loss", "train/lm_loss"),
    "step_time_s": ("iteration-time", "train/step_time_s", "step_time_s", "perf/step_time_s"),
    "lr": ("learning-rate", "train/lr", "lr", "learning_rate"),
    "grad_norm": ("grad-norm", "train/grad_norm", "grad_norm"),
    "tokens_per_s": ("train/tokens_per_s", "tokens_per_s", "throughput/tokens_per_s"),
    "peak_alloc_bytes": ("mem-max-allocated-bytes", "train/peak_alloc_bytes", "peak_alloc_bytes"),
}


def _fields(rest: str) -> dict[str, str]:
    out = {}
    for part in rest.split("|"):
        key, sep, value = part.rpartition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_megatron_log(text: str, seq_len: int | None = None) -> list[dict]:
    """metrics records from Megatron-LM's iteration and memory-report lines (others ignored)."""
    records: dict[int, dict] = {}
    elapsed = 0.0
    for line in text.splitlines():
        if match := _ITERATION.search(line):
            step, fields = int(match.group(1)), _fields(match.group(3))
            ms = _float(fields.get("elapsed time per iteration (ms)"))
            batch = _float(fields.get("global batch size"))
            tokens = int(batch * seq_len) if batch and seq_len else None
            step_time = ms / 1000.0 if ms is not None else None
            elapsed += step_time or 0.0
            records.setdefault(step, {}).update({
                "step": step, "loss": _float(fields.get("lm loss")), "lr": _float(fields.get("learning rate")),
                "grad_norm": _float(fields.get("grad norm")), "tokens": tokens, "step_time_s": step_time,
                "tokens_per_s": tokens / step_time if tokens and step_time else None, "mfu": None,
                "checkpoint": False, "time_s": elapsed, "global_batch_size": int(batch) if batch else None,
            })  # fmt: skip
        elif match := _MEMORY.search(line):
            fields = _fields(match.group(2))
            record = records.setdefault(int(match.group(1)), {"step": int(match.group(1))})
            for field, key in (("peak_alloc_bytes", "max allocated"), ("peak_reserved_bytes", "max reserved")):
                value = _float(fields.get(key))
                if value is not None:
                    record[field] = max(record.get(field) or 0.0, value * MB)  # max over ranks
    return [records[s] for s in sorted(records) if "loss" in records[s] or "step_time_s" in records[s]]


def read_tensorboard(path: Path) -> list[dict]:
    """metrics records from the scalar events under a TensorBoard log folder."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise InvalidInput(
            "importing TensorBoard events needs the tensorboard package: pip install tensorboard"
        ) from None
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags().get("scalars", []))
    records: dict[int, dict] = {}
    for field, candidates in TB_TAGS.items():
        tag = next((t for t in candidates if t in tags), None)
        for event in acc.Scalars(tag) if tag else []:
            records.setdefault(int(event.step), {"step": int(event.step)})[field] = float(event.value)
    if not records:
        raise InvalidInput(f"{path}: no known scalar tags (looked for {', '.join(t[0] for t in TB_TAGS.values())})")
    return [records[s] for s in sorted(records)]


def _summary(run_id: str, spec: RunSpec, records: list[dict]) -> dict:
    times = [r["step_time_s"] for r in records if r.get("step_time_s") and r["step"] > spec.telemetry.warmup_steps]
    tps = [r["tokens_per_s"] for r in records if r.get("tokens_per_s")]
    losses = [r["loss"] for r in records if r.get("loss") is not None]

    def stat(values):
        if not values:
            return None
        est = median_ci(values, n_resamples=2000)
        return {"median": est.value, "median_ci_low": est.ci_low, "median_ci_high": est.ci_high,
                "mean": statistics.fmean(values)}  # fmt: skip

    peaks = {f: max((r[f] for r in records if r.get(f) is not None), default=None)
             for f in ("peak_alloc_bytes", "peak_reserved_bytes")}  # fmt: skip
    return {
        "run_id": run_id, "stage": spec.stage_name, "arm": spec.arm, "recipe": spec.recipe,
        "emulated": is_emulated(spec.recipe), "status": "imported", "reason": None, "steps": len(records),
        "steady_steps": len(times), "tokens_total": sum(r.get("tokens") or 0 for r in records) or None,
        "final_loss": losses[-1] if losses else None, "device": None, "world_size": None,
        "step_time_s": stat(times), "tokens_per_s": stat(tps), "mfu": None, **peaks,
        "nvml_peak_memory_bytes": None, "energy_j": None, "energy_per_token_j": None,
    }  # fmt: skip


def import_run(source: Path, out: Path, *, arm: str, recipe: str, stage: str = "cpt", seed: int = 0,
               suite: str | None = None, label: str | None = None, seq_len: int | None = None) -> RunDir:  # fmt: skip
    """Write a run directory at `out` from a Megatron log file or a TensorBoard folder."""
    source, out = Path(source), Path(out)
    if recipe not in RECIPES:
        raise InvalidInput(f"--recipe {recipe!r}: unknown; use one of {', '.join(RECIPES)}")
    if source.is_dir():
        kind, records = "tensorboard", read_tensorboard(source)
    elif source.is_file():
        kind, records = "megatron-log", parse_megatron_log(source.read_text(errors="replace"), seq_len)
        if not records:
            raise InvalidInput(f"{source}: no Megatron 'iteration N/M | ...' lines found; pass a training log")
    else:
        raise InvalidInput(f"{source}: not found; pass a TensorBoard log folder or a Megatron-LM log file")
    batch = next((r.get("global_batch_size") for r in records if r.get("global_batch_size")), 1)
    spec = RunSpec.model_validate({
        "suite": suite or out.resolve().parent.name, "run_id": out.name, "stage_name": stage, "arm": arm,
        "recipe": recipe, "seed": seed,
        "stage": {"kind": stage if stage in ("cpt", "sft") else "cpt", "data": {"path": f"imported:{kind}"},
                  "seq_len": seq_len or 1, "global_batch_size": batch, "micro_batch_size": 1,
                  "steps": max(r["step"] for r in records), "optim": {"lr": 1.0}},
        "model": {"path": "imported"}, "topology": {}, "eval": {}, "telemetry": {"warmup_steps": 3},
        "divergence": {},
    })  # fmt: skip
    spec.fingerprint = fingerprint(spec)
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.spec, spec.model_dump(mode="json"))
    fields = ("step", "loss", "lr", "grad_norm", "tokens", "step_time_s", "tokens_per_s", "mfu", "peak_alloc_bytes",
              "peak_reserved_bytes", "checkpoint", "time_s")  # fmt: skip
    lines = [json.dumps({f: r.get(f, False if f == "checkpoint" else None) for f in fields}) for r in records]
    atomic_write_text(run.metrics, "\n".join(lines) + "\n")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    atomic_write_json(run.manifest, {
        "status": "imported", "reason": None, "emulated": is_emulated(recipe),
        "label": label or f"imported from {kind} {source.name}", "imported_from": str(source), "source_kind": kind,
        "started_at": now, "ended_at": now, "versions": {},
    })  # fmt: skip
    atomic_write_json(run.summary, _summary(out.name, spec, records))
    return run
