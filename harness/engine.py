"""The suite engine: train every planned run (each in a fresh process), evaluate, compare, report, gate.

What `harness run` and `harness launch` drive (harness.pipeline and harness.launch are their
command lines); `harness train` trains one run through `train_one`.

    run_suite(suite)  =  for each planned run: train -> eval
                         then compare -> report -> gate (exit code)
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from harness.errors import HarnessError, InvalidInput, RunFailed, Stopped
from harness.eval.procs import pass_interrupt
from harness.preflight import check_run_dir
from harness.results_index import index_path
from harness.runlock import env_rank, folder_lock
from harness.signals import relay_stop_requests
from harness.store import RunDir, atomic_write_json
from harness.suite import RunSpec, Suite, plan

console = Console(stderr=True, highlight=False)


def prepare_run_dir(suite_dir: Path, spec: RunSpec) -> RunDir:
    """Create runs/<suite>/<run_id>/ with spec.json, refusing to mix in a different configuration."""
    run_dir = RunDir(suite_dir / spec.run_id)
    if run_dir.spec.is_file():
        check_run_dir(run_dir, spec)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir.spec, spec.model_dump(mode="json"))
    return run_dir


def train_one(spec: RunSpec, suite_dir: Path, quiet: bool) -> dict:
    """Train one run in this process (what `harness train` does on every rank), holding the run
    folder's lock (each torchrun rank its own: harness/runlock.py) so no second process trains it."""
    from harness.train.trainer import train

    rank = env_rank()
    with folder_lock(suite_dir / spec.run_id, what="run folder", command=f"harness train {spec.run_id}", rank=rank):
        run_dir = prepare_run_dir(suite_dir, spec)
        return train(spec, run_dir, quiet=quiet)


def train_isolated(spec: RunSpec, suite_dir: Path, quiet: bool) -> None:
    """Train one run in a fresh `harness train RUN_DIR` process.

    Arms then never share an allocator cache, compiled graphs or a crashed CUDA context, so
    each arm's memory and step time are its own. Ctrl-C or SIGTERM here is passed on to the
    child, which records the run as interrupted before we re-raise.
    """
    run_dir = prepare_run_dir(suite_dir, spec)
    cmd = [sys.executable, "-m", "harness.cli", "train", str(run_dir.path), *(["--quiet"] if quiet else [])]
    # The child's stderr is relayed line by line, so its messages reach whoever reads ours
    # (a CI log, pytest's capture) and its last line can explain a refusal.
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1)
    tail: collections.deque[str] = collections.deque(maxlen=20)
    try:
        with relay_stop_requests(lambda: [child.pid]):  # SIGUSR1: the child checkpoints after its step and stops
            for line in child.stderr:
                sys.stderr.write(line)
                tail.append(line.rstrip())
            code = child.wait()
    except KeyboardInterrupt as exc:
        pass_interrupt([child], exc)
        raise
    if code == 0:
        return
    if code in (130, 128 + signal.SIGTERM):
        raise KeyboardInterrupt
    said = [line.removeprefix("harness train: ") for line in tail if line.startswith("harness train: ")]
    if code == Stopped.exit_code:
        raise Stopped(said[-1] if said else f"{spec.run_id}: stopped by SIGUSR1; run again to resume")
    if code == InvalidInput.exit_code:
        raise InvalidInput(said[-1] if said else f"{spec.run_id}: training stopped on invalid input (see above)")
    manifest = run_dir.read_manifest() if run_dir.manifest.is_file() else {}
    raise RunFailed(manifest.get("reason") or f"`harness train` exited with code {code}")


