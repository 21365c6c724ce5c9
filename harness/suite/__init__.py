"""Suite files: TOML -> validated pydantic models -> a matrix of RunSpecs.

A suite describes matched training runs (stages x arms x seeds), how to evaluate them and
which gates a comparison must pass. Everything downstream reads these typed objects, by these
names: training.py (model, stages, topology, telemetry), evaluation.py, gates.py, matrix.py
(the Suite, plan() and RunSpec) and load.py (the file, ${VAR}s, --set, error messages).
"""

from harness.suite.evaluation import HARNESS_SERVER_FLAGS, BenchmarkConfig, EvalConfig
from harness.suite.gates import GatesConfig, Thresholds
from harness.suite.load import format_validation_error, load_suite, unresolved_variables
from harness.suite.matrix import RunSpec, Suite, fingerprint, plan, run_id
from harness.suite.training import (
    LOGGER_NAMES,
    OBSERVER_FIELDS,
    DataConfig,
    DivergenceConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    StageConfig,
    Strict,
    TelemetryConfig,
    TopologyConfig,
)  # fmt: skip

__all__ = [
    "HARNESS_SERVER_FLAGS", "LOGGER_NAMES", "OBSERVER_FIELDS", "BenchmarkConfig", "DataConfig", "DivergenceConfig",
    "EvalConfig", "GatesConfig", "ModelConfig", "OptimConfig", "RunSpec", "ScheduleConfig", "StageConfig", "Strict",
    "Suite", "TelemetryConfig", "Thresholds", "TopologyConfig", "fingerprint", "format_validation_error",
    "load_suite", "plan", "run_id", "unresolved_variables",
]  # fmt: skip
