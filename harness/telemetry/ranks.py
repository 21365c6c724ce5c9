"""Combining per-rank measurements: memory is the max over ranks, tokens and energy the sum.

`reduce_ranks` is the rule (a pure function, unit-tested); `gather_reduce` applies it across the
processes of an initialised torch.distributed group. Every rank gets the same result; only
rank 0 writes files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

Op = Literal["sum", "max"]

# Per step: the step is as slow as its slowest rank; memory is the worst rank's.
STEP_OPS: dict[str, Op] = {
    "tokens": "sum",
    "processed_tokens": "sum",
    "step_time_s": "max",
    "peak_alloc_bytes": "max",
    "peak_reserved_bytes": "max",
}
# At the end of the run, from each rank's NVML sampler.
FINISH_OPS: dict[str, Op] = {
    "nvml_peak_memory_bytes": "max",
    "energy_j": "sum",
    "steady_energy_j": "sum",
    "rss_peak_bytes": "max",
}


def reduce_ranks(per_rank: Sequence[Mapping], ops: Mapping[str, Op]) -> dict:
    """Combine one dict per rank field by field. A field that any rank lacks (None) is None:
    a partial sum or max would silently under-report."""
    out: dict = {}
    for key, op in ops.items():
        values = [rank.get(key) for rank in per_rank]
        if not values or any(v is None for v in values):
            out[key] = None
        elif op == "sum":
            out[key] = sum(values)
        elif op == "max":
            out[key] = max(values)
        else:
            raise ValueError(f"unknown reduction {op!r} for {key}")
    return out


def distributed_world() -> tuple[int, int] | None:
    """(rank, world_size) when torch.distributed is initialised with more than one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def gather_reduce(local: Mapping, ops: Mapping[str, Op]) -> dict:
    """reduce_ranks over every process (all_gather_object keeps None intact); local only when single."""
    if distributed_world() is None:
        return reduce_ranks([local], ops)
    import torch.distributed as dist

    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, {k: local.get(k) for k in ops})
    return reduce_ranks(gathered, ops)


def broadcast_from_rank0(obj):
    """Rank 0's (picklable) object on every rank; the object itself when not distributed."""
    if distributed_world() is None:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
