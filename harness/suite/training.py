"""The training half of a suite file: [model], [stages.NAME] (data, optimiser, schedule), [topology],
[telemetry] and [divergence]; every table a pydantic model that rejects unknown keys."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

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
