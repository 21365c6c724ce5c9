"""Weights & Biases step logger (telemetry.loggers = ["wandb"]): one W&B run per harness run.

The W&B run lives in <run_dir>/wandb/ (offline by default: nothing leaves the machine until
`wandb sync <run_dir>/wandb`), is named after the run id, grouped by suite, typed by stage, and
carries arm, recipe, stage, seed and fingerprint as config and as tags. Steps are logged as
metrics.jsonl writes them (train/*, nvml/*), the run's summary.json goes into the W&B summary.

Resume without duplicated steps: W&B keeps no step it has not flushed (a kill -9 loses its tail,
often more), and a W&B history cannot be cut back to a checkpoint. metrics.jsonl can, and is. So at
every (re)start the offline folders of earlier segments are deleted and the same W&B run id is
opened afresh: the kept metrics.jsonl lines (and their NVML samples) are replayed, then live steps
follow. Synced, the W&B run's history is metrics.jsonl, step for step. Online (opted in), W&B's
server keeps what it received: steps it already holds are not sent again (see docs/TELEMETRY.md).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from harness.errors import InvalidInput
from harness.store import atomic_write_json, read_json, read_metrics
from harness.telemetry.loggers import read_nvml_rows, replay

INSTALL = "pip install 'fp8-parity-harness[wandb]'"
STATE_FILE = "harness.json"  # in <run_dir>/wandb/: the W&B run id and the folders of its segments


def require_wandb():
    """The wandb module, or InvalidInput naming the install command."""
    try:
        import wandb
    except ImportError:
        raise InvalidInput(
            f"suite telemetry.loggers includes 'wandb' but the wandb package is not installed; {INSTALL} "
            "(or pip install wandb), or remove 'wandb' from telemetry.loggers"
        ) from None
    return wandb


def wandb_mode(telemetry, environ=os.environ) -> str:
    """WANDB_MODE when the user set it, else telemetry.wandb_mode (default offline)."""
    return environ.get("WANDB_MODE") or telemetry.wandb_mode


def wandb_dir(run_dir) -> Path:
    return Path(run_dir.path) / "wandb"


def read_state(run_dir) -> dict | None:
    path = wandb_dir(run_dir) / STATE_FILE
    return read_json(path, f"wandb/{STATE_FILE}") if path.is_file() else None


def write_state(run_dir, state: dict) -> None:
    wandb_dir(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(wandb_dir(run_dir) / STATE_FILE, state)


def remove_offline_folders(run_dir, names: list[str] | None = None) -> None:
    """Delete offline W&B run folders under <run_dir>/wandb (all, or those named)."""
    folders = wandb_dir(run_dir).glob("offline-run-*") if names is None else (wandb_dir(run_dir) / n for n in names)
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder)


def identity(spec) -> tuple[dict, list[str]]:
    """(config, tags) of a harness run's W&B run: what a team filters and groups by."""
    from harness.train.precision.registry import is_emulated

    emulated = is_emulated(spec.recipe)
    config = {
        "suite": spec.suite, "run_id": spec.run_id, "arm": spec.arm, "recipe": spec.recipe,
        "stage": spec.stage_name, "seed": spec.seed, "fingerprint": spec.fingerprint, "emulated": emulated,
        "spec": spec.model_dump(mode="json"),
    }  # fmt: skip
    tags = [f"arm:{spec.arm}", f"recipe:{spec.recipe}", f"stage:{spec.stage_name}", f"seed:{spec.seed}",
            f"fingerprint:{spec.fingerprint}", *(["emulated"] if emulated else [])]  # fmt: skip
    return config, tags


def open_run(run_dir, spec, run_id: str, mode: str):
    """wandb.init for one segment of the harness run's W&B run (same id every time: W&B resumes it)."""
    wandb = require_wandb()
    config, tags = identity(spec)
    telemetry = spec.telemetry
    wandb_dir(run_dir).mkdir(parents=True, exist_ok=True)
    try:
        return wandb.init(
            id=run_id, resume="allow", dir=str(run_dir.path), mode=mode, project=telemetry.wandb_project,
            entity=telemetry.wandb_entity, group=spec.suite, job_type=spec.stage_name, name=spec.run_id,
            tags=tags, config=config,
            # console off: the harness's own progress output stays as it is; stats off: the NVML
            # sampler already measures the GPU (nvml/*), a second sampler would only add load.
            settings=wandb.Settings(console="off", x_disable_stats=True, quiet=True, save_code=False),
        )  # fmt: skip
    except Exception as exc:  # wandb raises its own error types (login, network, bad entity ...)
        raise InvalidInput(
            f"{spec.run_id}: wandb.init failed in mode {mode!r}: {exc}; check telemetry.wandb_project / "
            "wandb_entity, run `wandb login` for online mode, or use telemetry.wandb_mode = 'offline'"
        ) from None


def segment_folder(run) -> str | None:
    """Name of the folder under <run_dir>/wandb/ this W&B segment writes (None when disabled)."""
    folder = getattr(run, "dir", None)
    return Path(folder).parent.name if folder else None


def summary_values(summary: dict) -> dict[str, Any]:
    """summary.json as flat W&B summary keys: summary/step_time_s/median, summary/peak_alloc_bytes ..."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            out.update({f"summary/{key}/{k}": v for k, v in value.items() if v is not None})
        elif value is not None and key not in ("run_id", "stage", "arm", "recipe"):  # already config
            out[f"summary/{key}"] = value
    return out


class WandbLogger:
    """Logs one harness run's steps to its W&B run; see the module docstring for resume."""

    @classmethod
    def check_available(cls) -> None:
        require_wandb()

    def __init__(self, run_dir, spec, start_step: int):
        state = read_state(run_dir) if start_step else None  # a fresh start is a new W&B run
        run_id = (state or {}).get("id") or secrets.token_hex(4)
        mode = wandb_mode(spec.telemetry)
        remove_offline_folders(run_dir)  # rebuilt below from metrics.jsonl, the record that survives a kill
        self._run = open_run(run_dir, spec, run_id, mode)
        write_state(run_dir, {"id": run_id, "mode": mode, "project": spec.telemetry.wandb_project,
                              "entity": spec.telemetry.wandb_entity, "train": segment_folder(self._run)})  # fmt: skip
        # Online, a resumed run continues at the server's step: steps it holds are not re-sent.
        self._first_step = int(self._run.step or 0) if getattr(self._run, "resumed", False) else 0
        if start_step and run_dir.metrics.is_file():
            for step, scalars in replay(read_metrics(run_dir.metrics), read_nvml_rows(run_dir.nvml)):
                self.log(step, scalars)

    def log(self, step: int, scalars: dict) -> None:
        if step >= self._first_step and scalars:
            self._run.log(scalars, step=step)

    def finish(self, status: str, summary: dict) -> None:
        self._run.summary.update(summary_values(summary))
        self._run.finish(exit_code=0 if status == "completed" else 1)
        close_wandb()


def close_wandb() -> None:
    """Wait until wandb has written everything to disk and stop its service process.

    run.finish() returns before wandb-core has written the run's transaction log (offline, the
    file can still be a bare header right after it); teardown waits for the service to exit, so
    the files are complete when the harness moves on (a kill just after cannot lose the run).
    The harness's training and `harness run` processes own their wandb service.
    """
    require_wandb().teardown()
