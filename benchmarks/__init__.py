"""GPU microbenchmarks (pytest-benchmark): FP8 recipes against an equally optimised BF16 arm.

    python -m pytest benchmarks --benchmark-only                        # eager, every recipe here
    HARNESS_BENCH_COMPILE=1 python -m pytest benchmarks --benchmark-only -k model_step

Without a CUDA GPU every module skips at collection (see environment.missing_cuda_reason).
"""
