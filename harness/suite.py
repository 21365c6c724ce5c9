"""Suite files: TOML -> validated pydantic models -> a matrix of RunSpecs.

A suite describes matched training runs (stages x arms x seeds), how to evaluate them and
which gates a comparison must pass. Everything downstream reads these typed objects.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from harness.errors import InvalidInput
from harness.names import SafeName
from harness.recipes import RECIPES
from harness.textio import read_text_utf8
from harness.train.presets import PRESETS


class Strict(BaseModel):
    """Rejects unknown keys, so a misspelt option never silently does nothing."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Strict):
    path: str | None = None  # local Hugging Face checkpoint; wins over preset when set
    preset: Literal[tuple(PRESETS)] | None = None  # random-init shape when no path is given
    num_layers: int | None = Field(None, gt=0)  # override a preset's depth (e.g. an 8-layer slice)
    tokenizer: str | None = None  # local path, "builtin:tiny-bpe" or "qwen"; default from path/preset
    dtype: Literal["bfloat16", "float32"] = "bfloat16"  # of the exported checkpoints/final
    # Parameters, gradients and AdamW states. float32: master weights under BF16 autocast (16 bytes
    # per parameter). bfloat16: all of them in BF16 (8 bytes; what fits full-depth 7B on one H200),
    # less exact over long runs. The compute precision (the arm's recipe) is the same either way.
    master_dtype: Literal["float32", "bfloat16"] = "float32"
    attention: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    compile: bool = False  # applied identically to every arm
    activation_checkpointing: bool = False
    # lm_head + cross-entropy this many tokens at a time (harness/train/loss.py): one chunk of
    # FP32 logits alive instead of the micro-batch's; same loss and gradients; one process only
    loss_chunk_tokens: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _path_or_preset(self) -> ModelConfig:
        if not self.path and not self.preset:
            raise ValueError("set model.path (a local checkpoint) or model.preset (e.g. 'tiny')")
        return self


class DataConfig(Strict):
    path: str  # local file or folder (jsonl/parquet/arrow), "builtin:NAME", or a hub id
    split: str = "train"
    text_column: str = "text"  # CPT
    # SFT record format (harness/train/sft.py); "auto" picks by the columns present
    format: Literal["auto", "messages", "sharegpt", "prompt_response"] = "auto"
    messages_column: str = "messages"  # OpenAI-style multi-turn chat
    conversations_column: str = "conversations"  # ShareGPT (LLaMA-Factory): from/value turns
    prompt_column: str | None = None  # single-turn prompt/response columns (verl's SFT parquet)
    response_column: str | None = None
    prompt_dict_keys: list[str] = []  # verl: keys followed into a dict-valued prompt column
    response_dict_keys: list[str] = []
    max_samples: int | None = Field(None, gt=0)


Beta = Annotated[float, Field(ge=0, lt=1)]  # AdamW's moment decay rates: torch refuses others mid-run


class OptimConfig(Strict):
    lr: float = Field(gt=0)
    min_lr: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[Beta, Beta] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float | None = Field(1.0, gt=0)


class ScheduleConfig(Strict):
    kind: Literal["wsd", "cosine", "constant"] = "cosine"
    warmup_steps: int | None = Field(None, ge=0)
    warmup_fraction: float | None = Field(None, ge=0, lt=1)
    decay_fraction: float = Field(0.1, ge=0, le=1)  # WSD: share of steps spent decaying
    decay_only: bool = False  # WSD: start from a stable-phase checkpoint and only decay


