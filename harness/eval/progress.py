"""How far a generation is, how fast it goes, and how long each session of it took.

`GenerationProgress` prints samples done, generated tokens/s and an ETA (every 10 s, and at the
end). `record_session` appends one line per generation session to `eval/<bench>/sessions.jsonl`
(samples, generated tokens, wall seconds, GPUs), so an evaluation resumed after a kill still
reports its whole wall time and GPU-hours: summary.json adds the sessions up.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

SESSIONS = "sessions.jsonl"
EVERY_S = 10.0


class GenerationProgress:
    def __init__(self, name: str, total: int, *, quiet: bool = False):
        self.name, self.total, self.quiet = name, total, quiet
        self.done, self.tokens = 0, 0
        self._start = self._last = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._start

    def update(self, output_tokens: int | None) -> None:
        self.done += 1
        self.tokens += output_tokens or 0
        now = time.monotonic()
        if self.quiet or (now - self._last < EVERY_S and self.done < self.total):
            return
        self._last = now
        print(f"  {self.line()}", file=sys.stderr, flush=True)

    def line(self) -> str:
        """e.g. 'aime24 120/2048 samples, 3,456 generated tok/s, 2m10s elapsed, ETA 34m51s'."""
        elapsed = self.elapsed_s
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        left = elapsed / self.done * (self.total - self.done) if self.done else None
        eta = f", ETA {_clock(left)}" if left is not None and self.done < self.total else ""
        return (
            f"{self.name} {self.done}/{self.total} samples, {rate:,.0f} generated tok/s, {_clock(elapsed)} elapsed{eta}"
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def record_session(bench_dir: Path, key: str, samples: int, tokens: int, wall_s: float, gpus: int, *,
                   share: float = 1.0, shared_with: list[str] = ()) -> None:  # fmt: skip
    """Append this generation session to bench_dir/sessions.jsonl (`key`: the generation cache's settings key).

    Benchmarks generated together share the session's wall time; `share` is this one's part of the
    GPU time (its fraction of the generated tokens), so GPU-hours add up over benchmarks."""
    bench_dir.mkdir(parents=True, exist_ok=True)
    line = {"key": key, "samples": samples, "output_tokens": tokens, "wall_time_s": wall_s, "gpus": gpus,
            "share": share, "shared_with": list(shared_with), "ended_at": time.time()}  # fmt: skip
    with (bench_dir / SESSIONS).open("a") as fh:
        fh.write(json.dumps(line) + "\n")


def read_sessions(bench_dir: Path, key: str) -> list[dict]:
    """The generation sessions recorded for a benchmark under these settings (a torn last line is skipped)."""
    from harness.eval.cache import appended_records

    return [r for r in appended_records(bench_dir / SESSIONS) if isinstance(r, dict) and r.get("key") == key]
