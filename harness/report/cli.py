"""`harness report SUITE_RUNS_DIR [--out reports/SUITE]`."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure_report(parser: argparse.ArgumentParser):
    parser.add_argument("suite_dir", type=Path, metavar="SUITE_RUNS_DIR", help="runs/<suite>")
    parser.add_argument("--out", type=Path, help="output folder (default reports/<suite>)")

    def main(args: argparse.Namespace) -> int:
        from harness.report.html import write_report

        out = args.out or Path("reports") / args.suite_dir.resolve().name
        path = write_report(args.suite_dir, out)
        print(f"wrote {path} (figures in {out / 'figures'}, tables in {out / 'tables'})")
        return 0

    return main
