"""vLLM's own offline throughput on exactly the requests `harness eval` sends for a benchmark.

    python scripts/vllm_throughput.py CHECKPOINT --bench aime24 --data-dir DIR [--limit N] [--samples K]
        [--max-tokens M] --out result.json

The requests (prompts as EvalScope builds them, per-sample seeds, temperature, top-p, max_tokens)
come from the harness's own code (harness.eval.runner), and go to `vllm.LLM.chat` all at once, the
way `vllm bench throughput` drives the engine. Compare its output tokens/s with the harness's for
the same benchmark (eval/<bench>/sessions.jsonl: output_tokens / wall_time_s), docs/EVAL.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.eval.benchmarks import get_benchmark  # noqa: E402
from harness.eval.runner import _missing_requests, _prepare  # noqa: E402
from harness.suite import BenchmarkConfig, EvalConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--bench", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--samples", type=int)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    bench = get_benchmark(args.bench)
    config = EvalConfig(
        backend="vllm",
        data_dir=args.data_dir,
        seed=args.seed,
        benchmarks={
            args.bench: BenchmarkConfig(
                samples=args.samples or bench.samples, max_tokens=args.max_tokens or bench.max_tokens, limit=args.limit
            )
        },
    )
    job = _prepare(args.bench, Path(args.checkpoint), Path(tempfile.mkdtemp()), config, Path.cwd())
    requests = _missing_requests(job, config.seed)

    from vllm import LLM, SamplingParams

    started = time.monotonic()
    llm = LLM(model=args.checkpoint, seed=config.seed, tensor_parallel_size=config.tensor_parallel_size)
    loaded = time.monotonic()
    params = [
        SamplingParams(n=1, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens, seed=r.seed)
        for r in requests
    ]
    begin = time.monotonic()
    outputs = llm.chat([list(r.messages) for r in requests], params, use_tqdm=False)
    wall = time.monotonic() - begin
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    truncated = sum(o.outputs[0].finish_reason == "length" for o in outputs)
    result = {
        "benchmark": args.bench,
        "requests": len(requests),
        "output_tokens": tokens,
        "wall_time_s": wall,
        "output_tokens_per_s": tokens / wall,
        "truncated": truncated,
        "engine_start_s": loaded - started,
        "max_tokens": config.benchmarks[args.bench].max_tokens,
        "samples": config.benchmarks[args.bench].samples,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
