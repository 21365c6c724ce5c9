"""Step loggers: where each metrics.jsonl record is also sent (TensorBoard, Weights & Biases).

    [telemetry]
    loggers = ["tensorboard", "wandb"]

Telemetry opens the suite's loggers on rank 0 at start() and hands each one the record that
becomes a metrics.jsonl line, at the moment that line is written, with rank 0's latest NVML
sample taken by the end of that step. So every logger holds exactly the steps metrics.jsonl
holds, as the same numbers, and a logger that can rebuild itself (W&B) replays the kept lines
after a resume. A logger is registered by name in LOGGERS ("module:Class", imported only when
used) and provides:

    check_available() -> None            classmethod; InvalidInput naming the install command
    __init__(run_dir, spec, start_step)  open; start_step > 0 resumes (metrics.jsonl is already cut there)
    log(step, scalars)                   one step's numbers: {"train/loss": ..., "nvml/power_w": ...}
    finish(status, summary)              close; summary is summary.json's content
"""

from __future__ import annotations

import csv
import importlib
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# The suite accepts the names in harness.suite.LOGGER_NAMES (checked without importing this module).
LOGGERS: dict[str, str] = {
    "tensorboard": "harness.telemetry.tensorboard:TensorBoardLogger",
    "wandb": "harness.telemetry.wandb_logger:WandbLogger",
}

# metrics.jsonl fields sent as train/<field> (x = step); `checkpoint` is a flag, not a series.
SCALARS = (
    "loss",
    "lr",
    "grad_norm",
    "tokens",
    "processed_tokens",
    "step_time_s",
    "tokens_per_s",
    "mfu",
    "peak_alloc_bytes",
    "peak_reserved_bytes",
    "time_s",
)
# nvml.csv columns sent as nvml/<column>, from the latest sample at or before the step's end.
NVML_SCALARS = ("memory_used_bytes", "utilization_pct", "power_w", "energy_j", "sm_clock_mhz", "temperature_c")


def logger_class(name: str) -> type:
    module, _, attr = LOGGERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def check_loggers(names: Iterable[str]) -> None:
    """Raise InvalidInput (naming the install command) when a requested logger's package is missing."""
    for name in names:
        logger_class(name).check_available()


def _number(value: Any) -> float | int | None:
    """A finite number from a metrics field or an nvml.csv cell; None for null, flags and blanks."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def step_scalars(record: dict, nvml_row: dict | None) -> dict[str, float | int]:
    """The numbers of one step as loggers receive them; fields without a value are left out."""
    out = {f"train/{name}": v for name in SCALARS if (v := _number(record.get(name))) is not None}
    for name in NVML_SCALARS if nvml_row else ():
        if (value := _number(nvml_row.get(name))) is not None:
            out[f"nvml/{name}"] = value
    return out


def nvml_at(rows: list[dict], time_s: float) -> dict | None:
    """The latest NVML row taken at or before time_s (rows in time order), or None."""
    found = None
    for row in rows:
        t = _number(row.get("time_s"))
        if t is None:
            continue
        if t > time_s:
            break
        found = row
    return found


def read_nvml_rows(path: Path) -> list[dict]:
    """nvml.csv rows of the first GPU listed (one GPU per process), in time order; [] without the file."""
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("time_s")]
    first = rows[0].get("gpu") if rows else None
    return [r for r in rows if r.get("gpu") == first]


def replay(records: list[dict], nvml_rows: list[dict]) -> Iterator[tuple[int, dict]]:
    """(step, scalars) of metrics.jsonl records, as they were fed live: for a logger rebuilding itself."""
    for record in records:
        yield int(record["step"]), step_scalars(record, nvml_at(nvml_rows, float(record.get("time_s") or 0.0)))


class StepLoggers:
    """The suite's loggers, opened together and fed together (rank 0 only)."""

    def __init__(self, names: Iterable[str], run_dir, spec, start_step: int):
        self._loggers = []
        try:
            for name in names:
                self._loggers.append(logger_class(name)(run_dir, spec, start_step))
        except BaseException:
            self.finish("failed", {})  # the ones already open are closed, not left half-written
            raise

    def log(self, record: dict, nvml_row: dict | None) -> None:
        scalars = step_scalars(record, nvml_row)
        for logger in self._loggers:
            logger.log(int(record["step"]), scalars)

    def finish(self, status: str, summary: dict) -> None:
        loggers, self._loggers = self._loggers, []
        for logger in loggers:
            logger.finish(status, summary)
