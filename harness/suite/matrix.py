"""The suite as a whole (`Suite`, with the checks that span its tables) and its expansion into a
matrix of runs: stages x arms x seeds, one `RunSpec` each, with the fingerprint matched arms share."""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from harness.names import SafeName
from harness.recipes import RECIPES
from harness.suite.evaluation import EvalConfig
from harness.suite.gates import GatesConfig
from harness.suite.training import (
    OBSERVER_FIELDS,
    DivergenceConfig,
    ModelConfig,
    StageConfig,
    Strict,
    TelemetryConfig,
    TopologyConfig,
)


class Suite(Strict):
    name: SafeName  # suite, stage and arm names become folder names under runs/ (harness/names.py)
    description: str = ""
    seeds: list[Annotated[int, Field(ge=0)]] = [0]  # numpy's generators take no negative seed
    runs_dir: str = "runs"
    model: ModelConfig
    arms: dict[SafeName, str]  # arm name -> precision recipe
    stages: dict[SafeName, StageConfig]
    topology: TopologyConfig = TopologyConfig()
    eval: EvalConfig = EvalConfig()
    gates: GatesConfig = GatesConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    divergence: DivergenceConfig = DivergenceConfig()

    @field_validator("arms")
    @classmethod
    def _known_recipes(cls, arms: dict[str, str]) -> dict[str, str]:
        if not arms:
            raise ValueError('name at least one arm, e.g. bf16 = "bf16"')
        for arm, recipe in arms.items():
            if recipe not in RECIPES:
                hint = did_you_mean(recipe, RECIPES)
                raise ValueError(f"arm {arm!r}: unknown recipe {recipe!r}{hint}; known: {', '.join(RECIPES)}")
        return arms

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds:
            raise ValueError("list at least one seed, e.g. seeds = [0]")
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(
                f"seed {repeated[0]} is listed {seeds.count(repeated[0])} times; each seed is one run per arm "
                "(the same folder), so list each seed once"
            )
        return seeds

    @model_validator(mode="after")
    def _cross_checks(self) -> Suite:
        if not self.stages:
            raise ValueError("stages: define at least one stage, e.g. [stages.cpt]")
        if self.model.loss_chunk_tokens and self.topology.world_size > 1:
            raise ValueError(
                f"model.loss_chunk_tokens: the chunked loss runs in one process only (world size "
                f"{self.topology.world_size}); remove it, or set topology.nnodes = 1 and nproc_per_node = 1"
            )
        seen: list[str] = []
        for name, stage in self.stages.items():
            if stage.init_from is not None and stage.init_from not in seen:
                raise ValueError(
                    f"stages.{name}.init_from: {stage.init_from!r} is not an earlier stage ({seen or 'none'})"
                )
            if not stage.packed and stage.global_batch_size % (stage.micro_batch_size * self.topology.world_size):
                raise ValueError(
                    f"stages.{name}.global_batch_size: {stage.global_batch_size} is not a multiple of "
                    f"micro_batch_size x world size ({stage.micro_batch_size} x {self.topology.world_size})"
                )
            seen.append(name)
        for name in self.gates.stages:
            if name not in self.stages:
                raise ValueError(
                    f"gates.stages.{name}: no stage {name!r} in this suite (stages: {', '.join(self.stages)}); "
                    "name a stage of [stages.NAME] or remove the table"
                )
        return self


class RunSpec(Strict):
    """One training run: a stage of one arm with one seed, fully resolved (spec.json)."""

    suite: SafeName
    run_id: SafeName  # the run folder's name
    stage_name: SafeName
    arm: SafeName
    recipe: str
    seed: int
    stage: StageConfig
    model: ModelConfig
    topology: TopologyConfig
    eval: EvalConfig
    telemetry: TelemetryConfig
    divergence: DivergenceConfig
    init_from_run: str | None = None  # run_id whose final checkpoint this run starts from
    fingerprint: str = ""

    def matched_fields(self) -> dict[str, Any]:
        """Everything two matched arms must share: all but the arm, its recipe and ids."""
        data = self.model_dump(mode="json")
        for key in ("run_id", "arm", "recipe", "fingerprint", "init_from_run"):
            data.pop(key)
        # Profiling (only warm-up steps) and step loggers only observe a run: such an arm still matches.
        for name in OBSERVER_FIELDS:
            data["telemetry"].pop(name)
        # How a comparison is judged changes no run: a run stays reusable when these are retuned.
        data["stage"].pop("loss_parity_bar")
        for key in ("max_truncation_rate", "max_truncation_gap"):
            data["eval"].pop(key)
        return data


def fingerprint(spec: RunSpec) -> str:
    blob = json.dumps(spec.matched_fields(), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def plan(suite: Suite) -> list[RunSpec]:
    """Expand a suite into runs, in an order where every run's init_from comes first."""
    specs = []
    for seed in suite.seeds:
        for stage_name, stage in suite.stages.items():
            for arm, recipe in suite.arms.items():
                spec = RunSpec(
                    suite=suite.name,
                    run_id=run_id(stage_name, arm, seed),
                    stage_name=stage_name,
                    arm=arm,
                    recipe=recipe,
                    seed=seed,
                    stage=stage,
                    model=suite.model,
                    topology=suite.topology,
                    eval=suite.eval,
                    telemetry=suite.telemetry,
                    divergence=suite.divergence,
                    init_from_run=run_id(stage.init_from, arm, seed) if stage.init_from else None,
                )
                spec.fingerprint = fingerprint(spec)
                specs.append(spec)
    return specs


def run_id(stage_name: str, arm: str, seed: int) -> str:
    return f"{stage_name}-{arm}-s{seed}"


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
