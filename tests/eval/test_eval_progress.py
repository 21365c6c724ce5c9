"""The eval's progress line: what a user watching a long generation sees, before and after samples finish."""

from __future__ import annotations

import io
import sys
import threading

from harness.eval import progress as progress_mod
from harness.eval.progress import GenerationProgress

# InfiR2's lengths at --limit 1 on one H200 (docs/EVAL.md): aime24 and aime25 32 x 31,000 tokens,
# gpqa_diamond and livecodebench_v5 8 x 26,000 and 8 x 27,000, all in flight at once at 6,580 tok/s.
BUDGET = 64 * 31_000 + 8 * 26_000 + 8 * 27_000
RATE = 6_580.0


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_with_the_servers_counter_the_eta_follows_the_tokens_left_not_the_first_sample():
    clock, counter = Clock(), {"tokens": 1_000.0}  # the server had generated before this session
    p = GenerationProgress("infir2", 80, quiet=True, budget_tokens=BUDGET, server_tokens=lambda: counter["tokens"],
                           clock=clock)  # fmt: skip
    clock.t, counter["tokens"] = 289.0, 1_000.0 + RATE * 289  # the first gpqa sample ends at 26,000 tokens
    p.update(26_000, 26_000)
    line = p.line()
    assert "1/80 samples, 6,580 generated tok/s, 4m49s elapsed" in line
    # Left: 2,408,000 budgeted - 26,000 finished - 1,875,620 generated in flight = 506,380 at 6,580/s
    assert line.endswith("ETA 1m16s"), line


def test_without_a_counter_the_rate_and_eta_come_from_finished_samples():
    clock = Clock()
    p = GenerationProgress("aime24", 4, quiet=True, clock=clock)
    clock.t = 10.0
    p.update(100)
    assert p.line() == "aime24 1/4 samples, 10 generated tok/s, 0m10s elapsed, ETA 0m30s"


def test_before_any_sample_finishes_the_line_still_shows_the_servers_rate_and_an_eta():
    clock, counter = Clock(), {"tokens": 0.0}
    p = GenerationProgress("aime24", 2, quiet=True, budget_tokens=2_000, server_tokens=lambda: counter["tokens"],
                           clock=clock)  # fmt: skip
    clock.t, counter["tokens"] = 10.0, 1_000.0
    assert p.line() == "aime24 0/2 samples, 100 generated tok/s, 0m10s elapsed, ETA 0m10s"


def test_a_server_that_stops_answering_metrics_never_breaks_the_line():
    def broken():
        raise OSError("connection refused")

    p = GenerationProgress("aime24", 2, quiet=True, budget_tokens=10, server_tokens=broken, clock=Clock())
    p.update(5, 5)
    assert p.line().startswith("aime24 1/2 samples, 0 generated tok/s")


def test_the_line_is_printed_while_no_sample_has_finished(monkeypatch):
    printed = threading.Event()

    class Stderr(io.StringIO):
        def write(self, text):
            n = super().write(text)
            if "0/3 samples" in text:
                printed.set()
            return n

    stderr = Stderr()
    monkeypatch.setattr(progress_mod, "EVERY_S", 0.01)
    monkeypatch.setattr(sys, "stderr", stderr)
    p = GenerationProgress("aime24", 3)
    with p.ticking():
        assert printed.wait(timeout=30), "no progress line while the first samples were still generating"
    assert "aime24 0/3 samples" in stderr.getvalue()
