"""Control arms: a second BF16 arm measures how far BF16 is from itself (the noise floor).

A suite may add an arm with recipe `bf16` beside the baseline arm `bf16`, e.g.

    [arms]
    bf16 = "bf16"
    bf16-control = "bf16"
    fp8 = "te:blockwise"

It trains exactly like the baseline (same seed, data order and initial weights), so on a GPU
its distance from the baseline is what run-to-run non-determinism (and, across machines, the
card) alone produces. On an H100 at the 1.5B shape, 300 steps, that was 0.39% max-window loss
error (docs/PERFORMANCE.md): above the 0.25% bar a fixed threshold would impose. The control's
comparison row is marked `control`, gets the verdict "control" and is not gated as FP8; every
FP8 row of the same stage and seed records the control's loss error as its `noise_floor` and
its own error minus that as `excess_over_noise`, which the `max_loss_excess_over_control`
gate checks.
"""

from __future__ import annotations

from harness.analysis.pairing import BASELINE_RECIPE
from harness.analysis.results import Comparison


def is_control(row: Comparison) -> bool:
    """A comparison of a BF16 arm against the BF16 baseline."""
    return row.recipe == BASELINE_RECIPE


def attach_noise_floor(comparisons: list[Comparison]) -> None:
    """Mark control rows and give every other row its stage/seed's noise floor (in place).

    With several control arms in one stage and seed, the largest floor counts (the most
    forgiving bar is the honest one: each control is an equally valid BF16 re-run).
    """
    floors: dict[tuple, tuple[float, str]] = {}
    for row in comparisons:
        row.control = is_control(row)
        if not row.control:
            continue
        row.verdict = "control"
        value = row.loss.max_rel_error if row.loss else None
        key = (row.stage, row.seed)
        if row.status == "ok" and value is not None and value >= floors.get(key, (-1.0, ""))[0]:
            floors[key] = (value, row.arm)
    for row in comparisons:
        loss = row.loss
        if row.control or loss is None:
            continue
        floor, arm = floors.get((row.stage, row.seed), (None, None))
        loss.control_arm = arm
        loss.noise_floor = floor
        value = loss.max_rel_error
        loss.excess_over_noise = None if floor is None or value is None else value - floor