class StageConfig(Strict):
    kind: Literal["cpt", "sft"]
    data: DataConfig
    seq_len: int = Field(gt=0)  # CPT: the row length; SFT: the longest conversation kept
    # Sequences (SFT: conversations) per optimiser step, all ranks together; or global_batch_tokens.
    global_batch_size: int | None = Field(None, gt=0)
    # SFT, packed: real tokens per optimiser step instead (conversations are taken in order until the next would
    # exceed it), like Megatron/slime's dynamic batching
    global_batch_tokens: int | None = Field(None, gt=0)
    micro_batch_size: int = Field(gt=0)  # sequences per forward on one rank (packed: sets the default below)
    # SFT, packed: tokens per forward on one rank (Megatron's max tokens per GPU); default micro_batch_size x seq_len
    micro_batch_tokens: int | None = Field(None, gt=0)
    # SFT: pack conversations into rows with per-conversation attention (harness/train/batches.py); false: one
    # conversation per row, right-padded to seq_len (the old path, kept for comparison)
    packing: bool | None = None  # default: true for sft
    # CPT: documents joined with EOS do not attend to each other (off by default, as in Megatron)
    document_mask: bool = False
    steps: int | None = Field(None, gt=0)
    epochs: float | None = Field(None, gt=0)
    optim: OptimConfig
    schedule: ScheduleConfig = ScheduleConfig()
    init_from: str | None = None  # earlier stage whose final checkpoint (same arm, seed) we start from
    checkpoint_every: int | None = Field(None, gt=0)
    evaluate: bool = True  # evaluate this stage's final checkpoint
    # Loss parity: every window's |FP8 - BF16| / BF16 under this bar (DeepSeek-V3's 0.25% by default).
    # Judges the runs, does not change them: not part of the fingerprint.
    loss_parity_bar: float = Field(0.0025, gt=0, lt=1)

    @property
    def packed(self) -> bool:
        """SFT conversations packed into rows (the default for sft)."""
        return self.kind == "sft" and self.packing is not False

    @property
    def row_tokens(self) -> int:
        """Packed: the token budget of one micro-batch row."""
        return self.micro_batch_tokens or self.micro_batch_size * self.seq_len

    @model_validator(mode="after")
    def _length(self) -> StageConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of steps or epochs")
        if (self.global_batch_size is None) == (self.global_batch_tokens is None):
            raise ValueError("set exactly one of global_batch_size (sequences per step) or global_batch_tokens")
        if self.kind == "cpt" and self.packing is not None:
            raise ValueError(
                "packing applies to sft stages; cpt rows are always full seq_len cuts of the token stream "
                "(set document_mask = true to keep documents from attending to each other)"
            )
        if self.kind == "sft" and self.document_mask:
            raise ValueError("document_mask applies to cpt; packed sft conversations never attend to each other")
        if not self.packed and (self.micro_batch_tokens or self.global_batch_tokens):
            field = "micro_batch_tokens" if self.micro_batch_tokens else "global_batch_tokens"
            raise ValueError(f"{field} needs packed sft (kind = 'sft', packing = true); use micro/global_batch_size")
        if self.packed and self.row_tokens < self.seq_len:
            raise ValueError(
                f"micro_batch_tokens ({self.row_tokens}) is below seq_len ({self.seq_len}): the longest "
                "conversation kept must fit one micro-batch; raise micro_batch_tokens or lower seq_len"
            )
        return self


