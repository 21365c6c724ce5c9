"""Checks made before anything trains: local paths exist, this machine can run every recipe,
sequence lengths fit the model, run folders already there belong to this suite, and nothing that
compare, eval or the gate would refuse after training (docs/RELIABILITY.md lists each check). A
suite that would fail mid-way fails here, having lost nothing.

    check_suite(suite)      the suite alone (`harness validate` and `harness run`): a baseline arm,
                            known benchmarks, gates that can pass (harness/suite_checks.py)
    preflight(suite, ...)   also this machine and the runs folder (`harness run`, `harness launch`)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.errors import HarnessError, InvalidInput
from harness.store import SPEC_FIX, RunDir, read_json
from harness.suite import RunSpec, Suite, fingerprint, plan, run_id
from harness.suite_checks import baseline_arm_name, check_suite, machine_gate_problems


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


def preflight(
    suite: Suite, specs: list[RunSpec], suite_dir: Path, where: str = "suite", *, evaluate: bool = True
) -> None:
    """Refuse what would fail mid-suite before any arm trains: the suite's own checks (check_suite),
    a recipe this machine cannot run (else `te:*` on a CPU fails only after the bf16 arm has trained),
    a seq_len beyond the model's positions, run folders of another configuration, a selection
    (--arm/--stage) whose FP8 runs lack their baseline, finished runs made with other software, a
    gate this device cannot measure and, when evaluating, benchmarks that cannot be loaded,
    prompted, generated (vLLM) or contained. specs: the runs this command trains (all by default).
    Runs already completed are not checked, so their suite can be re-analysed anywhere."""
    import torch

    from harness.telemetry.loggers import check_loggers
    from harness.train.precision.registry import get_backend

    check_loggers(suite.telemetry.loggers)  # every run: `harness run` ends by publishing to W&B
    check_suite(suite, where)
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
    problems = machine_gate_problems(suite, device.type)
    if problems:
        raise InvalidInput("\n".join(f"{where}: {p}" for p in problems))
    for spec in plan(suite):  # every run the comparison will pair, selected or not
        if RunDir(suite_dir / spec.run_id).spec.is_file():
            check_run_dir(RunDir(suite_dir / spec.run_id), spec)
    check_selection(suite, specs, suite_dir, where)
    if todo:
        training = {s.run_id for s in todo}
        check_software(suite_dir, [s for s in plan(suite) if s.run_id not in training], where)
    if evaluate:
        check_sandbox(suite, where)
        check_eval_inputs(suite, where)


def check_run_dir(run_dir: RunDir, spec: RunSpec) -> None:
    """Refuse a run folder that holds a run of another configuration (or recipe) than `spec`."""
    old = read_json(run_dir.spec, "spec.json", SPEC_FIX)
    if _fingerprint_now(old) != spec.fingerprint or old.get("recipe") != spec.recipe:
        raise InvalidInput(
            f"{run_dir.path}: holds a run of a different configuration (fingerprint "
            f"{old.get('fingerprint')} vs {spec.fingerprint}); keep it by passing another --runs-dir, "
            "or delete that folder to start over"
        )


def _fingerprint_now(old: dict) -> str | None:
    """The fingerprint a stored spec.json has under this harness version.

    A spec written before a field existed reads with that field's default, so a run started by an
    older harness resumes under a newer one as long as the suite did not change; a spec this
    version cannot read keeps the fingerprint stored in it (and so differs).
    """
    try:
        return fingerprint(RunSpec.model_validate(old))
    except ValueError:
        return old.get("fingerprint")


def check_selection(suite: Suite, selected: list[RunSpec], suite_dir: Path, where: str) -> None:
    """Every selected FP8 run needs its baseline run (same stage and seed) selected too or finished:
    else `harness compare` refuses the suite once the FP8 arm has trained."""
    base = baseline_arm_name(suite)
    chosen = {s.run_id for s in selected}
    for spec in selected:
        base_id = run_id(spec.stage_name, base, spec.seed)
        if spec.arm == base or base_id in chosen or _status(suite_dir / base_id) in ("completed", "imported"):
            continue
        raise InvalidInput(
            f"{where}: --arm {spec.arm}: its baseline run {base_id} is neither selected nor trained in {suite_dir}, "
            f"so `harness compare` would refuse it after training; add --arm {base}, or train the baseline first "
            f"(harness run {where} --arm {base}); nothing was trained"
        )


def check_software(suite_dir: Path, finished: list[RunSpec], where: str) -> None:
    """Runs trained now are compared with finished ones: torch and transformers must be the versions
    those ran with (compare refuses otherwise; cuBLAS, known only once CUDA is loaded, is left to it)."""
    from harness.analysis.pairing import software_versions
    from harness.telemetry.manifest import package_version

    now = {"torch": package_version("torch"), "transformers": package_version("transformers")}
    for spec in finished:
        run_dir = RunDir(suite_dir / spec.run_id)
        if _status(run_dir.path) != "completed":
            continue
        recorded = software_versions(run_dir.read_manifest())
        for name, version in now.items():
            if version and recorded.get(name) and recorded[name] != version:
                raise InvalidInput(
                    f"{where}: {run_dir.manifest}: {spec.run_id} was trained with {name} {recorded[name]}, this "
                    f"machine has {version}; the arms trained now could not be compared with it. Use the same "
                    f"{name}, or delete {run_dir.path} to train it again here; nothing was trained"
                )


def check_eval_inputs(suite: Suite, where: str) -> None:
    """What `harness eval` needs, checked before training: EvalScope, the vLLM command (backend vllm),
    and every benchmark's data, loaded and prompted as the evaluation will."""
    if not suite.eval.benchmarks or not any(stage.evaluate for stage in suite.stages.values()):
        return
    from harness.eval.benchmarks import REGISTRY
    from harness.eval.evalscope_engine import evalscope_version
    from harness.eval.local_data import benchmark_dir, read_records

    try:
        evalscope_version()
    except InvalidInput as exc:
        raise InvalidInput(
            f"{where}: eval.benchmarks: {str(exc).removeprefix('harness eval: ')}; nothing was trained"
        ) from None
    if suite.eval.backend == "vllm":
        from harness.eval.vllm_server import COMMAND_ENV, server_command

        command = server_command()[0]
        if shutil.which(command) is None:
            raise InvalidInput(
                f"{where}: eval.backend = 'vllm': {command!r} not found; install vLLM on this machine, set "
                f"{COMMAND_ENV} to its `vllm serve` command, or set eval.backend = 'transformers'; nothing was trained"
            )
    for name, config in suite.eval.benchmarks.items():
        bench = REGISTRY[name]  # check_suite refused unknown names
        if bench.generate is not None:
            continue
        origins: list[str] = []
        try:
            records = read_records(benchmark_dir(name, config.path, suite.eval.data_dir), name, origins)
            problems = bench.load(records, origins)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: eval.benchmarks.{name}: {exc}; nothing was trained") from None
        if not problems[: config.limit or None]:
            raise InvalidInput(f"{where}: eval.benchmarks.{name}: no problems in its data; nothing was trained")


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
