"""EvalScope as the engine for prompts and scoring: its registered adapters turn records into chat
messages and score outputs with its own extraction and matching.

The harness keeps generation (vLLM server / transformers), the per-sample cache and seeds; for each
benchmark it asks EvalScope's adapter (`evalscope.api.registry.get_benchmark`) for
`record_to_sample` + the prompt template, and for `calculate_metrics` on a finished TaskState.
Answers are read after the last `</think>` (InfiR2's eval scripts) before EvalScope sees them:
EvalScope's own `remove_until` filter cuts at the first `</think>`, not the last.

LiveCodeBench is the exception for scoring: EvalScope's adapter would run generated code in an
unsandboxed child (same user, network, file system), so its extraction is used here and its test
runner is called inside harness.eval.sandbox (see `livecodebench_passed`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import metadata

from harness.errors import InvalidInput

THINK_END = "</think>"
INSTALL_HINT = "pip install 'fp8-parity-harness[eval]'"
LCB_WINDOW = ("2024-08-01", "2025-02-01")  # release_v5 as DeepSeek-R1 / InfiR2 evaluate it: 279 problems


@dataclass(frozen=True)
class Scored:
    extracted: str | None  # what EvalScope read as the answer (None: nothing)
    score: float  # 1.0 or 0.0
    status: str  # EvalScope's ScoreStatus: "success", or "excluded" when it could not score (counted as 0.0)
    reason: str | None = None  # EvalScope's explanation where it gives one (e.g. math_reason)


def strip_thinking(text: str) -> str:
    """The text after the last `</think>`; the whole text when the model did not think aloud."""
    return text.rsplit(THINK_END, 1)[-1] if THINK_END in text else text


def evalscope_version() -> str:
    """The installed EvalScope version; InvalidInput naming the install command when it is missing."""
    try:
        import evalscope  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(
            f"harness eval: EvalScope is not installed ({exc}); it builds the prompts and scores every benchmark. "
            f"Install it with `{INSTALL_HINT}`"
        ) from None
    return metadata.version("evalscope")


@functools.cache
def adapter(name: str, window: tuple[str, str] = LCB_WINDOW):
    """EvalScope's registered adapter `name`, configured as the paper evaluates it (thread-safe after creation).

    `window`: LiveCodeBench's contest_date range (ISO dates), which EvalScope's adapter filters on.
    """
    evalscope_version()
    # Math-Verify warns on every parse that EvalScope runs it without its own timer (EvalScope bounds
    # each call in a forked child instead), and EvalScope logs set-up chatter at INFO: keep stderr readable.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("evalscope").setLevel(logging.WARNING)
    from evalscope.api.registry import get_benchmark
    from evalscope.config import TaskConfig

    dataset_args = {}
    if name == "live_code_bench":
        dataset_args[name] = {"extra_params": {"start_date": window[0], "end_date": window[1]}}
    config = TaskConfig(datasets=[name], dataset_args=dataset_args, eval_type="openai_api", model="harness-eval")
    return get_benchmark(name, config)


def to_sample(bench_adapter, record: dict, *, template: bool = True):
    """EvalScope's Sample for one record with its input turned into chat messages (the adapter's prompt
    template and system prompt; with template=False the bare question); None if the adapter filters it out."""
    sample = bench_adapter.record_to_sample(record)
    if not bench_adapter.sample_filter(sample):
        return None
    subset = bench_adapter.default_subset
    if not template and isinstance(sample.input, str):
        from evalscope.api.messages import ChatMessageUser

        sample.input = [ChatMessageUser(content=sample.input)]
    elif isinstance(sample.input, str):
        sample.input = bench_adapter.process_sample_str_input(sample, subset)
    else:
        sample.input = bench_adapter.process_sample_messages_input(sample, subset)
    return sample


def chat_messages(sample) -> tuple[dict, ...]:
    """The sample's messages as plain {"role", "content"} dicts (what the generation backends send)."""
    return tuple({"role": m.role, "content": m.text} for m in sample.input)


def _task_state(sample, output: str):
    from evalscope.api.evaluator import TaskState
    from evalscope.api.model import ModelOutput

    return TaskState(
        model="harness-eval",
        sample=sample,
        messages=list(sample.input),
        output=ModelOutput.from_content("harness-eval", output),
        completed=True,
    )


def score(bench_adapter, sample, output: str) -> Scored:
    """EvalScope's extraction and scoring of `output` (after the last `</think>`)."""
    result = bench_adapter.calculate_metrics(_task_state(sample, strip_thinking(output))).score
    value = float(result.main_value or 0.0) if result.value else 0.0
    details = result.metadata or {}
    reason = (
        details.get("math_reason")
        or result.explanation
        or next((v for v in details.values() if isinstance(v, str) and v.startswith("error")), None)
    )
    return Scored(result.extracted_prediction or None, value, str(result.status.value), reason)


def extract_code(bench_adapter, sample, output: str) -> str | None:
    """LiveCodeBench's code extraction (EvalScope's `extract_answer`: the last fenced block) after `</think>`."""
    text = strip_thinking(output)
    return bench_adapter.filter_prediction(text, _task_state(sample, text)) or None


def livecodebench_passed(results: list) -> bool:
    """EvalScope's pass rule for one generation's per-test results (True, False, -1 runtime error, -2 compile ...)."""
    from evalscope.benchmarks.live_code_bench.pass_k_utils import compute_metrics_from_results

    return compute_metrics_from_results({0: [results]}, k_list=[1])["pass@1"] > 0