class TopologyConfig(Strict):
    nnodes: int = Field(1, gt=0)
    nproc_per_node: int = Field(1, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node


class BenchmarkConfig(Strict):
    samples: int = Field(1, gt=0)  # k samples per problem; the score is avg@k
    max_tokens: int = Field(1024, gt=0)
    temperature: float = Field(0.65, ge=0)  # InfiR2 eval
    top_p: float = Field(0.95, gt=0, le=1)
    path: str | None = None  # local dataset folder; default <eval.data_dir>/<benchmark>
    limit: int | None = Field(None, gt=0)  # first N problems only
    # LiveCodeBench: problems whose contest_date lies in [start_date, end_date] (ISO dates); default
    # 2024-08-01 .. 2025-02-01, the DeepSeek-R1 / InfiR2 window of release_v5 (279 problems)
    start_date: date | None = None
    end_date: date | None = None

    @model_validator(mode="after")
    def _window(self) -> BenchmarkConfig:
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ValueError(f"start_date {self.start_date} is after end_date {self.end_date}")
        return self


# `vllm serve` flags the harness passes itself (harness/eval/vllm_server.py), and the setting that does it.
HARNESS_SERVER_FLAGS = {
    "--host": "127.0.0.1, always", "--port": "a free port per replica", "--seed": "eval.seed",
    "--tensor-parallel-size": "eval.tensor_parallel_size", "-tp": "eval.tensor_parallel_size",
    "--data-parallel-size": "eval.data_parallel_size: one server per replica", "-dp": "eval.data_parallel_size",
    "--served-model-name": "the harness's own name for the model",
}  # fmt: skip


class EvalConfig(Strict):
    backend: Literal["vllm", "transformers"] = "vllm"
    benchmarks: dict[SafeName, BenchmarkConfig] = {}  # names become eval/<benchmark>/ folders
    data_dir: str = "data/eval"
    tensor_parallel_size: int = Field(1, gt=0)
    # vLLM server replicas, each on tensor_parallel_size GPUs of its own; default: every visible GPU in use
    data_parallel_size: int | None = Field(None, gt=0)
    max_concurrency: int = Field(256, gt=0)  # requests in flight per replica
    # More `vllm serve` arguments, placed after the checkpoint as vLLM requires, e.g. ["--max-model-len",
    # "32768", "--gpu-memory-utilization", "0.85"]; recorded in each summary.json.
    server_args: list[str] = []
    seed: int = 0
    margin_points: float = Field(3.0, gt=0)  # equivalence margin on avg@k, in points
    # A benchmark's verdict is not conclusive when more samples than this fraction hit max_tokens in
    # either arm (None: unchecked), or when the arms' truncation rates differ by more than the gap
    # (absolute; 0.05 is about 3.6 standard errors apart for 10% truncation over 960 samples).
    max_truncation_rate: float | None = Field(None, ge=0, le=1)
    max_truncation_gap: float | None = Field(0.05, ge=0, le=1)
    allow_hub: bool = False  # load datasets from a hub only when explicitly allowed
    # Run LiveCodeBench's model-written programs even where only a weak sandbox exists (no bubblewrap,
    # or no binding process cap: harness/eval/sandbox.py); the summary records the level either way.
    allow_weak_sandbox: bool = False

    @field_validator("server_args")
    @classmethod
    def _server_args_leave_ours(cls, args: list[str]) -> list[str]:
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag in HARNESS_SERVER_FLAGS:
                raise ValueError(
                    f"{flag} is set by the harness ({HARNESS_SERVER_FLAGS[flag]}); remove it from server_args"
                )
        return args


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


# Step loggers by name; harness.telemetry.loggers.LOGGERS registers one class per name.
LOGGER_NAMES = ("tensorboard", "wandb")
# Fields that only observe a run (where it is logged): arms differing in them still match.
OBSERVER_FIELDS = ("profile_steps", "loggers", "wandb_project", "wandb_entity", "wandb_mode")


class TelemetryConfig(Strict):
    warmup_steps: int = Field(3, ge=0)  # excluded from steady-state statistics
    nvml_interval_s: float = Field(0.5, gt=0)
    # where every metrics.jsonl record is also sent (rank 0), e.g. ["tensorboard", "wandb"]
    loggers: list[Literal[LOGGER_NAMES]] = []
    wandb_project: str = "fp8-parity-harness"
    wandb_entity: str | None = None  # None: the W&B account's default entity
    # offline: nothing leaves the machine (upload later with `wandb sync`); WANDB_MODE, when set, wins
    wandb_mode: Literal["offline", "online"] = "offline"
    # torch.profiler over the last N warm-up steps -> profile.json (kernel time by kind); 0: off
    profile_steps: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _other_spellings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("loggers"), str):  # --set telemetry.loggers=wandb,tensorboard
            data["loggers"] = [name.strip() for name in data["loggers"].split(",") if name.strip()]
        # `tensorboard = true` predates telemetry.loggers; it still works and means loggers += ["tensorboard"]
        if "tensorboard" in data and TypeAdapter(bool).validate_python(data.pop("tensorboard")):
            data["loggers"] = [*data.get("loggers", []), "tensorboard"]
        return data

    @field_validator("loggers")
    @classmethod
    def _each_logger_once(cls, loggers: list[str]) -> list[str]:
        return list(dict.fromkeys(loggers))

    @model_validator(mode="after")
    def _profile_within_warmup(self) -> TelemetryConfig:
        if self.profile_steps and self.profile_steps >= self.warmup_steps:
            raise ValueError(
                f"profile_steps ({self.profile_steps}) must be smaller than warmup_steps ({self.warmup_steps}): "
                "the profiled steps are the last warm-up steps, after at least one unprofiled one (compilation), "
                "so the profiler never slows a step the statistics use; raise warmup_steps or lower profile_steps"
            )
        return self


class DivergenceConfig(Strict):
    max_loss: float | None = Field(None, gt=0)  # stop an arm whose loss exceeds this
    spike_factor: float | None = Field(None, gt=1)  # or jumps above factor x recent median


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
                hint = _did_you_mean(recipe, RECIPES)
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


