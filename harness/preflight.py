"""Checks made before anything trains: local paths exist, this machine can run every recipe,
sequence lengths fit the model. A suite that would fail mid-way fails here, having lost nothing."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError, InvalidInput
from harness.suite import RunSpec, Suite


def missing_paths(suite: Suite) -> list[str]:
    """Local paths named in the suite that do not exist (unset ${VAR}s are left for run time)."""
    found = []
    candidates = [("model.path", suite.model.path, True)]  # model.path is always a local folder
    candidates += [(f"stages.{n}.data.path", s.data.path, False) for n, s in suite.stages.items()]
    for field, value, local in candidates:
        if not value or "${" in value or value.startswith("builtin:"):
            continue
        if (local or _looks_local(value)) and not Path(value).expanduser().exists():
            found.append(f"{field}: path {value!r} does not exist; fix the path or pass --set {field}=...")
    return found


def _looks_local(value: str) -> bool:
    # "org/name" may be a hub id; anything anchored to the file system or named like a data file is local.
    return value.startswith(("/", "./", "../", "~")) or Path(value).suffix in DATA_SUFFIXES or Path(value).exists()


DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow", ".csv")


def preflight(suite: Suite, specs: list[RunSpec], suite_dir: Path, where: str = "suite", *, evaluate: bool = True) -> None:
    """Refuse what would fail mid-suite before any arm trains: a recipe this machine cannot run
    (else `te:*` on a CPU fails only after the bf16 arm has trained), a seq_len beyond the model's
    positions, and a code benchmark to evaluate where generated programs cannot be contained.
    Runs already completed are not checked, so their suite can be re-analysed anywhere."""
    import torch

    from harness.train.precision.registry import get_backend

    todo = [s for s in specs if _status(suite_dir / s.run_id) != "completed"]
    choice = suite.topology.device
    if choice == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"{where}: topology.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    device = torch.device("cuda", 0) if choice != "cpu" and torch.cuda.is_available() else torch.device("cpu")
    for recipe in dict.fromkeys(s.recipe for s in todo):
        arms = ", ".join(sorted({s.arm for s in todo if s.recipe == recipe}))
        try:
            get_backend(recipe).check_available(device)
        except HarnessError as exc:
            raise InvalidInput(f"{where}: arms ({arms}): {exc}; nothing was trained") from None
    for spec in todo:
        check_seq_len(spec, where)
    if evaluate:
        check_sandbox(suite, where)


def check_sandbox(suite: Suite, where: str) -> None:
    """A suite that evaluates LiveCodeBench needs a sandbox that holds (or says it accepts a weak one)."""
    from harness.eval.benchmarks import REGISTRY

    code = [name for name in suite.eval.benchmarks if name in REGISTRY and REGISTRY[name].code]
    if not code or not any(stage.evaluate for stage in suite.stages.values()):
        return
    from harness.eval.sandbox import containment

    try:
        containment(allow_weak=suite.eval.allow_weak_sandbox)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: eval.benchmarks.{code[0]}: {exc}; nothing was trained") from None


def check_seq_len(spec: RunSpec, where: str) -> None:
    """Refuse a stage whose seq_len exceeds the model's positions (RoPE would silently extrapolate)."""
    limit, source = _max_positions(spec.model)
    if limit is not None and spec.stage.seq_len > limit:
        raise InvalidInput(
            f"{where}: stages.{spec.stage_name}.seq_len: {spec.stage.seq_len} exceeds the model's "
            f"max_position_embeddings ({limit}, {source}); lower seq_len or use a longer-context model"
        )


def _status(run_path: Path) -> str | None:
    manifest = run_path / "manifest.json"
    try:
        return json.loads(manifest.read_text()).get("status") if manifest.is_file() else None
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _max_positions(model) -> tuple[int | None, str]:
    """(max_position_embeddings, where it comes from) of a ModelConfig's checkpoint or preset."""
    if model.path:
        config = Path(model.path).expanduser() / "config.json"
        try:
            return int(json.loads(config.read_text())["max_position_embeddings"]), str(config)
        except (OSError, ValueError, KeyError, TypeError):
            return None, ""  # the trainer reports an unreadable checkpoint with its own message
    from harness.train.presets import PRESETS

    return PRESETS[model.preset].get("max_position_embeddings"), f"preset {model.preset!r}"
