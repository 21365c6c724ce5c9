"""Evaluate a checkpoint on benchmarks: generate (resumably), score, write per-sample rows and a summary.

    eval/<bench>/generations.jsonl  cache, one line per finished sample (resume skips them)
    eval/<bench>/samples.parquet    problem_id, sample_index, prompt, output, extracted, target, score, ...
    eval/<bench>/summary.json       benchmark, avg_at_k, pass_at_1, k, n_problems, n_samples, backend, ...
    eval/vllm.log                   the server's log when backend = vllm

Prompts and scores come from EvalScope's adapters (harness.eval.evalscope_engine). Data for every
benchmark is loaded and prompted before any model or server starts, so a missing folder or a
missing EvalScope fails in seconds, not after a model load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InvalidInput
from harness.eval.benchmarks import ARITH_SIZE, Benchmark, Problem, get_benchmark
from harness.eval.cache import GenerationCache, checkpoint_stamp, settings_key
from harness.eval.evalscope_engine import evalscope_version
from harness.eval.generation import Generator, Request, sample_seed
from harness.eval.local_data import benchmark_dir, read_records
from harness.eval.progress import GenerationProgress, read_sessions, record_session
from harness.eval.summary import summarise, write_results
from harness.runlock import folder_lock
from harness.store import RunDir
from harness.suite import BenchmarkConfig, EvalConfig

GeneratorFactory = Callable[[Path, EvalConfig, Path], AbstractContextManager[Generator]]


@dataclass
class BenchJob:
    bench: Benchmark
    config: BenchmarkConfig
    problems: list[Problem]
    cache: GenerationCache
    out_dir: Path


def evaluate_run(run_dir: RunDir, benchmarks: list[str] | None = None, *, quiet: bool = False) -> dict[str, dict]:
    """Evaluate run_dir/checkpoints/final with spec.json's `eval` settings; returns bench -> summary."""
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    spec = run_dir.read_spec()
    checkpoint = run_dir.final_checkpoint
    names = list(benchmarks or spec.eval.benchmarks)
    if not names:
        raise InvalidInput(
            f"{run_dir.spec}: eval.benchmarks is empty; add e.g. [eval.benchmarks.aime24] to the suite or pass --bench"
        )
    return evaluate_checkpoint(checkpoint, run_dir.eval_dir, spec.eval, names, quiet=quiet)


def evaluate_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    eval_config: EvalConfig,
    names: list[str],
    *,
    base: Path | None = None,
    quiet: bool = False,
    generator_factory: GeneratorFactory | None = None,
) -> dict[str, dict]:
    """Evaluate one Hugging Face checkpoint folder; results under out_dir/<bench>/. Relative data paths from `base`."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not (checkpoint / "config.json").is_file():
        raise InvalidInput(
            f"{checkpoint}: no Hugging Face checkpoint here (config.json missing); "
            "train the run first (`harness train`) or pass a checkpoint folder"
        )
    evalscope_version()  # fails with the install command before anything else when EvalScope is missing
    jobs = [_prepare(name, checkpoint, out_dir, eval_config, base) for name in names]
    if any(job.bench.code for job in jobs):
        from harness.eval.sandbox import containment

        # Refused now, not after hours of generation: model-written programs need a sandbox that holds.
        containment(allow_weak=eval_config.allow_weak_sandbox)
    # One evaluation at a time per results folder: two would generate the same samples twice and
    # overwrite each other's summaries (`harness eval` beside a `harness run` evaluating that run).
    with folder_lock(out_dir, what="evaluation folder", command=f"harness eval {checkpoint}"):
        return _evaluate(jobs, checkpoint, out_dir, eval_config, quiet, generator_factory)


def _evaluate(jobs: list[BenchJob], checkpoint: Path, out_dir: Path, eval_config: EvalConfig, quiet: bool,
              generator_factory: GeneratorFactory | None) -> dict[str, dict]:  # fmt: skip
    """Generate what the jobs' caches lack, then score and summarise every benchmark."""
    todo = {job.bench.name: _missing_requests(job, eval_config.seed) for job in jobs}
    total = sum(map(len, todo.values()))
    for job in jobs:
        if todo[job.bench.name]:
            # Results of an earlier, different evaluation must not survive next to a half-finished new one.
            (job.out_dir / "summary.json").unlink(missing_ok=True)
            (job.out_dir / "samples.parquet").unlink(missing_ok=True)
            if job.cache.stale:
                _say(quiet, f"eval {job.bench.name}: ignoring {job.cache.stale} cached samples from other settings")
    engine_version = None  # the vLLM server's own version, when one served this evaluation
    if total:
        factory = generator_factory or default_generator_factory
        with factory(checkpoint, eval_config, out_dir) as generator:
            engine_version = getattr(generator, "engine_version", None)
            gpus = getattr(generator, "gpus", 0)
            _generate(jobs, todo, generator, gpus, quiet)
    backend = eval_config.backend
    results = {}
    for job in jobs:
        rows = _score(job, eval_config.allow_weak_sandbox)
        summary = summarise(
            job.bench.name,
            rows,
            k=job.config.samples,
            bench=job.bench,
            system_prompt=job.problems[0].system_prompt,
            backend=backend,
            checkpoint=checkpoint,
            config=job.config,
            eval_config=eval_config,
            engine_version=engine_version,
            sessions=read_sessions(job.out_dir, job.cache.key),
        )
        write_results(job.out_dir, rows, summary)
        results[job.bench.name] = summary
        _say(
            quiet,
            f"eval {job.bench.name}: avg@{job.config.samples} = {summary['avg_at_k']:.2f} "
            f"over {summary['n_problems']} problems -> {job.out_dir}",
        )
    return results


