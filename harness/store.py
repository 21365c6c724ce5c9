"""Run directories (the contract between stages) and atomic writes (the SQLite index of results is
harness/results_index.py).

runs/<suite>/<run_id>/spec.json  manifest.json  metrics.jsonl  nvml.csv
                      checkpoints/  eval/<bench>/  summary.json  [profile.json]
runs/<suite>/parity.json         written by `harness compare`
runs/index.sqlite                one row per run and per comparison (history, regressions)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import InvalidInput
from harness.run_checks import metrics_line_problem
from harness.textio import not_utf8_message, read_text_utf8

_UMASK = os.umask(0)
os.umask(_UMASK)
STATUSES = ("running", "completed", "failed", "interrupted", "imported")


# ---------------------------------------------------------------- atomic files


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp file beside `path` for the block to write; renamed over `path` when the block ends
    without error, so readers never see half a file (deleted otherwise). Writers never share a name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; reports must be shareable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(finite_json(data), indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path, what: str = "file", fix: str = "re-run the stage that writes it") -> dict:
    """A JSON object from a file (every JSON file of the run-folder contract is one); InvalidInput
    naming the file and `fix` when it is missing, unreadable, not UTF-8, not JSON or not an object."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: {what} not found")
    text = read_text_utf8(path, what, fix)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: corrupt JSON ({exc}); {fix}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: not a JSON object (found {_json_type(data)}); {fix}")
    return data


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def finite_json(value: Any) -> Any:
    """JSON has no NaN/Inf: store them as None so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


# ---------------------------------------------------------------- run directories


SPEC_FIX = (
    "it was not written by this harness or was edited: restore it, or delete the run folder and re-run "
    "`harness run` / `harness train` (`harness import` for an imported run)"
)


class RunDir:
    """Paths and readers of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    spec = property(lambda self: self.path / "spec.json")
    manifest = property(lambda self: self.path / "manifest.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    nvml = property(lambda self: self.path / "nvml.csv")
    checkpoints = property(lambda self: self.path / "checkpoints")
    eval_dir = property(lambda self: self.path / "eval")
    summary = property(lambda self: self.path / "summary.json")
    tensorboard = property(lambda self: self.path / "tensorboard")
    profile = property(lambda self: self.path / "profile.json")  # only with telemetry.profile_steps
    # The Hugging Face export that eval, vLLM and a later stage's init_from read.
    final_checkpoint = property(lambda self: self.checkpoints / "final")

    def sibling(self, run_id: str) -> RunDir:
        """Another run of the same suite folder (e.g. the run a stage's init_from names)."""
        return RunDir(self.path.parent / run_id)

    @property
    def run_id(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return self.spec.is_file()

    def read_spec(self):
        from pydantic import ValidationError

        from harness.suite import RunSpec

        data = read_json(self.spec, "spec.json (is this a run directory?)", SPEC_FIX)
        try:
            return RunSpec.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"] if p != "[key]") or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            raise InvalidInput(f"{self.spec}: invalid spec.json: {field}: {msg}; {SPEC_FIX}") from None

    def read_manifest(self) -> dict:
        return read_json(self.manifest, "manifest.json")

    def read_summary(self) -> dict:
        return read_json(self.summary, "summary.json (has the run finished?)")

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.metrics)

    def update_manifest(self, **fields: Any) -> dict:
        data = self.read_manifest() if self.manifest.is_file() else {}
        data.update(fields)
        atomic_write_json(self.manifest, data)
        return data


def read_metrics(path: str | Path) -> list[dict]:
    """Step records of metrics.jsonl; a corrupt line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: metrics.jsonl not found; train the run first (harness train)")
    records = []
    with path.open("rb") as fh:  # bytes, so a line that is not UTF-8 is named like any torn line
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(not_utf8_message(path, raw, exc.start, _METRICS_FIX, first_line=number)) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise InvalidInput(f"{path}:{number}: corrupt line in metrics.jsonl; {_METRICS_FIX}") from None
            problem = metrics_line_problem(record)
            if problem:
                raise InvalidInput(f"{path}:{number}: {problem}; {_METRICS_FIX}")
            records.append(record)
    return records


_METRICS_FIX = "re-run `harness train` to resume (it rewrites metrics from the last checkpoint) or delete the line"


class MetricsWriter:
    """Appends one JSON line per step and flushes it, so a kill loses at most one step."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a")

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(finite_json(record), sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def truncate_metrics(path: str | Path, last_step: int) -> None:
    """Keep only steps <= last_step (used when resuming from a checkpoint); drops torn lines."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("step", math.inf) <= last_step:
            kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


def suite_runs(suite_dir: str | Path) -> list[RunDir]:
    """Run directories under runs/<suite>/, sorted by name; an error if there are none."""
    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir():
        raise InvalidInput(f"{suite_dir}: no such folder; pass runs/<suite> (written by `harness run`)")
    runs = [RunDir(p) for p in sorted(suite_dir.iterdir()) if (p / "spec.json").is_file()]
    if not runs:
        raise InvalidInput(f"{suite_dir}: no run directories (folders with spec.json) inside")
    return runs
