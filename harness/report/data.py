"""Everything the report shows: parity.json's typed results, and the runs' raw curves to draw.

Statistics come from parity.json only (harness compare computed them); the run directories give
what is drawn (loss curves, step times, NVML samples, profiles) and the per-problem texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.analysis import rundata
from harness.analysis.loss import ema
from harness.analysis.pairing import Run, load_runs
from harness.analysis.results import PARITY_FILE, Parity, read_parity
from harness.recipes import is_emulated

EXCERPT_CHARS = 400
MAX_DISAGREEMENTS = 8


@dataclass
class RunSeries:
    """One run's curves: steps, losses, steady step times, NVML samples."""

    run: Run
    steps: list[int] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)
    steady_step_time_s: list[float] = field(default_factory=list)
    nvml: pd.DataFrame | None = None
    profile: dict | None = None  # profile.json (telemetry.profile_steps), when the run was profiled

    @property
    def smoothed(self) -> tuple[list[int], list[float]]:
        """The loss curve with the same bias-corrected EMA loss parity applies, over this run's own steps."""
        pairs = [(s, v) for s, v in zip(self.steps, self.loss, strict=True) if v is not None]
        if not pairs:
            return [], []
        steps, values = zip(*pairs, strict=True)
        return list(steps), [float(v) for v in ema(values)]

    @property
    def label(self) -> str:
        """ "fp8 (emulated:block)": the recipe names the precision; EMULATED is added only where it does not."""
        recipe = self.run.spec.recipe
        return f"{self.run.spec.arm} ({recipe})" + (
            " EMULATED" if self.run.emulated and not is_emulated(recipe) else ""
        )


@dataclass
class ReportData:
    suite_dir: Path
    parity: Parity
    runs: dict[str, RunSeries]  # run_id -> series
    agreement: dict[str, dict]  # comparison id -> bench -> agreement summary


def _series(run: Run) -> RunSeries:
    records = rundata.read_metrics_safe(run.dir)
    steady = rundata.steady_records(records, run.spec.telemetry.warmup_steps)
    return RunSeries(
        run=run,
        steps=[r["step"] for r in records],
        loss=[r.get("loss") for r in records],
        steady_step_time_s=rundata.column(steady, "step_time_s"),
        nvml=rundata.read_nvml(run.dir),
        profile=rundata.read_profile(run.dir),
    )


def _excerpt(frame: pd.DataFrame, problem_id: str, column: str) -> str:
    rows = frame[frame["problem_id"] == problem_id].sort_values("sample_index")
    if column not in rows or rows.empty:
        return ""
    text = str(rows.iloc[0][column])
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + " ..."


def agreement(baseline: Run, candidate: Run, bench: str) -> dict:
    """Per-problem agreement: a problem counts as solved by an arm when most of its k samples
    scored; lists the problems where the arms' mean scores differ most (with text excerpts)."""
    base_rows, cand_rows = rundata.read_samples(baseline.dir, bench), rundata.read_samples(candidate.dir, bench)
    base, cand = rundata.per_problem_scores(base_rows), rundata.per_problem_scores(cand_rows)
    both = base.index.intersection(cand.index)
    base, cand = base[both], cand[both]
    solved_b, solved_c = base >= 0.5, cand >= 0.5
    diff = (cand - base).sort_values(key=abs, ascending=False)
    worst = [pid for pid, d in diff.items() if d != 0][:MAX_DISAGREEMENTS]
    return {
        "n_problems": len(both),
        "both_solved": int((solved_b & solved_c).sum()),
        "neither": int((~solved_b & ~solved_c).sum()),
        "baseline_only": int((solved_b & ~solved_c).sum()),
        "candidate_only": int((~solved_b & solved_c).sum()),
        "agreement_pct": float((solved_b == solved_c).mean() * 100) if len(both) else None,
        "disagreements": [
            {
                "problem_id": pid,
                "baseline_score": float(base[pid]),
                "candidate_score": float(cand[pid]),
                "prompt": _excerpt(base_rows, pid, "prompt"),
                "baseline_output": _excerpt(base_rows, pid, "output"),
                "candidate_output": _excerpt(cand_rows, pid, "output"),
            }
            for pid in worst
        ],
    }


def load_report_data(suite_dir: Path, parity: Parity | None = None) -> ReportData:
    """The runs of a suite, read for drawing, beside its parity results (default: its parity.json)."""
    suite_dir = Path(suite_dir)
    parity = parity or read_parity(suite_dir / PARITY_FILE)
    runs = {r.spec.run_id: _series(r) for r in load_runs(suite_dir)}
    agree = {}
    for row in parity.comparisons:
        base, cand = runs.get(row.baseline.run_id), runs.get(row.candidate.run_id)
        if base is not None and cand is not None and row.status == "ok":
            agree[row.id] = {bench: agreement(base.run, cand.run, bench) for bench in row.eval}
    return ReportData(suite_dir, parity, runs, agree)