def _prepare(name: str, checkpoint: Path, out_dir: Path, eval_config: EvalConfig, base: Path | None) -> BenchJob:
    bench = get_benchmark(name)
    config = eval_config.benchmarks.get(name) or BenchmarkConfig(samples=bench.samples, max_tokens=bench.max_tokens)
    if bench.generate is not None:
        records = bench.generate(config.limit or ARITH_SIZE)
    else:
        origins: list[str] = []
        records = read_records(benchmark_dir(name, config.path, eval_config.data_dir, base), name, origins)
    problems = bench.load(records, origins if bench.generate is None else None, config)
    problems = problems[: config.limit] if config.limit else problems
    if not problems:
        raise InvalidInput(f"benchmark {name}: no problems after filtering; check its data folder and limit")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"benchmark {name}: duplicate problem ids in its data; each problem needs a unique id")
    settings = {
        "benchmark": name,
        "backend": eval_config.backend,
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "seed": eval_config.seed,
        "checkpoint": str(checkpoint.resolve()),
        "weights": checkpoint_stamp(checkpoint),
    }
    bench_dir = out_dir / name
    return BenchJob(
        bench, config, problems, GenerationCache(bench_dir / "generations.jsonl", settings_key(settings)), bench_dir
    )


def _missing_requests(job: BenchJob, eval_seed: int) -> list[Request]:
    done = job.cache.load()
    return [
        Request(
            p.id,
            i,
            p.messages,
            sample_seed(eval_seed, job.bench.name, p.id, i),
            job.config.max_tokens,
            job.config.temperature,
            job.config.top_p,
            job.bench.name,
        )
        for p in job.problems
        for i in range(job.config.samples)
        if (p.id, i) not in done
    ]


