"""`harness import`: turn a Megatron-LM training log, TensorBoard events or a Weights & Biases run
(its local run folder, or its history exported as CSV / JSON lines) into a run directory.

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
from harness.names import RULE, is_safe_name
from harness.recipes import RECIPES, is_emulated
from harness.store import RunDir, atomic_write_json, atomic_write_text, read_json
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


# ---------------------------------------------------------------- Weights & Biases

# metrics field <- W&B history keys: the harness's own (train/<field>), then TensorBoard's names
# (Megatron-LM logs the same names to W&B), then W&B's run clock for time_s.
WANDB_KEYS = {
    field: (f"train/{field}", *TB_TAGS.get(field, ()))
    for field in ("loss", "lr", "grad_norm", "tokens", "step_time_s", "tokens_per_s", "mfu", "peak_alloc_bytes",
                  "peak_reserved_bytes", "time_s")
}  # fmt: skip
WANDB_KEYS["time_s"] += ("_runtime",)
WANDB_EXPORTS = (".csv", ".jsonl", ".json")


def is_wandb_source(path: Path) -> bool:
    """A W&B run folder (or a folder / run directory holding one), a .wandb file, or an exported history."""
    from harness.telemetry.wandb_offline import wandb_files

    if path.suffix.lower() in WANDB_EXPORTS:
        return path.is_file()
    return path.exists() and bool(wandb_files(path))


def _exported_history(path: Path) -> list[dict]:
    """Rows of a history export: `run.history()` / `scan_history()` as CSV or JSON (lines), or the
    web UI's CSV ("Step", "<run> - <key>"; its __MIN / __MAX columns are left out)."""
    text = path.read_text(errors="replace")
    if path.suffix.lower() == ".csv":
        import csv

        rows = list(csv.DictReader(text.splitlines()))
    else:
        try:
            loaded = json.loads(text)
            rows = loaded if isinstance(loaded, list) else [loaded]
        except json.JSONDecodeError:
            try:
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}: neither JSON nor JSON lines ({exc}); export the history again") from None
    out = []
    for row in rows:
        clean = {k.rpartition(" - ")[2]: v for k, v in row.items() if k and not k.endswith(("__MIN", "__MAX"))}
        step = clean.get("_step", clean.get("Step"))
        if step not in (None, ""):
            out.append({**clean, "_step": int(float(step))})
    if not out:
        raise InvalidInput(f"{path}: no '_step' (or 'Step') column; export the run's history with its steps")
    return out


def read_wandb(path: Path) -> list[dict]:
    """metrics records from a W&B run's history (local run files or an export); steps are W&B's _step,
    shifted to start at 1 when they start at 0 (W&B's own count when a run logs without step=)."""
    from harness.telemetry.wandb_offline import read_wandb_run

    if path.suffix.lower() in WANDB_EXPORTS and path.is_file():
        rows = _exported_history(path)
    else:
        history = read_wandb_run(path).history
        rows = [{**history[step], "_step": step} for step in sorted(history)]
    records = []
    for row in rows:
        record = {"step": row["_step"]}
        for field, keys in WANDB_KEYS.items():
            value = next((row[k] for k in keys if row.get(k) not in (None, "")), None)
            record[field] = _float(str(value)) if value is not None else None
        if record["tokens"] is not None:
            record["tokens"] = int(record["tokens"])
        if any(record[f] is not None for f in ("loss", "step_time_s")):
            records.append(record)
    if not records:
        raise InvalidInput(f"{path}: no W&B history rows with a loss or step time (looked for train/loss, lm loss ...)")
    if min(r["step"] for r in records) == 0:  # W&B counts from 0 when a run logs without step=: ours count from 1
        records = [{**r, "step": r["step"] + 1} for r in records]
    return records


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


def check_out(out: Path, names: dict[str, str]) -> None:
    """--out must be a folder that holds no run but an earlier import; its name and the other names
    become folder names and ids (harness/names.py)."""
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out}: is a file; pass the run folder to write, e.g. runs/megatron-1.5b/cpt-fp8-s0")
    manifest = out / "manifest.json"
    if manifest.is_file():
        status = read_json(manifest, "manifest.json").get("status")
        if status != "imported":
            raise InvalidInput(
                f"--out {out}: holds a run of status {status!r}, not an earlier import; importing would overwrite "
                "it, so pass another --out"
            )
    for flag, value in {"--out (its folder name is the run id)": out.name, **names}.items():
        if not is_safe_name(value):
            raise InvalidInput(f"{flag}: {value!r} is not a safe name: {RULE}")


def import_run(source: Path, out: Path, *, arm: str, recipe: str, stage: str = "cpt", seed: int = 0,
               suite: str | None = None, label: str | None = None, seq_len: int | None = None) -> RunDir:  # fmt: skip
    """Write a run directory at `out` from a Megatron log file, a TensorBoard folder or a W&B run."""
    source, out = Path(source), Path(out)
    if recipe not in RECIPES:
        raise InvalidInput(f"--recipe {recipe!r}: unknown; use one of {', '.join(RECIPES)}")
    suite = suite or out.resolve().parent.name
    check_out(out, {"--arm": arm, "--stage": stage, "--suite (default: the name of --out's parent folder)": suite})
    if is_wandb_source(source):
        kind, records = "wandb", read_wandb(source)
    elif source.is_dir():
        kind, records = "tensorboard", read_tensorboard(source)
    elif source.is_file():
        try:
            text = source.read_bytes().decode("utf-8", errors="replace")  # a log may hold stray bytes
        except OSError as exc:
            raise InvalidInput(f"{source}: cannot read ({exc.strerror}); pass a readable Megatron-LM log") from None
        kind, records = "megatron-log", parse_megatron_log(text, seq_len)
        if not records:
            raise InvalidInput(f"{source}: no Megatron 'iteration N/M | ...' lines found; pass a training log")
    else:
        raise InvalidInput(
            f"{source}: not found; pass a TensorBoard log folder, a Megatron-LM log file or a W&B run folder"
        )
    batch = next((r.get("global_batch_size") for r in records if r.get("global_batch_size")), 1)
    spec = RunSpec.model_validate({
        "suite": suite, "run_id": out.name, "stage_name": stage, "arm": arm,
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
