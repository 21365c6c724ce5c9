"""The gates as a table of specs: adding a gate is one `GateSpec` here (and its Thresholds field).

A spec names the threshold field of `harness.suite.Thresholds` it is set by, the direction that
passes, how its value is read from a typed parity row, and the results-index column (if any)
that keeps the value for history. The CLI flags (`harness gate --min-speedup ...`), the checks
and the JUnit test names are all generated from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from harness.analysis.results import ArmSummary, Comparison


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value + 0.0:.4g}"  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True)
class Reading:
    """One value a gate checks: its test name, the value (None: missing data) and what it is."""

    gate: str
    value: float | None
    detail: str
    skipped: str | None = None  # skipped by design (e.g. a stage with evaluate = false), with the reason
    passes: bool | None = None  # set when the gate decides itself (regression without history)


@dataclass(frozen=True)
class Context:
    suite: str
    history: list[dict] | None  # results-index rows of earlier comparisons; None: not looked up


@dataclass(frozen=True)
class GateSpec:
    name: str
    field: str  # the harness.suite.Thresholds field that sets it (None there: the gate is off)
    direction: Literal["min", "max"]  # passes when value >= threshold (min) or <= threshold (max)
    what: str  # what the value is (CLI help, table detail)
    read: Callable[..., list[Reading]]  # (Comparison | ArmSummary, Context) -> readings
    scope: Literal["comparison", "arm"] = "comparison"  # per comparison row, or per (stage, arm) over seeds
    index_column: str | None = None  # results-index column keeping the comparison's value
    value_of: Callable[[Comparison], float | None] | None = None  # what index_column records

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    def passes(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.direction == "min" else value <= threshold


# ---------------------------------------------------------------- readers


def _speedup(row: Comparison) -> float | None:
    return row.speed.speedup.value if row.speed and row.speed.speedup else None


def _memory_ratio(row: Comparison) -> float | None:
    return row.memory.headline_ratio if row.memory else None


def _loss_error(row: Comparison) -> float | None:
    return row.loss.max_rel_error if row.loss else None


def _excess(row: Comparison) -> float | None:
    return row.loss.excess_over_noise if row.loss else None


def read_speedup(row: Comparison, ctx: Context) -> list[Reading]:
    est = row.speed.speedup if row.speed else None
    detail = f"95% CI [{fmt(est.ci_low)}, {fmt(est.ci_high)}]" if est else "no steady step times"
    return [Reading("speedup", _speedup(row), detail)]


def read_memory_ratio(row: Comparison, ctx: Context) -> list[Reading]:
    source = row.memory.headline_source if row.memory else None
    return [Reading("memory_ratio", _memory_ratio(row), source or "no memory peaks")]


def read_loss_error(row: Comparison, ctx: Context) -> list[Reading]:
    steps = row.loss.steps_compared if row.loss else 0
    return [Reading("loss_rel_error", _loss_error(row), f"{steps} steps compared")]


def read_excess(row: Comparison, ctx: Context) -> list[Reading]:
    loss = row.loss
    if loss is None or loss.noise_floor is None:
        detail = 'no BF16 control arm for this stage and seed; add one, e.g. [arms] bf16-control = "bf16"'
        return [Reading("loss_excess_over_control", None, detail)]
    detail = f"control {loss.control_arm}: {loss.noise_floor:.4g}"
    return [Reading("loss_excess_over_control", loss.excess_over_noise, detail)]


def read_score_drops(row: Comparison, ctx: Context) -> list[Reading]:
    if not row.eval:
        if row.evaluate is False:
            return [Reading("score_drop", None, "", skipped="stage has evaluate = false")]
        return [Reading("score_drop", None, "no eval results in both arms")]
    out = []
    for bench, e in sorted(row.eval.items()):
        detail = f"BF16 - FP8 avg@{e.k} points; delta 95% CI [{fmt(e.delta.ci_low)}, {fmt(e.delta.ci_high)}]"
        out.append(Reading(f"score_drop:{bench}", -e.delta.value, detail))
    return out


def read_loss_bias(summary: ArmSummary, ctx: Context) -> list[Reading]:
    bias = summary.loss_bias
    if bias is None:
        detail = "no signed loss error in parity.json; re-run `harness compare` with this harness version"
        return [Reading("loss_bias", None, detail)]
    ci = (
        f"95% t interval [{fmt(bias.ci_low)}, {fmt(bias.ci_high)}] over {bias.n} seeds"
        if bias.ci_low is not None
        else "1 seed, no interval: add seeds for one"
    )
    return [
        Reading("loss_bias", bias.value, f"mean over seeds of (FP8 - BF16) / BF16 loss, positive: FP8 higher; {ci}")
    ]


def read_regression(row: Comparison, ctx: Context) -> list[Reading]:
    if ctx.history is None:
        return []  # the index was not consulted (no index file): nothing to regress from
    same = [h for h in ctx.history if h.get("suite") == ctx.suite and h.get("stage") == row.stage
            and h.get("arm") == row.arm and h.get("seed") == row.seed and h.get("gate_passed") == 1]  # fmt: skip
    if not same:
        return [Reading("regression", None, "no earlier passing comparison", passes=True)]
    last = same[-1]
    value, previous = _speedup(row), last.get("speedup")
    if value is None or previous is None:
        return [Reading("regression:speedup", None, "speed-up unavailable")]
    drop = (previous - value) / previous
    detail = f"speed-up fell {drop:.1%} vs {previous:.4g} at {last.get('git_sha') or 'unknown commit'}"
    return [Reading("regression:speedup", drop, detail)]


# ---------------------------------------------------------------- the table

GATES: tuple[GateSpec, ...] = (
    GateSpec("speedup", "min_speedup", "min", "median step time BF16 / FP8", read_speedup,
             index_column="speedup", value_of=_speedup),
    GateSpec("memory_ratio", "max_memory_ratio", "max", "peak allocator memory FP8 / BF16 (NVML when absent)",
             read_memory_ratio, index_column="memory_ratio", value_of=_memory_ratio),
    GateSpec("loss_rel_error", "max_loss_rel_error", "max", "max windowed relative loss error", read_loss_error,
             index_column="loss_rel_error", value_of=_loss_error),
    GateSpec("loss_excess_over_control", "max_loss_excess_over_control", "max",
             "max windowed loss error minus the BF16 control arm's", read_excess,
             index_column="loss_excess_over_control", value_of=_excess),
    GateSpec("score_drop", "max_score_drop", "max", "BF16 - FP8 avg@k points, per benchmark", read_score_drops),
    GateSpec("regression", "max_regression", "max",
             "fall of speed-up vs the last passing comparison of the same stage/arm/seed (fraction)", read_regression),
    GateSpec("loss_bias", "max_loss_bias", "max", "FP8's signed loss error, averaged over seeds", read_loss_bias,
             scope="arm"),
)  # fmt: skip
BY_FIELD = {spec.field: spec for spec in GATES}


def index_values(row: Comparison) -> dict[str, float | None]:
    """The results-index metric columns of one comparison, as the gates read them."""
    return {spec.index_column: spec.value_of(row) for spec in GATES if spec.index_column and spec.value_of}