def _generate(jobs: list[BenchJob], todo: dict[str, list[Request]], generator: Generator, gpus: int,
              quiet: bool) -> None:  # fmt: skip
    """Every benchmark's missing samples through one request stream, so a server runs them all at once.

    At InfiR2's lengths a sample takes tens of thousands of decoding steps; one benchmark after the
    other would leave the server half idle while the last few samples of each finish. Each
    benchmark's session (sessions.jsonl) gets the shared wall time and its share of the GPU time in
    proportion to the tokens it generated.
    """
    pending = [job for job in jobs if todo[job.bench.name]]
    if not pending:
        return
    for job in pending:
        total = len(job.problems) * job.config.samples
        _say(
            quiet,
            f"eval {job.bench.name}: generating {len(todo[job.bench.name])} of {total} samples with {generator.name}",
        )
    caches = {job.bench.name: job.cache for job in pending}
    requests = [r for job in pending for r in todo[job.bench.name]]
    names = "+".join(job.bench.name for job in pending)
    progress = GenerationProgress(names, len(requests), quiet=quiet, budget_tokens=sum(r.max_tokens for r in requests),
                                  server_tokens=getattr(generator, "generated_tokens", None))  # fmt: skip
    tokens = {job.bench.name: 0 for job in pending}
    done = {job.bench.name: 0 for job in pending}
    try:
        with progress.ticking():
            for request, completion in generator.generate(requests):
                caches[request.benchmark].append(request.problem_id, request.sample_index, request.seed, completion)
                tokens[request.benchmark] += completion.output_tokens or 0
                done[request.benchmark] += 1
                progress.update(completion.output_tokens, request.max_tokens)
    finally:  # a session's time counts even when it is interrupted: resumed sessions add up
        all_tokens = sum(tokens.values())
        for job in pending:
            name = job.bench.name
            share = tokens[name] / all_tokens if all_tokens else done[name] / max(1, sum(done.values()))
            record_session(job.out_dir, job.cache.key, done[name], tokens[name], progress.elapsed_s, gpus,
                           share=share, shared_with=[j.bench.name for j in pending])  # fmt: skip


def _score(job: BenchJob, allow_weak_sandbox: bool = False) -> list[dict]:
    done = job.cache.load()
    pairs = [(p, i, done[(p.id, i)]["output"]) for p in job.problems for i in range(job.config.samples)]
    missing = [
        (p.id, i) for p, i in ((p, i) for p in job.problems for i in range(job.config.samples)) if (p.id, i) not in done
    ]
    if missing:
        raise InvalidInput(
            f"{job.cache.path}: {len(missing)} samples were not generated (first: {missing[0]}); "
            "re-run the evaluation to finish them"
        )
    # Code benchmarks run programs in subprocesses: threads keep every core busy.
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        scored = list(
            pool.map(lambda item: job.bench.score(item[0], item[2], allow_weak_sandbox=allow_weak_sandbox), pairs)
        )
    return [
        {
            "problem_id": p.id,
            "sample_index": i,
            "prompt": p.prompt,
            "output": text,
            "extracted": result.extracted,
            "target": p.target,
            "score": result.score,
            "score_status": result.status,
            "score_reason": result.reason,
            "output_tokens": done[(p.id, i)].get("output_tokens"),
            "finish_reason": done[(p.id, i)].get("finish_reason"),
        }
        for (p, i, text), result in zip(pairs, scored, strict=True)
    ]


@contextmanager
def default_generator_factory(checkpoint: Path, eval_config: EvalConfig, out_dir: Path) -> Iterator[Generator]:
    """The backend named by eval.backend: vLLM server replicas the harness starts, or transformers in-process."""
    if eval_config.backend == "transformers":
        from harness.eval.hf_backend import TransformersGenerator

        generator = TransformersGenerator(checkpoint)
        generator.gpus = 1 if generator.device.startswith("cuda") else 0
        yield generator
        return
    from harness.eval.generation import OpenAIChatGenerator, ReplicaPool
    from harness.eval.vllm_server import replicas

    with replicas(checkpoint, eval_config, out_dir) as servers:
        pool = ReplicaPool(
            [
                OpenAIChatGenerator(
                    server.base_url,
                    server.model_name,
                    concurrency=eval_config.max_concurrency,
                    on_error=server.raise_if_dead,
                )  # fmt: skip
                for server in servers
            ]
        )
        pool.engine_version = servers[0].version()
        pool.generated_tokens = lambda: _sum_or_none(server.generated_tokens() for server in servers)
        pool.gpus = sum(len(server.gpus or ()) for server in servers)
        yield pool


def _sum_or_none(values) -> float | None:
    """The sum, or None when any replica does not say (then no server-side rate at all)."""
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
