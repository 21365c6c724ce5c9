"""Turn a pytest-benchmark JSON of this suite into a Markdown table for docs/PERFORMANCE.md.

    python -m benchmarks.summarize benchmarks/baselines/h100.json            # table on stdout
    python -m benchmarks.summarize results.json -o perf-table.md

One row per (case, shape, recipe): median step time, speed-up against the BF16 arm of the
same case and shape (BF16 median / recipe median; above 1 is faster), peak allocated memory
and its ratio to BF16's (below 1 is smaller). Numbers come only from the JSON, never
re-measured; the header names the GPU and library versions that produced them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, InvalidInput

CASE_ORDER = ("linear", "mlp", "decoder_layer", "model_step")
BASELINE = "bf16"


@dataclass(frozen=True)
class Row:
    case: str
    shape: str
    recipe: str
    median_ms: float
    peak_gib: float
    speedup_vs_bf16: float | None = None
    memory_vs_bf16: float | None = None


def _field(bench: dict, key: str, source: str):
    value = bench.get("extra_info", {}).get(key)
    if value is None:
        raise InvalidInput(
            f"{source}: benchmark {bench.get('fullname', bench.get('name', '?'))} has no extra_info.{key}; "
            "summarize only JSON written by the benchmarks/ suite (--benchmark-json or --benchmark-save)"
        )
    return value


def _shape(bench: dict, source: str) -> str:
    info = bench["extra_info"]
    layout = f"{_field(bench, 'batch', source)}x{_field(bench, 'seq_len', source)}"
    layers = f", {info['num_layers']} layers" if info.get("num_layers") else ""
    return f"{_field(bench, 'preset', source)}{layers}, {layout}"


def rows(data: dict, source: str = "<json>") -> list[Row]:
    """Rows of the table, ordered by case, shape, then BF16 first; ratios against the BF16 row of each group."""
    benchmarks = data.get("benchmarks")
    if not benchmarks:
        raise InvalidInput(f"{source}: no 'benchmarks' in this file (all cases skipped, or not pytest-benchmark JSON)")
    plain = [
        Row(
            case=_field(b, "case", source),
            shape=_shape(b, source),
            recipe=_field(b, "recipe", source),
            median_ms=b["stats"]["median"] * 1e3,
            peak_gib=_field(b, "peak_alloc_bytes", source) / 2**30,
        )
        for b in benchmarks
    ]
    baseline = {(r.case, r.shape): r for r in plain if r.recipe == BASELINE}
    out = []
    for r in plain:
        base = baseline.get((r.case, r.shape))
        speedup = base.median_ms / r.median_ms if base and r.median_ms > 0 else None
        memory = r.peak_gib / base.peak_gib if base and base.peak_gib > 0 else None
        out.append(Row(r.case, r.shape, r.recipe, r.median_ms, r.peak_gib, speedup, memory))

    def order(r: Row):
        case = CASE_ORDER.index(r.case) if r.case in CASE_ORDER else len(CASE_ORDER)
        return (case, r.case, r.shape, r.recipe != BASELINE, r.recipe)

    return sorted(out, key=order)


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def header(data: dict) -> str:
    """One line naming the GPU, versions and mode of the run (from the first case's extra_info)."""
    info = data["benchmarks"][0].get("extra_info", {})
    mode = "torch.compile (every arm)" if info.get("compile") else "eager"
    rounds = data["benchmarks"][0]["stats"].get("rounds")
    return (
        f"{info.get('device', 'unknown device')}, torch {info.get('torch', '?')}, "
        + (f"cuBLAS {info['cublas']}, " if info.get("cublas") else "")  # recorded since 2026-12-01
        + f"Transformer Engine {info.get('transformer_engine', '?')}, torchao {info.get('torchao', '?')}; "
        f"{mode}; median of {rounds} timed rounds after warm-up ({data.get('datetime', 'date unknown')})"
    )


def markdown(data: dict, source: str = "<json>") -> str:
    """The Markdown table (with its header line) for a pytest-benchmark JSON dict."""
    lines = [
        header(data),
        "",
        "| case | shape | recipe | median ms | speed-up vs bf16 | peak GiB | memory vs bf16 |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows(data, source):
        lines.append(
            f"| {r.case} | {r.shape} | {r.recipe} | {r.median_ms:.2f} | {_ratio(r.speedup_vs_bf16)} "
            f"| {r.peak_gib:.2f} | {_ratio(r.memory_vs_bf16)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="pytest-benchmark JSON (--benchmark-json or a saved run)")
    parser.add_argument("-o", "--out", type=Path, help="write the table here instead of stdout")
    args = parser.parse_args(argv)
    try:
        try:
            data = json.loads(args.json.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{args.json}: cannot read pytest-benchmark JSON ({exc})") from None
        table = markdown(data, str(args.json))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.out:
        args.out.write_text(table)
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
