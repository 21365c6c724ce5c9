"""parity.json as typed models: what `harness compare` writes and the gate and the report read.

compare builds these objects; every reader validates parity.json into them (`read_parity`), so
a field is named, typed and documented once, and a rule such as "allocator peak, else NVML"
lives in one property. The format is documented in docs/REPORT.md.

Schema versions: 2 is what this harness writes (1 lacked the windowed loss errors, peak RSS,
the evaluation lengths and power, and gave emulated arms speed and memory ratios). A file of an
older version is read (fields added since take their defaults); a newer one, or one without a
version, is refused naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ValidationError, field_validator

from harness.errors import InvalidInput
from harness.store import atomic_write_json, read_json
from harness.suite import GatesConfig, Strict

SCHEMA_VERSION = 2
PARITY_FILE = "parity.json"

Verdict = Literal["parity", "better", "worse", "inconclusive"]
# Speed and memory of an emulated arm: FP8 simulated in PyTorch says nothing about FP8 hardware.
CostVerdict = Literal["parity", "better", "worse", "inconclusive", "not_measured"]
RowVerdict = Literal["parity", "better", "worse", "inconclusive", "failed", "control"]
# An FP8 arm whose loss leaves BF16's by more than this (the largest windowed relative error) did
# not train like BF16, so its step time and memory are those of another computation: a recipe
# whose gradients came out zero under torch.compile ran "1.66x faster at 0.50x memory" on one
# H200 with its loss stuck near 12 while BF16's fell to 7.6 (docs/PERFORMANCE.md, DeepGEMM). Working
# recipes stay far below it: the worst seen from random init is 1.46% (te:blockwise, 1.5B).
DIVERGED_LOSS = 0.10


def diverged_cost(max_rel_error: float) -> str:
    """Why a measured speed-up and memory ratio are not a result: the FP8 loss left BF16's."""
    return (f"the FP8 loss left BF16's (max windowed error {max_rel_error:.1%} > {DIVERGED_LOSS:.0%}): "
            "an arm that does not train like BF16 makes no speed or memory claim")  # fmt: skip


EMULATED_COST = (
    "emulated FP8 (float8 quantise/dequantise in PyTorch): its step time and memory say nothing "
    "about FP8 hardware, so no speed or memory claim is made"
)


class Estimate(Strict):
    """A point estimate with its 95% interval."""

    value: float
    ci_low: float
    ci_high: float


class SeedMean(Strict):
    """Mean over seeds with Student's t 95% interval (null interval with one seed)."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int


class RunInfo(Strict):
    run_id: str
    run_dir: str
    arm: str
    recipe: str
    status: str
    reason: str | None = None
    emulated: bool = False
    label: str | None = None


class SteadySteps(Strict):
    baseline: int
    candidate: int


class Speed(Strict):
    speedup: Estimate | None = None  # median BF16 step time / median FP8 step time
    time_reduction_pct: float | None = None
    throughput_gain_pct: float | None = None
    baseline_step_time_s: Estimate | None = None  # median with its bootstrap CI
    candidate_step_time_s: Estimate | None = None
    baseline_tokens_per_s: float | None = None
    candidate_tokens_per_s: float | None = None
    steady_steps: SteadySteps


class PeakMemory(Strict):
    peak_alloc_bytes: float | None = None
    peak_reserved_bytes: float | None = None
    nvml_peak_memory_bytes: float | None = None
    rss_peak_bytes: float | None = None  # the training process's peak resident set (what CPU runs have)


# (field, what it is) in the order the headline memory ratio is taken from: GPU allocator, NVML, CPU RSS
MEMORY_SOURCES = (("alloc_ratio", "allocator peak"), ("nvml_ratio", "NVML peak"), ("rss_ratio", "peak RSS (CPU)"))


class Memory(Strict):
    alloc_ratio: float | None = None  # FP8 / BF16 allocator peak
    reserved_ratio: float | None = None
    nvml_ratio: float | None = None
    rss_ratio: float | None = None  # FP8 / BF16 peak RSS of the training process
    memory_reduction_pct: float | None = None
    baseline: PeakMemory
    candidate: PeakMemory

    @property
    def headline_ratio(self) -> float | None:
        """The ratio every verdict, gate and table uses: the allocator peak's, else NVML's, else peak RSS's."""
        return next((getattr(self, f) for f, _ in MEMORY_SOURCES if getattr(self, f) is not None), None)

    @property
    def headline_source(self) -> str | None:
        return next((what for f, what in MEMORY_SOURCES if getattr(self, f) is not None), None)


class Energy(Strict):
    per_token_ratio: float | None = None
    baseline_j_per_token: float | None = None
    candidate_j_per_token: float | None = None


class LossParity(Strict):
    """harness.analysis.loss.loss_parity's statistics (without its per-step arrays)."""

    warmup_steps: int
    window_steps: int
    ema_alpha: float
    bar: float
    steps_compared: int
    mean_rel_error: float | None = None
    mean_signed_rel_error: float | None = None  # FP8 - BF16; positive: FP8 loss higher
    max_rel_error: float | None = None
    final_rel_error: float | None = None
    fraction_windows_under_bar: float | None = None
    n_windows: int
    baseline_final_loss: float | None = None
    candidate_final_loss: float | None = None
    # Each window's last step, mean |relative error| and mean signed error (FP8 - BF16) / BF16
    window_end_steps: list[int] = []
    window_rel_error: list[float | None] = []
    window_signed_rel_error: list[float | None] = []
    # Set on FP8 rows by harness.analysis.control (None without a BF16 control arm)
    control_arm: str | None = None
    noise_floor: float | None = None
    excess_over_noise: float | None = None


