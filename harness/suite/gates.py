"""[gates] and [gates.stages.NAME]: the thresholds a comparison must meet (harness/gate/specs.py)."""

from __future__ import annotations

from pydantic import Field

from harness.suite.training import Strict


class Thresholds(Strict):
    """The gates' thresholds (None: that gate is off); each field has one spec in harness/gate/specs.py."""

    min_speedup: float | None = Field(None, gt=0)
    max_memory_ratio: float | None = Field(None, gt=0)
    max_loss_rel_error: float | None = Field(None, gt=0)
    # FP8's max windowed loss error minus a BF16 control arm's (harness/analysis/control.py)
    max_loss_excess_over_control: float | None = Field(None, ge=0)
    # mean over seeds of FP8's signed loss error (summary loss_bias): a systematic loss cost
    max_loss_bias: float | None = Field(None, ge=0)
    max_score_drop: float | None = Field(None, ge=0)  # points of avg@k
    max_regression: float | None = Field(None, ge=0)  # fraction vs the last passing result

    def any_set(self) -> bool:
        return any(getattr(self, name) is not None for name in Thresholds.model_fields)


class GatesConfig(Thresholds):
    """[gates]: thresholds for every stage, and [gates.stages.NAME] tables for stages gated otherwise.

    A stage with its own table is gated by that table alone (no merging with [gates]), so a
    gate that means nothing for that stage is simply left out of it; e.g. a tiny model's SFT
    loss near 0.05, where any two runs differ by tens of percent, gated on scores only.
    """

    stages: dict[str, Thresholds] = {}

    def for_stage(self, stage: str | None) -> Thresholds:
        if stage in self.stages:
            return self.stages[stage]
        return Thresholds.model_validate(self.model_dump(exclude={"stages"}))

    def any_set(self) -> bool:
        return super().any_set() or any(t.any_set() for t in self.stages.values())
