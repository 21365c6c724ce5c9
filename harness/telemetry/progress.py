"""Training progress on stderr: a rich bar (loss, tokens/s, ETA) on a terminal, plain lines elsewhere.

Plain mode (quiet, stderr not a TTY, or CI=true) prints one line each time another ~10% of the
steps is done, so CI logs stay short but show the run is alive.
"""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def plain_mode(quiet: bool) -> bool:
    return quiet or not sys.stderr.isatty() or os.environ.get("CI", "").lower() == "true"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class ProgressDisplay:
    """update(step, loss, tokens_per_s) after every step; close() at the end."""

    def __init__(self, total_steps: int, start_step: int = 0, *, quiet: bool = False, label: str = "train"):
        self.total = max(total_steps, 1)
        self.start_step = start_step
        self.label = label
        self.plain = plain_mode(quiet)
        self._next_decile = self._decile(start_step) + 1
        self._t0 = time.perf_counter()
        self._bar: Progress | None = None
        if not self.plain:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[tps]} tok/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task(label, total=self.total, completed=start_step, loss="-", tps="-")
            self._bar.start()

    def _decile(self, step: int) -> int:
        return (10 * step) // self.total

    def update(self, step: int, loss: float | None, tokens_per_s: float | None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, loss=_fmt(loss, ".4f"), tps=_fmt(tokens_per_s, ",.0f"))
            return
        if self._decile(step) >= self._next_decile or step == self.total:
            self._next_decile = self._decile(step) + 1
            done = step - self.start_step
            elapsed = time.perf_counter() - self._t0
            eta = elapsed / done * (self.total - step) if done > 0 else None
            print(
                f"[{self.label}] step {step}/{self.total} ({100 * step // self.total}%)  loss {_fmt(loss, '.4f')}"
                f"  {_fmt(tokens_per_s, ',.0f')} tok/s  elapsed {elapsed:.0f}s  eta {_fmt(eta, '.0f')}s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
