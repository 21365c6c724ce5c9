"""Read a W&B run back from its local files: the run-<id>.wandb transaction log of each folder.

An offline run keeps everything in that log (files/ holds only requirements.txt until a sync):
a LevelDB-style log (https://github.com/google/leveldb/blob/main/doc/log_format.md, 32 KiB
blocks of chunks with a 7-byte header: CRC-32, length, type) after a 7-byte W&B header
(":W&B", 0xBEE1, version 0), each record one protobuf `wandb.proto.wandb_internal_pb2.Record`.
The wandb package no longer ships a Python reader (wandb-core writes and syncs these files), so
this one parses the framing and leaves the records to wandb's own protobuf classes. A torn tail
(a killed process) ends the log where it tears, as W&B's own reader does.

Several folders of one run id (a resumed run) are merged in start order, a later step replacing
an earlier one, as `wandb sync` uploads them in that order.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InvalidInput

BLOCK = 32768
HEADER = struct.Struct("<4sHB")  # ident, magic, version
CHUNK = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
# The CRC of a chunk is zlib's CRC-32 of its data, seeded with the CRC-32 of its type byte.
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}
_STARTED = re.compile(r"\d{8}_\d{6}")


def transaction_log_records(path: Path) -> Iterator[bytes]:
    """The serialized records of one .wandb file, in write order."""
    data = Path(path).read_bytes()
    if len(data) < HEADER.size or HEADER.unpack_from(data) != (b":W&B", 0xBEE1, 0):
        raise InvalidInput(f"{path}: not a W&B transaction log (no ':W&B' header); pass a run-<id>.wandb file")
    pos, pending = HEADER.size, b""
    while pos + CHUNK.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:  # a block's last bytes are padding when no header fits
            pos += left
            continue
        crc, length, kind = CHUNK.unpack_from(data, pos)
        chunk = data[pos + CHUNK.size : pos + CHUNK.size + length]
        if kind not in _TYPE_CRC or len(chunk) < length or zlib.crc32(chunk, _TYPE_CRC[kind]) != crc:
            return  # torn or unwritten tail
        pos += CHUNK.size + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        else:
            yield pending + chunk


@dataclass
class WandbRun:
    """What a W&B run's files say: identity, config, history by step, summary."""

    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[int, dict[str, Any]] = field(default_factory=dict)  # _step -> {key: value}
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)  # names of logged artifacts
    folders: list[Path] = field(default_factory=list)

    def steps(self) -> list[int]:
        return sorted(self.history)


def _key(item) -> str:
    return "/".join([item.key] if item.key else list(item.nested_key))


def _value(item) -> Any:
    return json.loads(item.value_json) if item.value_json else None


def _apply(target: dict, items, removes=()) -> None:
    for item in items:
        target[_key(item)] = _value(item)
    for item in removes:
        target.pop(_key(item), None)


def _read_into(run: WandbRun, path: Path) -> None:
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in transaction_log_records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group, run.job_type = r.run_id, r.project, r.run_group, r.job_type
            run.name, run.tags = r.display_name or run.name, list(r.tags) or run.tags
            _apply(run.config, r.config.update)
        elif kind == "config":
            _apply(run.config, record.config.update, record.config.remove)
        elif kind == "history":
            row = {}
            _apply(row, record.history.item)
            step = int(row.get("_step", record.history.step.num))
            run.history[step] = row  # a later segment's step replaces an earlier one
        elif kind == "summary":
            _apply(run.summary, record.summary.update, record.summary.remove)
        elif kind == "artifact":
            run.artifacts.append(record.artifact.name)
    run.config.pop("_wandb", None)


def wandb_files(path: Path) -> list[Path]:
    """The .wandb files under a .wandb file, a run folder, a wandb/ folder or a harness run directory."""
    path = Path(path)
    if path.suffix == ".wandb" and path.is_file():
        return [path]
    for pattern in ("*.wandb", "*/*.wandb", "wandb/*/*.wandb"):
        # wandb/latest-run links to a folder already listed (`wandb sync` reads such a file once too)
        found = sorted((f for f in path.glob(pattern) if not f.parent.is_symlink()), key=_start_order)
        if found:
            return found
    return []


def _start_order(path: Path) -> tuple[str, str]:
    # Folder names are [offline-]run-YYYYMMDD_HHMMSS-<id>: the timestamp orders the segments.
    found = _STARTED.search(path.parent.name)
    return (found.group(0) if found else "", path.parent.name)


def read_wandb_run(path: Path) -> WandbRun:
    """The W&B run stored under `path` (all its segments merged); InvalidInput when there is none."""
    try:
        import wandb.proto.wandb_internal_pb2  # noqa: F401  (the record schema)
    except ImportError:
        raise InvalidInput(
            f"{path}: reading W&B run files needs the wandb package: pip install 'fp8-parity-harness[wandb]'"
        ) from None
    files = wandb_files(path)
    if not files:
        raise InvalidInput(f"{path}: no run-<id>.wandb file found; pass a W&B run folder (wandb/offline-run-...)")
    ids = sorted({f.stem.removeprefix("run-") for f in files})
    if len(ids) > 1:
        raise InvalidInput(f"{path}: holds several W&B runs ({', '.join(ids)}); pass one run's folder")
    run = WandbRun()
    for file in files:
        _read_into(run, file)
        run.folders.append(file.parent)
    return run
