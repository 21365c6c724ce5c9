"""Where a step's GPU time goes: torch.profiler kernel times grouped by kind (GEMM, attention, ...).

    profiler = StepProfiler(run_dir, steps=range(8, 11), device=device)   # the last warm-up steps
    for step in ...:
        with profiler.around(step), telemetry.step(step) as rec:
            ...
    # after step 10: run_dir/profile.json

`telemetry.profile_steps = N` in a suite profiles the last N warm-up steps of every run (rank 0),
so the profiler's overhead never reaches the steady-state statistics, and writes profile.json:
kernel time per step by kind and every kernel's per-step time. The kernel time per step against
the summary's median step time is how busy the GPU was (kernels of one stream do not overlap;
under FSDP the NCCL kernels overlap compute, so there the sum can exceed the wall time).
On a CPU device the profiler's CPU operator times stand in for kernels (what the tests use).
`python -m benchmarks.kernels` uses the same grouping for one decoder layer per recipe.
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from collections.abc import Iterator

import torch

from harness.store import RunDir, atomic_write_json

# (kind, pattern over the lower-cased kernel name); the first match wins. Inductor's pointwise,
# reduction and persistent-reduction kernels come first: they are named after every op they fuse,
# so one that feeds a GEMM reads "triton_poi_fused__scaled_mm_..." and would otherwise count as a
# GEMM (torchao's FP8 casts live in them). Inductor's GEMM templates (triton_tem_) stay GEMMs.
KINDS = (
    ("inductor fused", r"^triton_(poi|red|per)_"),
    ("attention", r"flash|fmha|attention|sdpa"),
    ("gemm", r"gemm|matmul|nvjet|xmma|cutlass|cublas|wgmma|scaled_mm|\bmm\b|addmm|^triton_tem_"),
    ("communication", r"nccl|all_?gather|reduce_?scatter|all_?reduce"),
    ("fp8 cast/transpose", r"quantiz|cast|transpose|amax|fp8|float8|scale"),
    ("norm", r"norm"),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, lowered):
            return kind
    return "other"


def summarize(kernels: list[tuple[str, float, int]], steps: int, top: int = 12) -> dict:
    """Per-step kernel time by kind, its total, the `top` kernels and every kernel, from (name, total_us, calls) rows."""
    by_kind: dict[str, float] = defaultdict(float)
    for name, total_us, _ in kernels:
        by_kind[kind_of(name)] += total_us / 1e3 / steps
    ranked = sorted(kernels, key=lambda row: -row[1])
    return dict(
        per_step_ms=dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        total_ms=sum(by_kind.values()),
        top=[
            dict(name=n, kind=kind_of(n), ms_per_step=us / 1e3 / steps, calls_per_step=c / steps)
            for n, us, c in ranked[:top]
        ],
        # Every kernel as well, so a saved profile can be regrouped later without the GPU.
        kernels=[dict(name=n, us_per_step=us / steps, calls_per_step=c / steps) for n, us, c in ranked],
    )


def kernel_rows(prof, device: torch.device) -> list[tuple[str, float, int]]:
    """(name, total self time in us, calls) of every GPU kernel (CPU operator on a CPU device) profiled."""
    rows = []
    for event in prof.key_averages():
        total = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        if total > 0 and (device.type != "cuda" or event.device_type == torch.autograd.DeviceType.CUDA):
            rows.append((event.key, float(total), int(event.count)))
    return rows


def activities(device: torch.device) -> list:
    from torch.profiler import ProfilerActivity

    return [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]


def profiled_steps(warmup_steps: int, profile_steps: int, total_steps: int) -> range:
    """The last `profile_steps` warm-up steps (of the run, when it is shorter), never step 1 (compilation)."""
    if not profile_steps:
        return range(0)
    last = min(warmup_steps, total_steps)
    return range(max(2, last - profile_steps + 1), last + 1)


class StepProfiler:
    """Profile the given consecutive steps of a run and write profile.json after the last of them.

    Inactive (a no-op) when `steps` is empty or `write` is False (ranks other than 0).
    """

    def __init__(self, run_dir: RunDir, steps: range, device: torch.device, *, write: bool = True):
        self.run_dir, self.steps, self.device = run_dir, steps if write else range(0), device
        self._prof = None

    @contextlib.contextmanager
    def around(self, step: int) -> Iterator[None]:
        if step == (self.steps.start if self.steps else None):
            from torch.profiler import profile

            self._prof = profile(activities=activities(self.device))
            self._prof.__enter__()
        try:
            yield
        except BaseException:
            if self._prof is not None:  # a step that failed: stop profiling, write nothing
                prof, self._prof = self._prof, None
                prof.__exit__(None, None, None)
            raise
        if self._prof is not None and step == self.steps[-1]:
            self._finish(step)

    def _finish(self, last_step: int) -> None:
        prof, self._prof = self._prof, None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        prof.__exit__(None, None, None)
        result = summarize(kernel_rows(prof, self.device), len(self.steps))
        atomic_write_json(
            self.run_dir.profile,
            dict(
                steps=[self.steps.start, last_step],
                device=torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
                unit="GPU kernel time" if self.device.type == "cuda" else "CPU operator self time (no GPU)",
                **result,
            ),
        )
