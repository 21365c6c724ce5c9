"""Benchmark data on local disk: find a benchmark's folder and read its records.

Layout (docs/EVAL.md): `<eval.data_dir>/<benchmark>/` (or the benchmark's `path`) holds one or
more `*.jsonl`, `*.json` (a list of objects) or `*.parquet` files, read in name order. The
records keep the hub dataset's own columns, so `harness data export` is a plain dump.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import InvalidInput
from harness.textio import read_text_utf8

SUFFIXES = (".jsonl", ".json", ".parquet")
REEXPORT = "re-export it with `harness data export`"


def benchmark_dir(name: str, path: str | None, data_dir: str | Path, base: Path | None = None) -> Path:
    """The folder of benchmark `name`: its `path` if set, else <data_dir>/<name>; relative paths from `base`."""
    folder = Path(path) if path else Path(data_dir) / name
    if not folder.is_absolute() and base is not None:
        folder = base / folder
    return folder


def read_records(folder: Path, name: str, origins: list[str] | None = None) -> list[dict]:
    """All records of the data files in `folder`; an error naming the folder and the fix when there are none.

    `origins`, when given, receives "FILE:LINE" (or "FILE row N") for each record, for error messages.
    """
    if folder.is_file():
        files = [folder]
    elif folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))
    else:
        files = []
    if not files:
        raise InvalidInput(
            f"{folder}: no data for benchmark {name!r} (expected *.jsonl, *.json or *.parquet files); "
            f"export it on a machine with network with `harness data export {name} --out <data_dir>`, "
            f"then set eval.data_dir or eval.benchmarks.{name}.path"
        )
    records: list[dict] = []
    for file in files:
        found = _read_file(file)
        records.extend(found)
        if origins is not None:
            unit = ":" if file.suffix == ".jsonl" else " row "
            origins.extend(f"{file}{unit}{n}" for n in _numbers(file, len(found)))
    return records


def _numbers(file: Path, count: int) -> list[int]:
    """Line numbers of a jsonl file's records (blank lines skipped), else 0-based row numbers."""
    if file.suffix != ".jsonl":
        return list(range(count))
    return [n for n, line in enumerate(_text(file).splitlines(), 1) if line.strip()][:count]


def _text(file: Path) -> str:
    return read_text_utf8(file, "benchmark file", REEXPORT)


def _read_file(file: Path) -> list[dict]:
    if file.suffix == ".jsonl":
        records = []
        for number, line in enumerate(_text(file).splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InvalidInput(f"{file}:{number}: not a JSON record ({exc}); {REEXPORT}") from None
        return records
    try:
        if file.suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(file).to_dict("records")
        data = json.loads(_text(file))
        if not isinstance(data, list):
            raise InvalidInput(f"{file}: expected a JSON list of records")
        return data
    except (json.JSONDecodeError, OSError, ValueError) as exc:
        raise InvalidInput(f"{file}: unreadable benchmark file ({exc}); {REEXPORT}") from None


def require(record: dict, fields: tuple[str, ...], name: str, index: int, origin: str | None = None) -> None:
    """Fail clearly when a record lacks a field the benchmark needs."""
    missing = [f for f in fields if f not in record]
    if missing:
        where = f"{origin}: " if origin else ""
        raise InvalidInput(
            f"{where}benchmark {name}: record {index} lacks field(s) {missing}; it has {sorted(record)}. "
            "See docs/EVAL.md for each benchmark's columns"
        )
