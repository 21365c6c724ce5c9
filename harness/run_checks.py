"""Is a run folder's metrics.jsonl whole? Each line's fields, and a finished run's step sequence.

A trained run writes steps 1, 2, ..., N once each, N being the steps its summary.json counts; an
imported run (Megatron, TensorBoard) logs every k-th step, so its steps need only increase. Anything
else means two processes wrote one folder, or the file was damaged or edited: its curves and
statistics cannot be trusted, and `harness compare` refuses it naming the file and the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import InvalidInput

# metrics.jsonl fields that hold a number or null (docs/ARCHITECTURE.md)
NUMERIC_FIELDS = ("loss", "lr", "grad_norm", "tokens", "step_time_s", "tokens_per_s", "mfu",
                  "peak_alloc_bytes", "peak_reserved_bytes", "time_s")  # fmt: skip


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def metrics_line_problem(record: Any) -> str | None:
    """Why one parsed metrics.jsonl line breaks the contract, or None when it keeps it."""
    if not isinstance(record, dict) or "step" not in record:
        return "metrics line lacks a 'step' field"
    if not _is_int(record["step"]) or record["step"] < 1:
        return f"field 'step' is {record['step']!r}, not a step number (1, 2, ...)"
    for name in NUMERIC_FIELDS:
        value = record.get(name)
        if value is not None and not (_is_int(value) or isinstance(value, float)):
            return f"field {name!r} is {value!r}, not a number or null"
    return None


def step_problem(steps: list[int], *, every_step: bool, lines: list[int] | None = None) -> tuple[int, str] | None:
    """(index into steps, what is wrong) for the first duplicated, out-of-order or (every_step) missing
    step; lines[i] is the file line of steps[i], to say where a repeated step first appeared."""
    first_seen: dict[int, int] = {}
    previous = 0
    for index, step in enumerate(steps):
        if step in first_seen:
            first = lines[first_seen[step]] if lines else first_seen[step] + 1
            return index, f"step {step} appears a second time (first at line {first})"
        if step < previous:
            return index, f"step {step} comes after step {previous} (out of order)"
        if every_step and step != previous + 1:
            after = f"step {previous}" if previous else "the start"
            if previous + 1 in steps[index:]:
                later = steps.index(previous + 1, index)
                where = lines[later] if lines else later + 1
                return (
                    index,
                    f"step {step} follows {after}; step {previous + 1} comes later, at line {where} (out of order)",
                )
            missing = f"step {previous + 1}" if step == previous + 2 else f"steps {previous + 1}-{step - 1}"
            return index, f"step {step} follows {after}: {missing} missing"
        first_seen[step] = index
        previous = step
    return None


def check_finished_metrics(
    run_dir, records: list[dict], summary: dict, *, imported: bool, planned_steps: int | None = None
) -> None:
    """Refuse a completed (or imported) run whose metrics.jsonl is not its steps once each, in order, as
    many as summary.json counts (and as spec.json's stage.steps plans). run_dir: a harness.store.RunDir."""
    path = run_dir.metrics
    fix = (
        f"this run's metrics cannot be trusted (two processes wrote the folder at once, or the file was "
        f"damaged or edited): delete {run_dir.path} and train it again"
        + (" (`harness import` for an imported run)" if imported else "")
    )
    steps = [r["step"] for r in records]
    if step_problem(steps, every_step=not imported) is not None:
        lines = _record_lines(path)
        index, what = step_problem(steps, every_step=not imported, lines=lines)
        raise InvalidInput(f"{path}:{lines[index]}: {what}; {fix}")
    claimed = summary.get("steps")
    if _is_int(claimed) and claimed != len(records):
        raise InvalidInput(
            f"{path}: holds {len(records)} steps but {run_dir.summary} says the run had {claimed} ('steps'); {fix}"
        )
    if planned_steps is not None and records and records[-1]["step"] != planned_steps:
        raise InvalidInput(
            f"{path}: ends at step {records[-1]['step']} but the run is marked completed and {run_dir.spec} "
            f"plans {planned_steps} (stage.steps); {fix}"
        )


def check_usable_runs(runs: list) -> None:
    """check_finished_metrics on every completed or imported run of a suite (harness.analysis.pairing.Run)."""
    for run in runs:
        if not run.usable:
            continue  # failed and interrupted runs are reported as such, not compared
        records = run.dir.read_metrics() if run.dir.metrics.is_file() else []
        summary = run.dir.read_summary() if run.dir.summary.is_file() else {}
        imported = run.status == "imported"
        planned = None if imported else run.spec.stage.steps  # None for a stage sized in epochs
        check_finished_metrics(run.dir, records, summary, imported=imported, planned_steps=planned)


@contextmanager
def refusal_removes(parity_path: Path) -> Iterator[None]:
    """A run folder compare refuses also takes away an earlier parity.json: it may have been computed
    from the very files now refused, and `harness gate` must not pass on it."""
    try:
        yield
    except InvalidInput as exc:
        if not parity_path.is_file():
            raise
        parity_path.unlink()
        raise InvalidInput(f"{exc} (removed {parity_path}, computed before, so no gate passes on it)") from None


def _record_lines(path: Path) -> list[int]:
    """The line number of each record (read_metrics skips blank lines)."""
    with path.open("rb") as fh:
        return [number for number, line in enumerate(fh, 1) if line.strip()]
