"""[eval] and [eval.benchmarks.NAME]: how checkpoints are evaluated (harness/eval/) and judged."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.names import SafeName
from harness.suite.training import Strict


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