# ---------------------------------------------------------------- loading and errors

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_suite(path: str | Path, overrides: list[str] = (), *, require_env: bool = True) -> Suite:
    """Read, expand ${VAR} / ${VAR:-default}, apply `key.path=value` overrides, validate.

    With require_env=False (validate, plan) an unset ${VAR} without default stays as written,
    so a suite whose paths come from the cluster's environment still validates on a laptop.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: suite file not found; pass the path to a .toml suite (see suites/)")
    try:
        raw = tomllib.loads(_suite_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: malformed TOML: {exc}; fix the syntax at that line") from None
    for item in overrides:
        _apply_override(raw, item, path)
    raw = _expand(raw, path, (), require_env)
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(path, exc)) from None


def unresolved_variables(path: str | Path, overrides: list[str] = ()) -> list[str]:
    """Names of ${VAR}s without default that the environment and overrides leave unset."""
    raw = tomllib.loads(_suite_text(Path(path)))
    for item in overrides:
        _apply_override(raw, item, Path(path))
    missing: list[str] = []
    _walk_strings(
        raw,
        lambda s: missing.extend(
            m.group(1) for m in _VAR.finditer(s) if m.group(2) is None and m.group(1) not in os.environ
        ),
    )
    return sorted(set(missing))


def _suite_text(path: Path) -> str:
    return read_text_utf8(path, "the suite file", "save the suite file as UTF-8 (TOML files are UTF-8)")


def _walk_strings(node: Any, visit) -> None:
    if isinstance(node, dict):
        for value in node.values():
            _walk_strings(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk_strings(value, visit)
    elif isinstance(node, str):
        visit(node)


def _expand(node: Any, path: Path, loc: tuple, require_env: bool) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, path, (*loc, k), require_env) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, path, (*loc, i), require_env) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _VAR.sub(lambda m: _lookup(m, path, loc, require_env), node)
    return node


def _lookup(match: re.Match, path: Path, loc: tuple, require_env: bool) -> str:
    name, default = match.group(1), match.group(2)
    if name in os.environ:
        return os.environ[name]
    if default is not None:
        return default
    if not require_env:
        return match.group(0)
    field = ".".join(map(str, loc))
    raise InvalidInput(
        f"{path}: {field}: environment variable {name} is not set; export {name}=... or pass --set {field}=..."
    )


def _apply_override(raw: dict, item: str, path: Path) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InvalidInput(f"--set {item!r}: expected key.path=value, e.g. --set model.path=/models/Qwen2.5-7B")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare string such as a path
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InvalidInput(f"{path}: --set {key}: {part} is not a table")
    if value == "null":  # TOML has no null: `--set key=null` removes the key, so its default applies
        node.pop(parts[-1], None)
        return
    node[parts[-1]] = parsed


def format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    errors = exc.errors()
    # A misspelt required key also shows up as "Field required" for the right name: say it once.
    misspelt = {
        (*err["loc"][:-1], close[0])
        for err in errors
        if err["type"] == "extra_forbidden"
        and (close := difflib.get_close_matches(str(err["loc"][-1]), _fields_at(Suite, err["loc"][:-1]), 1, 0.6))
    }
    for err in errors:
        is_key = err["loc"][-1:] == ("[key]",)  # a dict key (stage, arm, benchmark name) failed
        loc = ".".join(str(p) for p in err["loc"][: -2 if is_key else None]) or "(top level)"
        if err["type"] == "missing" and tuple(err["loc"]) in misspelt:
            continue
        if err["type"] == "extra_forbidden":
            known = _fields_at(Suite, err["loc"][:-1])
            hint = _did_you_mean(str(err["loc"][-1]), known)
            lines.append(f"{path}: {loc}: unknown key{hint}; remove it or use one of: {', '.join(known)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            quoted = isinstance(got, dict | list) or got is None or (isinstance(got, str) and repr(got) in msg)
            shown = "" if quoted else f" (got {got!r})"
            where = f"{loc}: " if err["loc"] else ""  # suite-wide checks name their fields themselves
            lines.append(f"{path}: {where}{msg}{shown}")
    return "\n".join(lines)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model reached by following loc; dict keys (stage names) are stepped over."""
    current: Any = model
    in_dict = False
    for part in loc:
        if in_dict:
            in_dict = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        annotation = current.model_fields[part].annotation
        if getattr(annotation, "__origin__", None) is dict:
            current, in_dict = annotation.__args__[1], True
        else:
            current = annotation
    if isinstance(current, type) and issubclass(current, BaseModel) and not in_dict:
        return list(current.model_fields)
    return []


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
