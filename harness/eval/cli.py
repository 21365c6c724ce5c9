"""`harness eval` and `harness data` (see harness/cli.py for how commands are wired)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.errors import InvalidInput
from harness.eval.benchmarks import DEFAULT_BENCHMARKS, REGISTRY, get_benchmark
from harness.store import RunDir


def configure_eval(parser: argparse.ArgumentParser):
    """`harness eval RUN_DIR|CHECKPOINT [--bench a,b] [--backend vllm|transformers] [--out DIR] ...`"""
    parser.add_argument(
        "target",
        metavar="RUN_DIR|CHECKPOINT",
        help="a run directory (uses spec.json's eval settings) or a Hugging Face checkpoint folder",
    )
    parser.add_argument("--bench", help=f"comma-separated benchmarks ({', '.join(REGISTRY)})")
    parser.add_argument("--backend", choices=("vllm", "transformers"), help="generation backend")
    parser.add_argument("--out", help="results folder (required for a bare checkpoint; default RUN_DIR/eval)")
    parser.add_argument("--samples", type=int, help="k samples per problem (default: suite, else InfiR2's)")
    parser.add_argument("--max-tokens", type=int, help="max new tokens per sample")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--limit", type=int, help="first N problems of each benchmark")
    parser.add_argument("--data-dir", help="folder holding <bench>/ data folders (default: suite's eval.data_dir)")
    parser.add_argument("--tensor-parallel-size", type=int)
    parser.add_argument("--data-parallel-size", type=int, help="vLLM server replicas (default: every visible GPU)")
    parser.add_argument("--max-concurrency", type=int, help="vLLM requests in flight per replica (default 256)")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--allow-weak-sandbox",
        action="store_true",
        default=None,
        help="run LiveCodeBench programs even where only a weak sandbox exists (no bubblewrap; docs/EVAL.md)",
    )
    parser.add_argument("--quiet", action="store_true")
    return main_eval


def _given(args, *names: str) -> dict:
    """The flags among `names` that were given on the command line (argparse leaves the rest None)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _validated(model, values: dict):
    """model(**values), or InvalidInput naming the flag (e.g. --samples 0), not pydantic's report."""
    from pydantic import ValidationError

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-")
        raise InvalidInput(f"{flag} {err['input']!r}: {err['msg']} (see harness eval --help)") from None


def _eval_config(args, base):
    """The EvalConfig to use: the run's (or defaults) with command-line flags on top."""
    from harness.suite import BenchmarkConfig, EvalConfig

    names = [n.strip() for n in args.bench.split(",") if n.strip()] if args.bench else None
    config = base.model_copy(deep=True) if base is not None else EvalConfig()
    names = names or list(config.benchmarks) or list(DEFAULT_BENCHMARKS)
    flags = _given(args, "backend", "data_dir", "tensor_parallel_size", "data_parallel_size", "max_concurrency",
                   "seed", "allow_weak_sandbox")  # fmt: skip
    if flags:
        config = _validated(EvalConfig, {**config.model_dump(), **flags})
    benchmarks = {}
    for name in names:
        bench = get_benchmark(name)
        current = config.benchmarks.get(name) or BenchmarkConfig(samples=bench.samples, max_tokens=bench.max_tokens)
        updates = _given(args, "samples", "max_tokens", "temperature", "top_p", "limit")
        benchmarks[name] = _validated(BenchmarkConfig, {**current.model_dump(), **updates})
    config.benchmarks = {**config.benchmarks, **benchmarks}
    return config, names


def main_eval(args) -> int:
    from harness.eval.runner import evaluate_checkpoint

    target = Path(args.target)
    run = RunDir(target)
    if run.exists():
        config, names = _eval_config(args, run.read_spec().eval)
        checkpoint = run.final_checkpoint
        out = Path(args.out) if args.out else run.eval_dir
    elif (target / "config.json").is_file():
        if not args.out:
            raise InvalidInput(f"{target}: a bare checkpoint needs --out DIR for its results")
        config, names = _eval_config(args, None)
        checkpoint, out = target, Path(args.out)
    else:
        raise InvalidInput(f"{target}: neither a run directory (spec.json) nor a checkpoint folder (config.json)")
    results = evaluate_checkpoint(checkpoint, out, config, names, base=Path.cwd(), quiet=args.quiet)
    for name, summary in results.items():
        print(
            f"{name:18s} avg@{summary['k']:<3d} {summary['avg_at_k']:6.2f}  "
            f"({summary['n_problems']} problems, {summary['n_samples']} samples, {summary['backend']})"
        )
    return 0


def configure_data(parser: argparse.ArgumentParser):
    """`harness data export BENCH --out DIR`: hub -> offline benchmark folder (needs network)."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="download a benchmark into DIR/<bench>/ (needs network)")
    export.add_argument("bench", help=f"one of: {', '.join(REGISTRY)}")
    export.add_argument("--out", required=True, help="the eval data_dir to fill")
    sub.add_parser("list", help="list benchmarks and where their data comes from")
    return main_data


def main_data(args) -> int:
    if args.action == "list":
        for name, bench in REGISTRY.items():
            source = bench.hub.repo if bench.hub else "generated locally"
            print(
                json.dumps(
                    {
                        "benchmark": name,
                        "evalscope_adapter": bench.adapter,
                        "source": source,
                        "samples": bench.samples,
                        "max_tokens": bench.max_tokens,
                    }
                )
            )
        return 0
    from harness.eval.export import export_benchmark

    folder = export_benchmark(args.bench, args.out)
    print(f"exported {args.bench} to {folder}")
    return 0
