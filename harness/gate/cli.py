"""`harness gate PARITY_JSON|SUITE_RUNS_DIR [--min-speedup X ...]`: flags generated from the gate specs."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.analysis.results import PARITY_FILE, Parity, read_parity
from harness.errors import InvalidInput
from harness.gate.check import gate_and_record
from harness.gate.specs import GATES
from harness.results_index import index_path
from harness.suite import GatesConfig


def load_parity(target: Path) -> tuple[Parity, Path]:
    """parity.json from a file or a suite runs folder."""
    path = target / PARITY_FILE if target.is_dir() else target
    if not path.is_file():
        suite_dir = target if target.is_dir() else target.parent
        raise InvalidInput(f"{path}: not found; run `harness compare {suite_dir}` first")
    return read_parity(path), path


def resolve_gates(parity: Parity, args: argparse.Namespace) -> GatesConfig:
    """parity.json's gates overridden by any flag given on the command line (in every stage's table too)."""
    stored = parity.gates.model_dump(exclude_none=True) if parity.gates else {}
    flags = {s.field: getattr(args, s.field) for s in GATES if getattr(args, s.field, None) is not None}
    stages = stored.pop("stages", None) or {}
    try:
        return GatesConfig.model_validate({**stored, **flags, "stages": {k: {**v, **flags} for k, v in stages.items()}})
    except ValueError as exc:
        raise InvalidInput(f"gates: invalid threshold ({exc})") from None


def configure_gate(parser: argparse.ArgumentParser):
    parser.add_argument("target", type=Path, metavar="PARITY_JSON|SUITE_RUNS_DIR")
    for spec in GATES:
        verb = "exceeds" if spec.direction == "max" or spec.bound(1.0) < 0 else "is below"
        unit = " (a fraction, or a percentage such as 0.5%%)" if spec.unit.percent else ""
        parser.add_argument(spec.flag, dest=spec.field, type=spec.unit, metavar="X",
                            help=f"fail when {spec.what} {verb} X{unit}")  # fmt: skip
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    parser.add_argument("--runs-dir", type=Path, help="folder of index.sqlite (default: the suite folder's parent)")

    def main(args: argparse.Namespace) -> int:
        parity, path = load_parity(args.target)
        result = gate_and_record(parity, resolve_gates(parity, args), index_path(args.runs_dir or path.parent.parent))
        print(result.table())
        if args.junit:
            args.junit.parent.mkdir(parents=True, exist_ok=True)
            args.junit.write_text(result.junit_xml())
        return result.exit_code

    return main
