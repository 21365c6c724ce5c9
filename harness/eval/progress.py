"""How far a generation is, how fast it goes, and how long each session of it took.

`GenerationProgress` prints samples done, generated tokens/s and an ETA (every 10 s, and at the
end), with the server's own token counter where it has one. `record_session` appends one line per generation session to `eval/<bench>/sessions.jsonl`
(samples, generated tokens, wall seconds, GPUs), so an evaluation resumed after a kill still
reports its whole wall time and GPU-hours: summary.json adds the sessions up.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SESSIONS = "sessions.jsonl"
EVERY_S = 10.0


class GenerationProgress:
    """Samples done, generated tokens/s and an ETA, printed every EVERY_S while `ticking()`, and at the end.

    At InfiR2's lengths every sample of the first wave finishes together, minutes in: counting
    finished samples alone shows nothing for minutes and then a wild ETA ("1/80 samples, 90 tok/s,
    ETA 6h20m" on the H200 with 76 s left). With `server_tokens` (vLLM's generated-tokens counter,
    summed over replicas) the rate is the server's own, and the ETA is also bounded by the token
    budget still open: every unfinished sample's max_tokens, less what the server has generated
    for them so far, at that rate (so it assumes every sample runs to max_tokens: an upper bound
    while the rate holds). The ETA shown is the smaller of that bound and the samples-done estimate.
    """

    def __init__(self, name: str, total: int, *, quiet: bool = False, budget_tokens: int | None = None,
                 server_tokens: Callable[[], float | None] | None = None,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.name, self.total, self.quiet = name, total, quiet
        self.done, self.tokens = 0, 0
        self.budget_left = budget_tokens  # max_tokens of the samples not finished yet
        self._server_tokens, self._clock = server_tokens, clock
        self._server_start = self._read_server()
        self._start = clock()
        self._lock = threading.Lock()

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._start

    def _read_server(self) -> float | None:
        try:
            return self._server_tokens() if self._server_tokens else None
        except Exception:  # noqa: BLE001 - progress must never stop a generation
            return None

    def update(self, output_tokens: int | None, max_tokens: int | None = None) -> None:
        with self._lock:
            self.done += 1
            self.tokens += output_tokens or 0
            if self.budget_left is not None and max_tokens is not None:
                self.budget_left -= max_tokens
        if self.done == self.total and not self.quiet:
            print(f"  {self.line()}", file=sys.stderr, flush=True)

    @contextmanager
    def ticking(self) -> Iterator[None]:
        """Print the progress line every EVERY_S while the body runs, finished samples or not."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(EVERY_S):
                print(f"  {self.line()}", file=sys.stderr, flush=True)

        thread = None if self.quiet else threading.Thread(target=tick, daemon=True, name="eval-progress")
        if thread:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread:
                thread.join()

    def line(self) -> str:
        """e.g. 'aime24 120/2048 samples, 3,456 generated tok/s, 2m10s elapsed, ETA 34m51s'."""
        with self._lock:
            done, tokens, budget_left = self.done, self.tokens, self.budget_left
        elapsed = self.elapsed_s
        now = self._read_server()
        server = now - self._server_start if now is not None and self._server_start is not None else None
        generated = server if server is not None else tokens
        rate = generated / elapsed if elapsed > 0 else 0.0
        etas = []
        if done and done < self.total:
            etas.append(elapsed / done * (self.total - done))
        if server is not None and budget_left is not None and rate > 0 and done < self.total:
            in_flight = max(0.0, server - tokens)  # generated for samples not finished yet
            etas.append(max(0.0, budget_left - in_flight) / rate)
        eta = f", ETA {_clock(min(etas))}" if etas else ""
        return f"{self.name} {done}/{self.total} samples, {rate:,.0f} generated tok/s, {_clock(elapsed)} elapsed{eta}"


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
