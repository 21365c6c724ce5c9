"""What a valid suite file can still get wrong that only compare, eval or the gate would notice,
after every arm has trained: no BF16 baseline, an unknown benchmark, a gate that cannot pass.

Read from the Suite alone (no torch, no machine), so `harness validate` says it too; the device-
dependent part (`machine_gate_problems`) is preflight's. Each problem is one line naming the field
and the fix; docs/RELIABILITY.md lists them.
"""

from __future__ import annotations

import difflib

from harness.analysis.pairing import BASELINE_RECIPE
from harness.errors import InvalidInput
from harness.suite import StageConfig, Suite, TelemetryConfig, Thresholds

LOSS_GATES = ("max_loss_rel_error", "max_loss_excess_over_control", "max_loss_bias")
SPEED_GATES = ("min_speedup", "max_regression")


def check_suite(suite: Suite, where: str) -> None:
    """InvalidInput listing every problem (one line each, prefixed with `where`), or nothing."""
    problems = [*baseline_problems(suite), *benchmark_problems(suite), *gate_problems(suite)]
    if problems:
        raise InvalidInput("\n".join(f"{where}: {p}" for p in problems))


def baseline_arm_name(suite: Suite) -> str:
    """The arm every other is compared with: the one recipe-bf16 arm, or the one named 'bf16'."""
    arms = sorted(a for a, r in suite.arms.items() if r == BASELINE_RECIPE)
    return BASELINE_RECIPE if BASELINE_RECIPE in arms or not arms else arms[0]


def baseline_problems(suite: Suite) -> list[str]:
    arms = sorted(a for a, r in suite.arms.items() if r == BASELINE_RECIPE)
    if not arms:
        found = ", ".join(f"{a} = {r!r}" for a, r in suite.arms.items())
        return [
            f"arms: no baseline arm with recipe 'bf16' ({found}); every FP8 arm is compared with one, so "
            'add it, e.g. bf16 = "bf16"; nothing was trained'
        ]
    if len(arms) > 1 and BASELINE_RECIPE not in arms:
        return [
            f"arms: several arms use recipe 'bf16' ({', '.join(arms)}) and none is named 'bf16'; name the "
            "baseline arm 'bf16' (the others are its controls)"
        ]
    return []


def benchmark_problems(suite: Suite) -> list[str]:
    from harness.eval.benchmarks import REGISTRY

    problems = []
    for name in suite.eval.benchmarks:
        if name not in REGISTRY:
            close = [k for k in REGISTRY if k.startswith(name)] or difflib.get_close_matches(
                name, list(REGISTRY), 1, 0.6
            )
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"eval.benchmarks.{name}: unknown benchmark{hint}; known: {', '.join(REGISTRY)}")
    return problems


def gate_problems(suite: Suite) -> list[str]:
    """Gates that could end only in "no verdict" (exit 2) after training: none at all, or one whose
    value no run of this suite produces."""
    if all(recipe == BASELINE_RECIPE for recipe in suite.arms.values()):
        return []  # nothing to compare, so nothing is gated (`harness run` says so and exits 0)
    if not suite.gates.any_set():
        return [
            "gates: none set, so `harness run` could end only in 'no verdict' (exit 2) after training; "
            "add [gates], e.g. max_loss_rel_error = 0.01 (README, docs/REPORT.md)"
        ]
    controls = sum(recipe == BASELINE_RECIPE for recipe in suite.arms.values()) - 1
    problems = []
    for name, stage in suite.stages.items():
        gates = suite.gates.for_stage(name)
        table = f"gates.stages.{name}" if name in suite.gates.stages else "gates"
        if gates.max_score_drop is not None and stage.evaluate and not suite.eval.benchmarks:
            problems.append(
                f"{table}.max_score_drop: stage {name} is evaluated but eval.benchmarks is empty, so this gate "
                "can never pass; add [eval.benchmarks.NAME] or remove the gate"
            )
        if gates.max_loss_excess_over_control is not None and controls < 1:
            problems.append(
                f"{table}.max_loss_excess_over_control: no BF16 control arm (a second arm with recipe 'bf16'), "
                'so this gate can never pass; add one, e.g. bf16-control = "bf16", or remove the gate'
            )
        problems += _length_problems(name, stage, suite.telemetry, gates, table)
    return problems


def _length_problems(name: str, stage: StageConfig, telemetry: TelemetryConfig, gates: Thresholds,
                     table: str) -> list[str]:  # fmt: skip
    """Speed needs steps after warm-up that write no checkpoint; loss parity steps after both warm-ups."""
    if stage.steps is None:
        return []  # sized in epochs: the step count depends on the data
    problems = []
    speed = [g for g in SPEED_GATES if getattr(gates, g) is not None]
    every = stage.checkpoint_every
    steady = [s for s in range(telemetry.warmup_steps + 1, stage.steps + 1) if not (every and s % every == 0)]
    if speed and not steady:
        problems.append(
            f"{table}.{speed[0]}: stages.{name} has {stage.steps} steps and none is timed (telemetry.warmup_steps "
            f"= {telemetry.warmup_steps}, checkpoint_every = {every}), so this gate can never pass; add steps"
        )
    loss = [g for g in LOSS_GATES if getattr(gates, g) is not None]
    sched = stage.schedule
    warm = max(telemetry.warmup_steps, sched.warmup_steps or 0, int((sched.warmup_fraction or 0) * stage.steps))
    if loss and stage.steps <= warm:
        problems.append(
            f"{table}.{loss[0]}: stages.{name} has {stage.steps} steps, all within warm-up ({warm}: the larger of "
            "telemetry.warmup_steps and the schedule's), so no loss is compared and this gate can never pass; "
            "add steps or shorten the warm-up"
        )
    return problems


def machine_gate_problems(suite: Suite, device_type: str) -> list[str]:
    """Gates this device cannot measure: on a CPU there is no allocator peak and no NVML."""
    if device_type != "cpu":
        return []
    problems = []
    for name in suite.stages:
        if suite.gates.for_stage(name).max_memory_ratio is not None:
            table = f"gates.stages.{name}" if name in suite.gates.stages else "gates"
            problems.append(
                f"{table}.max_memory_ratio: runs on a CPU record no memory peaks (no CUDA allocator, no NVML), so "
                "this gate can never pass here; run on a GPU or remove the gate"
            )
    return list(dict.fromkeys(problems))
