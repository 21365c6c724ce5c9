"""Time one case with pytest-benchmark and record its peak memory and provenance.

pedantic() runs `reset` (untimed) before every round and then `step`, which ends with
torch.cuda.synchronize(), so each timed round is the GPU's work, not the launch queue's.
Warm-up rounds (first-call kernel JIT, torch.compile, TE/torchao caches, AdamW state) are not timed.
"""

from __future__ import annotations

import torch

from benchmarks.cases import Timed
from benchmarks.environment import Settings, machine


def measure(benchmark, timed: Timed, settings: Settings, **extra_info) -> None:
    """Run `timed` for settings.rounds rounds after settings.warmup_rounds; fill benchmark.extra_info.

    extra_info gets the caller's fields (case, recipe, shape...), `compile`, the device and library
    versions, and `peak_alloc_bytes` / `peak_alloc_gib`: torch.cuda.max_memory_allocated over the
    warm-up and timed rounds, after resetting the peak once the case (weights, inputs) was built.
    """
    torch.cuda.reset_peak_memory_stats()
    benchmark.pedantic(
        timed.step, setup=timed.reset, rounds=settings.rounds, warmup_rounds=settings.warmup_rounds, iterations=1
    )
    peak = torch.cuda.max_memory_allocated()
    benchmark.extra_info.update(extra_info)
    benchmark.extra_info.update(
        compile=settings.compile, peak_alloc_bytes=int(peak), peak_alloc_gib=round(peak / 2**30, 3), **machine()
    )