def run_suite(
    suite: Suite,
    suite_dir: Path,
    report_dir: Path,
    *,
    stages=None,
    arms=None,
    skip_eval=False,
    quiet=False,
    train_fn=None,
) -> int:
    """Train and evaluate every planned run, then compare, report and gate. Returns the exit code.

    train_fn(spec, suite_dir, quiet) trains one run; the default trains it in a fresh process,
    `harness launch` passes one that starts torchrun.
    """
    train_fn = train_fn or train_isolated
    specs = [s for s in plan(suite) if (not stages or s.stage_name in stages) and (not arms or s.arm in arms)]
    if not specs:
        raise InvalidInput(f"suite {suite.name}: --stage/--arm select no run")
    failed: dict[str, str] = {}
    for spec in specs:  # train everything first, so other nodes' agents never wait on our evals
        if spec.init_from_run in failed:
            failed[spec.run_id] = f"skipped: {spec.init_from_run} failed"
            console.print(f"[red]{spec.run_id}: {failed[spec.run_id]}[/red]")
            continue
        console.rule(f"train {spec.run_id} ({spec.recipe})")
        try:
            train_fn(spec, suite_dir, quiet)
        except RunFailed as exc:
            failed[spec.run_id] = str(exc)
            console.print(f"[red]{spec.run_id} failed: {exc}[/red]")
        except HarnessError:
            raise  # bad input: the same for every arm, stop here with its message
        except Exception as exc:  # a crash in one arm (e.g. out of memory) must not lose the others
            failed[spec.run_id] = f"{type(exc).__name__}: {exc}"
            console.print_exception(max_frames=5)
            console.print(f"[red]{spec.run_id} failed: {failed[spec.run_id]}[/red]")
    if suite.eval.benchmarks and not skip_eval:
        evaluate_all([s for s in specs if s.stage.evaluate and s.run_id not in failed], suite, suite_dir, quiet)
    if not failed and _only_baselines(suite_dir):
        # e.g. `--arm bf16` first, the FP8 arms in later calls: nothing to compare yet, nothing wrong
        console.print("only BF16 runs so far: train an FP8 arm (`--arm NAME`) to compare, report and gate")
        return 0
    return _analyse(suite, suite_dir, report_dir, failed)


def evaluate_all(specs: list[RunSpec], suite: Suite, suite_dir: Path, quiet: bool) -> None:
    """Evaluate the runs: side by side on their own GPUs where the node allows (harness/eval/arms.py), else in turn."""
    from harness.eval.arms import evaluate_side_by_side, gpu_shares
    from harness.eval.runner import evaluate_run
    from harness.eval.vllm_server import visible_gpus

    run_dirs = [suite_dir / spec.run_id for spec in specs]
    shares = gpu_shares(len(run_dirs), suite.eval, visible_gpus()) if suite.eval.backend == "vllm" else None
    if shares:
        console.rule(f"eval {', '.join(spec.run_id for spec in specs)} (side by side)")
        evaluate_side_by_side(run_dirs, shares, quiet, say=console.print)
        return
    for run_dir in run_dirs:
        console.rule(f"eval {run_dir.name}")
        evaluate_run(RunDir(run_dir), quiet=quiet)


def _only_baselines(suite_dir: Path) -> bool:
    from harness.analysis.pairing import BASELINE_RECIPE, load_runs

    return all(run.spec.recipe == BASELINE_RECIPE for run in load_runs(suite_dir))


def _analyse(suite: Suite, suite_dir: Path, report_dir: Path, failed: dict[str, str]) -> int:
    from harness.analysis.compare import compare_suite
    from harness.gate import gate_and_record
    from harness.report.html import write_report

    console.rule("compare, report, gate")
    parity = compare_suite(suite_dir, gates=suite.gates)
    result = gate_and_record(parity, suite.gates, index_path(suite_dir.parent))
    index_html = write_report(suite_dir, report_dir, parity, result)  # the report shows these gate results
    print(result.table())
    print(f"report: {index_html}")
    if "wandb" in suite.telemetry.loggers:  # parity, scores and the report into each run's W&B run
        from harness.telemetry.wandb_results import publish_results

        published = publish_results(suite_dir, parity.model_dump(mode="json"), index_html, result.passed)
        console.print(f"W&B: comparison results and the report added to {len(published)} runs")
    if failed:
        for run_id, reason in failed.items():
            print(f"run failed: {run_id}: {reason}", file=sys.stderr)
        return RunFailed.exit_code
    return result.exit_code
