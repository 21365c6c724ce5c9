"""Command-line front ends of the analysis package: compare, history, import."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure_compare(parser: argparse.ArgumentParser):
    parser.add_argument("suite_dir", type=Path, metavar="SUITE_RUNS_DIR", help="runs/<suite>")
    parser.add_argument("--suite", type=Path, metavar="SUITE.toml", help="store this suite's [gates] in parity.json")
    parser.add_argument("--no-index", action="store_true", help="do not record the comparison in runs/index.sqlite")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")

    def main(args: argparse.Namespace) -> int:
        from harness.analysis.compare import compare_suite
        from harness.analysis.summary_text import parity_table

        gates = None
        if args.suite is not None:
            from harness.suite import load_suite

            gates = load_suite(args.suite).gates
        parity = compare_suite(args.suite_dir, gates, record=not args.no_index, n_resamples=args.resamples)
        print(parity_table(parity))
        print(f"wrote {args.suite_dir / 'parity.json'}")
        return 0

    return main


def configure_history(parser: argparse.ArgumentParser):
    parser.add_argument("--suite", help="only this suite's comparisons")
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="folder holding index.sqlite (default runs)"
    )

    def main(args: argparse.Namespace) -> int:
        from harness.analysis.history import history_rows, history_table

        rows = history_rows(args.runs_dir, args.suite)
        if not rows:
            print(f"no comparisons recorded{' for suite ' + args.suite if args.suite else ''} in {args.runs_dir}")
            return 0
        print(history_table(rows))
        return 0

    return main


def configure_import(parser: argparse.ArgumentParser):
    parser.add_argument("source", type=Path, metavar="TB_DIR|MEGATRON_LOG|WANDB_RUN")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR",
                        help="run directory to write, e.g. runs/megatron-1.5b/cpt-fp8-s0")  # fmt: skip
    parser.add_argument("--arm", default="imported", help="arm name (default imported)")
    parser.add_argument("--recipe", default="bf16", help="precision recipe of that run (default bf16)")
    parser.add_argument("--stage", default="cpt", help="stage name (default cpt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suite", help="suite name (default: the name of RUN_DIR's parent folder)")
    parser.add_argument("--label", help="free-text label shown in reports")
    parser.add_argument("--seq-len", type=int, help="sequence length, to count tokens from Megatron's batch size")

    def main(args: argparse.Namespace) -> int:
        from harness.analysis.importer import import_run

        run = import_run(args.source, args.out, arm=args.arm, recipe=args.recipe, stage=args.stage, seed=args.seed,
                         suite=args.suite, label=args.label, seq_len=args.seq_len)  # fmt: skip
        print(f"imported {args.source} -> {run.path} ({sum(1 for _ in run.metrics.open())} steps)")
        return 0

    return main