class EvalLengths(Strict):
    """One arm's outputs on one benchmark: how long, how often cut off at max_tokens, what it cost."""

    output_tokens_mean: float | None = None
    output_tokens_p95: float | None = None
    truncation_rate: float | None = None  # fraction of samples that stopped at max_tokens
    wall_time_s: float | None = None
    gpu_hours: float | None = None
    data_parallel_size: int | None = None


class BenchEval(Strict):
    k: int
    n_problems: int
    baseline_avg_at_k: float
    candidate_avg_at_k: float
    delta: Estimate  # FP8 - BF16 avg@k points, paired bootstrap over problems
    margin_points: float
    verdict: Verdict  # inconclusive whenever not_conclusive is set
    # The equivalence test's own result before the length checks (parity / better / worse / inconclusive)
    ci_verdict: Verdict | None = None
    not_conclusive: str | None = None  # why the verdict is inconclusive whatever the CI (truncation)
    baseline_lengths: EvalLengths = EvalLengths()
    candidate_lengths: EvalLengths = EvalLengths()
    # Power: the expected half-width of this CI under no difference (harness.analysis.power), and
    # whether margin_points is below it (parity then cannot be shown even for identical models)
    resolvable_margin_points: float | None = None
    underpowered: bool | None = None


class Verdicts(Strict):
    speed: CostVerdict
    memory: CostVerdict
    loss: Verdict
    eval: dict[str, Verdict] = {}


class Comparison(Strict):
    """One FP8 (or control) run against the BF16 baseline run of the same stage and seed."""

    id: str  # "<stage>/<arm>/s<seed>"
    stage: str
    arm: str
    recipe: str
    seed: int
    baseline: RunInfo
    candidate: RunInfo
    emulated: bool
    evaluate: bool
    status: Literal["ok", "failed"]
    reason: str | None = None
    speed: Speed | None = None  # None for a failed comparison, as are memory, energy, loss
    memory: Memory | None = None
    energy: Energy | None = None
    loss: LossParity | None = None
    eval: dict[str, BenchEval] = {}
    verdicts: Verdicts | None = None
    verdict: RowVerdict
    control: bool = False  # a BF16 arm compared with the BF16 baseline (harness.analysis.control)
    # Why speed, memory and energy make no FP8-vs-BF16 claim (an emulated arm); their ratios are null
    cost_not_measured: str | None = None
    # Why the measured ratios are kept but void: the FP8 loss left BF16's (DIVERGED_LOSS); the gates fail them
    cost_diverged: str | None = None

    @field_validator("verdicts", mode="before")
    @classmethod
    def _no_verdicts(cls, value):
        return None if value == {} else value  # schema 1 wrote {} for a failed comparison


class FailedRun(Strict):
    run_id: str
    stage: str
    arm: str
    seed: int
    status: str
    reason: str | None = None


class SummaryScores(Strict):
    baseline: float | None = None
    candidate: float | None = None
    delta: float | None = None  # FP8 - BF16 points


class ArmSummary(Strict):
    """The InfiR2-style headline of one (stage, arm), averaged over its ok seeds."""

    stage: str
    arm: str
    recipe: str
    seeds: list[int]
    failed_seeds: list[int] = []
    emulated: bool = False
    time_reduction_pct: float | None = None
    speedup: float | None = None
    memory_reduction_pct: float | None = None
    throughput_increase_pct: float | None = None
    memory_source: str | None = None  # what memory_reduction_pct is of: "allocator peak", "NVML peak", "peak RSS (CPU)"
    cost_not_measured: str | None = None  # as Comparison's: why the four numbers above are null
    cost_diverged: str | None = None  # as Comparison's: why the four numbers above are void
    loss_bias: SeedMean | None = None  # mean over seeds of mean_signed_rel_error
    scores: dict[str, SummaryScores] = {}
    verdict: RowVerdict


class Parity(Strict):
    """The whole of parity.json."""

    schema_version: int = SCHEMA_VERSION
    suite: str
    suite_dir: str
    generated_at: str
    recorded_at: float
    baseline_arm: str
    margin_points: float
    emulated: bool
    git_sha: str | None = None
    gates: GatesConfig | None = None
    failed: list[FailedRun] = []
    comparisons: list[Comparison]
    summary: list[ArmSummary] = []

    def summary_of(self, stage: str, arm: str) -> ArmSummary | None:
        return next((s for s in self.summary if (s.stage, s.arm) == (stage, arm)), None)


def parity_from(data: dict, where: str | Path = PARITY_FILE) -> Parity:
    """Validate a parity.json's content, refusing an unknown schema version with a message naming `where`."""
    if not isinstance(data, dict) or "comparisons" not in data:
        raise InvalidInput(f"{where}: not a parity.json (no 'comparisons'); pass runs/<suite> or its parity.json")
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise InvalidInput(
            f"{where}: schema_version {version!r} is not a parity.json version; re-run `harness compare`"
        )
    if version > SCHEMA_VERSION:
        raise InvalidInput(
            f"{where}: schema_version {version} was written by a newer harness (this one reads up to "
            f"{SCHEMA_VERSION}); upgrade the harness or re-run `harness compare` with this one"
        )
    try:
        return Parity.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            f"{where}: field {field}: {first['msg']}; re-run `harness compare` to rewrite the file"
        ) from None


def read_parity(path: Path) -> Parity:
    """parity.json from disk as a Parity (InvalidInput naming the file when absent or unreadable)."""
    return parity_from(read_json(path, PARITY_FILE), path)


def write_parity(path: Path, parity: Parity) -> None:
    atomic_write_json(path, parity.model_dump(mode="json"))
