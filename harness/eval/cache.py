"""Resumable generations: one JSON line per finished (problem_id, sample_index), flushed as it lands.

A line holds the sample's seed, output text, generated-token count and finish reason ("length":
it hit max_tokens); lines written before the last two existed read as None.

Each line carries a `key` (hash of checkpoint, backend and generation settings); lines whose
key differs from the current one are ignored, so changing max_tokens or retraining the model
regenerates instead of silently mixing outputs. A torn last line (killed mid-write) is skipped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def appended_records(path: Path):
    """The JSON values of a file appended one line at a time, skipping a torn line from a kill."""
    if not path.is_file():
        return
    for line in path.read_text(errors="replace").splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def checkpoint_stamp(checkpoint: Path) -> dict:
    """Size and mtime of the weight files: a retrained checkpoint gets a new cache key."""
    files = sorted(checkpoint.glob("*.safetensors")) + sorted(checkpoint.glob("*.bin"))
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


class GenerationCache:
    def __init__(self, path: str | Path, key: str):
        self.path = Path(path)
        self.key = key
        self.stale = 0  # lines from other settings, ignored

    def load(self) -> dict[tuple[str, int], dict]:
        """Finished samples with the current key: (problem_id, sample_index) -> record."""
        done: dict[tuple[str, int], dict] = {}
        self.stale = 0
        for record in appended_records(self.path):
            if not isinstance(record, dict) or record.get("key") != self.key:
                self.stale += 1
                continue
            done[(str(record["problem_id"]), int(record["sample_index"]))] = record
        return done

    def append(self, problem_id: str, sample_index: int, seed: int, completion) -> None:
        """One finished sample: its text, generated-token count and finish reason (a Completion)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(
            {
                "key": self.key,
                "problem_id": problem_id,
                "sample_index": sample_index,
                "seed": seed,
                "output": completion.text,
                "output_tokens": completion.output_tokens,
                "finish_reason": completion.finish_reason,
            }
        )
        with self.path.open("a") as fh:
            fh.write(line + "\n")
            fh.flush()
