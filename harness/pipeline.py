"""validate, plan, train and run: the command lines of a suite (the work is harness.engine's).

harness run SUITE.toml  =  preflight, then harness.engine.run_suite: train -> eval for every
                           planned run, then compare -> report -> gate (exit code)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.engine import console, run_suite, train_one
from harness.errors import InvalidInput
from harness.preflight import check_suite, missing_paths, preflight
from harness.runlock import folder_lock
from harness.store import RunDir
from harness.suite import RunSpec, Suite, load_suite, plan, unresolved_variables


def suite_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="suite file (TOML), e.g. suites/smoke.toml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a suite field, e.g. --set model.path=/models/Qwen2.5-7B (repeatable)",
    )


# ---------------------------------------------------------------- validate / plan


def configure_validate(parser: argparse.ArgumentParser):
    suite_args(parser)
    parser.add_argument("--no-check-paths", action="store_true", help="skip checking that local paths exist")

    def main(args) -> int:
        suite = load_suite(args.suite, args.overrides, require_env=False)
        problems = [] if args.no_check_paths else missing_paths(suite)
        if problems:
            raise InvalidInput("\n".join(f"{args.suite}: {p}" for p in problems))
        check_suite(suite, args.suite)  # what compare, eval or the gate would refuse after training
        runs = plan(suite)
        print(
            f"{args.suite}: OK: suite '{suite.name}', {len(runs)} runs "
            f"({len(suite.stages)} stages x {len(suite.arms)} arms x {len(suite.seeds)} seeds)"
        )
        for name in unresolved_variables(args.suite, args.overrides):
            print(
                f"{args.suite}: note: ${{{name}}} is not set; `harness run` will need it (export {name}=... or --set)"
            )
        return 0

    return main


def configure_plan(parser: argparse.ArgumentParser):
    suite_args(parser)
    parser.add_argument("--json", action="store_true", help="print the resolved RunSpecs as JSON")

    def main(args) -> int:
        suite = load_suite(args.suite, args.overrides, require_env=False)
        runs = plan(suite)
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
            return 0
        table = Table(title=f"{suite.name}: {len(runs)} runs, world size {suite.topology.world_size}")
        for col in ("run", "stage", "arm", "recipe", "seed", "length", "tokens/step", "starts from", "fingerprint"):
            table.add_column(col)
        for r in runs:
            length = f"{r.stage.steps} steps" if r.stage.steps else f"{r.stage.epochs} epochs"
            tokens = _tokens_per_step(r.stage)
            table.add_row(
                r.run_id,
                r.stage_name,
                r.arm,
                r.recipe,
                str(r.seed),
                length,
                tokens,
                r.init_from_run or "init",
                r.fingerprint,
            )
        Console(highlight=False, width=200).print(table)
        from harness.analysis.power import plan_lines

        lines = plan_lines(suite.eval)
        if lines:  # before GPU-days are spent: can this design show parity at all?
            print("eval power (the paired 95% CI's expected half-width with no difference, assuming each sample "
                  "succeeds with probability 0.5, the worst case):")  # fmt: skip
            print("\n".join(f"  {line}" for line in lines))
        return 0

    return main


def _tokens_per_step(stage) -> str:
    """Tokens a step processes: rows x seq_len; packed SFT at most that (or its token budget)."""
    if stage.global_batch_tokens is not None:
        return f"~{stage.global_batch_tokens:,} real"
    full = stage.global_batch_size * stage.seq_len
    return f"<= {full:,} (packed)" if stage.packed else f"{full:,}"


# ---------------------------------------------------------------- train


def _find_spec(suite: Suite, run_id: str) -> RunSpec:
    specs = {s.run_id: s for s in plan(suite)}
    if run_id not in specs:
        raise InvalidInput(f"--run-id {run_id}: not in suite {suite.name}; runs: {', '.join(specs)}")
    return specs[run_id]


def configure_train(parser: argparse.ArgumentParser):
    parser.add_argument("suite", help="suite file (TOML) with --run-id, or a run directory holding spec.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    # --run-id, not --run: torchrun's own parser takes "--run" for its --run-path option.
    parser.add_argument("--run-id", "--run", dest="run", metavar="RUN_ID", help="run id from `harness plan`")
    parser.add_argument("--runs-dir", help="root of run directories (default: the suite's runs_dir)")
    parser.add_argument("--quiet", action="store_true", help="plain progress lines for CI logs")

    def main(args) -> int:
        target = Path(args.suite)
        if target.is_dir():
            run_dir = RunDir(target)
            spec = run_dir.read_spec()
            if spec.run_id != target.resolve().name:  # else the run would be trained in a sibling folder
                raise InvalidInput(
                    f"{run_dir.spec}: run_id {spec.run_id!r} does not match its folder {target.resolve().name!r}; "
                    f"rename the folder back to {spec.run_id}, or train it with --run-id from its suite file"
                )
            suite_dir = target.parent
        else:
            if not args.run:
                raise InvalidInput(f"{args.suite}: pass --run-id RUN_ID (see `harness plan`) or a run directory")
            suite = load_suite(args.suite, args.overrides)
            spec = _find_spec(suite, args.run)
            suite_dir = Path(args.runs_dir or suite.runs_dir) / suite.name
        summary = train_one(spec, suite_dir, args.quiet)
        console.print(f"{spec.run_id}: {summary.get('status', 'done')}")
        return 0

    return main


# ---------------------------------------------------------------- run


def configure_run(parser: argparse.ArgumentParser):
    suite_args(parser)
    parser.add_argument("--stage", action="append", help="only this stage (repeatable)")
    parser.add_argument("--arm", action="append", help="only this arm (repeatable)")
    parser.add_argument("--skip-eval", action="store_true", help="train only; compare without scores")
    parser.add_argument("--runs-dir", help="root of run directories (default: the suite's runs_dir)")
    parser.add_argument("--report-dir", help="where the report goes (default: reports/<suite>)")
    parser.add_argument("--quiet", action="store_true", help="plain progress lines for CI logs")

    def main(args) -> int:
        suite = load_suite(args.suite, args.overrides)
        problems = missing_paths(suite)
        if problems:
            raise InvalidInput("\n".join(f"{args.suite}: {p}" for p in problems))
        suite_dir = Path(args.runs_dir or suite.runs_dir) / suite.name
        report_dir = Path(args.report_dir or Path("reports") / suite.name)
        specs = [s for s in plan(suite) if (not args.stage or s.stage_name in args.stage)]
        selected = [s for s in specs if not args.arm or s.arm in args.arm]
        # One `harness run` per suite folder at a time: two would train the same run folders.
        with folder_lock(suite_dir, what="suite runs folder", command=f"harness run {args.suite}"):
            preflight(suite, selected, suite_dir, args.suite, evaluate=not args.skip_eval)
            return run_suite(
                suite, suite_dir, report_dir, stages=args.stage, arms=args.arm, skip_eval=args.skip_eval,
                quiet=args.quiet,
            )  # fmt: skip

    return main


__all__ = ["configure_validate", "configure_plan", "configure_train", "configure_run"]
