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


@dataclass(frozen=True)
class Unit:
    """How a gate's values and thresholds print, and how its command-line flag reads them."""

    name: str
    show: Callable[[float], str]
    percent: bool = False  # stored as a fraction (as in the suite file); shown in percent

    @property
    def __name__(self) -> str:  # argparse names the type in its error message
        return self.name

    def __call__(self, text: str) -> float:
        """argparse type: a percent gate takes "0.5%" or the fraction "0.005"; the others a plain number."""
        text = str(text).strip()
        if text.endswith("%"):
            if not self.percent:
                raise ValueError(f"{text!r}: this gate is a {self.name}, not a percentage")
            return float(text[:-1]) / 100
        return float(text)


def _pct(v: float) -> str:
    return f"{100 * v + 0.0:.3g}%"  # + 0.0 turns -0.0 into 0.0


RATIO = Unit("ratio", lambda v: f"{v:.3f}x")
PERCENT = Unit("percentage", _pct, percent=True)
SIGNED_PERCENT = Unit("percentage", lambda v: ("+" if v > 0 else "") + _pct(v), percent=True)
POINTS = Unit("number of points", lambda v: f"{v + 0.0:+.1f} pts")


def fmt(value: float | None, unit: Unit | None = None) -> str:
    if value is None:
        return "-"
    return unit.show(value) if unit else f"{value + 0.0:.4g}"


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
    direction: Literal["min", "max"]  # passes when value >= bound (min) or <= bound (max)
    what: str  # what the value is (CLI help)
    read: Callable[..., list[Reading]]  # (Comparison | ArmSummary, Context) -> readings
    unit: Unit
    scope: Literal["comparison", "arm"] = "comparison"  # per comparison row, or per (stage, arm) over seeds
    index_column: str | None = None  # results-index column keeping the comparison's value
    value_of: Callable[[Comparison], float | None] | None = None  # what index_column records
    cost: bool = False  # a speed or memory gate: an emulated arm makes no such claim and is skipped
    # The bound a value is held to, from its threshold: max_score_drop = 20 means FP8 - BF16 >= -20 points
    bound: Callable[[float], float] = lambda threshold: threshold

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def op(self) -> str:
        return ">=" if self.direction == "min" else "<="

    def passes(self, value: float, bound: float) -> bool:
        return value >= bound if self.direction == "min" else value <= bound


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
    if est is None:
        return [Reading("speedup", None, "no steady step times")]
    detail = f"median step time BF16 / FP8, 95% CI [{fmt(est.ci_low, RATIO)}, {fmt(est.ci_high, RATIO)}]"
    return [Reading("speedup", est.value, detail)]


def read_memory_ratio(row: Comparison, ctx: Context) -> list[Reading]:
    source = row.memory.headline_source if row.memory else None
    return [Reading("memory_ratio", _memory_ratio(row), f"FP8 / BF16 {source}" if source else "no memory peaks")]


def read_loss_error(row: Comparison, ctx: Context) -> list[Reading]:
    if row.loss is None:
        return [Reading("loss_rel_error", None, "no loss curves")]
    detail = f"max over {row.loss.window_steps}-step windows of |FP8 - BF16| / BF16, {row.loss.steps_compared} steps"
    return [Reading("loss_rel_error", row.loss.max_rel_error, detail)]


def read_excess(row: Comparison, ctx: Context) -> list[Reading]:
    loss = row.loss
    if loss is None or loss.noise_floor is None:
        detail = 'no BF16 control arm for this stage and seed; add one, e.g. [arms] bf16-control = "bf16"'
        return [Reading("loss_excess_over_control", None, detail)]
    detail = f"minus the BF16 control {loss.control_arm}'s max window error ({fmt(loss.noise_floor, PERCENT)})"
    return [Reading("loss_excess_over_control", loss.excess_over_noise, detail)]


def read_score_deltas(row: Comparison, ctx: Context) -> list[Reading]:
    if not row.eval:
        if row.evaluate is False:
            return [Reading("score_drop", None, "", skipped="stage has evaluate = false")]
        return [Reading("score_drop", None, "no eval results in both arms")]
    out = []
    for bench, e in sorted(row.eval.items()):
        ci = f"[{fmt(e.delta.ci_low, POINTS)}, {fmt(e.delta.ci_high, POINTS)}]"
        detail = f"FP8 - BF16 avg@{e.k}, 95% CI {ci}; the parity verdict needs the CI inside +/-{e.margin_points:g}"
        out.append(Reading(f"score_drop:{bench}", e.delta.value, detail))
    return out


def read_loss_bias(summary: ArmSummary, ctx: Context) -> list[Reading]:
    bias = summary.loss_bias
    if bias is None:
        detail = "no signed loss error in parity.json; re-run `harness compare` with this harness version"
        return [Reading("loss_bias", None, detail)]
    ci = (
        f"95% t interval [{fmt(bias.ci_low, SIGNED_PERCENT)}, {fmt(bias.ci_high, SIGNED_PERCENT)}] over {bias.n} seeds"
        if bias.ci_low is not None
        else "1 seed, no interval: add seeds for one"
    )
    detail = f"mean over seeds of (FP8 - BF16) / BF16 loss, positive: FP8 higher; {ci}"
    return [Reading("loss_bias", bias.value, detail)]


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
    detail = f"speed-up fell {drop:.1%} vs {previous:.3f}x at {last.get('git_sha') or 'unknown commit'}"
    return [Reading("regression:speedup", drop, detail)]


# ---------------------------------------------------------------- the table

GATES: tuple[GateSpec, ...] = (
    GateSpec("speedup", "min_speedup", "min", "the speed-up (median step time BF16 / FP8)", read_speedup, RATIO,
             index_column="speedup", value_of=_speedup, cost=True),
    GateSpec("memory_ratio", "max_memory_ratio", "max",
             "the peak memory ratio FP8 / BF16 (allocator; NVML, then CPU peak RSS, when absent)", read_memory_ratio,
             RATIO, index_column="memory_ratio", value_of=_memory_ratio, cost=True),
    GateSpec("loss_rel_error", "max_loss_rel_error", "max", "the max windowed relative loss error |FP8 - BF16| / BF16",
             read_loss_error, PERCENT, index_column="loss_rel_error", value_of=_loss_error),
    GateSpec("loss_excess_over_control", "max_loss_excess_over_control", "max",
             "the max windowed loss error minus the BF16 control arm's", read_excess, PERCENT,
             index_column="loss_excess_over_control", value_of=_excess),
    GateSpec("score_drop", "max_score_drop", "min", "the drop of avg@k in points (passes while FP8 - BF16 >= -X)",
             read_score_deltas, POINTS, bound=lambda threshold: -threshold),
    GateSpec("regression", "max_regression", "max",
             "the fall of the speed-up since the last passing comparison of the same stage/arm/seed", read_regression,
             PERCENT, cost=True),
    GateSpec("loss_bias", "max_loss_bias", "max", "FP8's signed loss error (FP8 - BF16) / BF16, averaged over seeds",
             read_loss_bias, SIGNED_PERCENT, scope="arm"),
)  # fmt: skip
BY_FIELD = {spec.field: spec for spec in GATES}


def index_values(row: Comparison) -> dict[str, float | None]:
    """The results-index metric columns of one comparison, as the gates read them."""
    return {spec.index_column: spec.value_of(row) for spec in GATES if spec.index_column and spec.value_of}
