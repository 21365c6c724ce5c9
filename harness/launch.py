"""`harness launch`: run a suite's training under torchrun, on one node, two nodes or Slurm.

Every node runs the same command with its own --node-rank; the agents meet at the
rendezvous endpoint (torch.distributed's c10d rendezvous). Each planned run is one torchrun
job whose ranks call `harness train SUITE --run RUN_ID`. Node rank 0 then evaluates,
compares, reports and gates; other nodes only train.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from harness.engine import prepare_run_dir, run_suite
from harness.errors import InvalidInput, RunFailed, Stopped
from harness.eval.procs import child_pids, pass_interrupt
from harness.pipeline import suite_args
from harness.preflight import preflight
from harness.runlock import folder_lock
from harness.signals import INTERRUPT_FLAG, relay_stop_requests
from harness.store import atomic_write_text
from harness.suite import RunSpec, load_suite, plan


def torchrun_command(
    suite_path: str,
    spec: RunSpec,
    *,
    nnodes: int,
    nproc_per_node: int,
    node_rank: int,
    rdzv_endpoint: str,
    overrides: list[str],
    runs_dir: str,
) -> list[str]:
    """The argv that starts this node's torchrun agent for one run (no shell involved; harness/torchrun.py)."""
    cmd = [sys.executable, "-m", "harness.torchrun", f"--nnodes={nnodes}", f"--nproc-per-node={nproc_per_node}"]
    if nnodes == 1 and rdzv_endpoint in ("", "localhost:0"):
        cmd.append("--standalone")
    else:
        cmd += [
            f"--node-rank={node_rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            f"--rdzv-id={spec.suite}-{spec.run_id}",
        ]
    cmd += ["-m", "harness.cli", "train", suite_path, "--run-id", spec.run_id, "--runs-dir", runs_dir, "--quiet"]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


# On a node other than rank 0's the run's manifest is not local; this is what its node says.
STOPPED_ELSEWHERE = "stopped by SIGUSR1 after a step, its checkpoint written; run the same command again to resume"


def run_torchrun(cmd: list[str], run_path: Path) -> tuple[int, bool]:
    """Run one torchrun agent to its end; returns its exit code and whether a stop was requested.

    SIGUSR1 to this process goes straight to the ranks (the agent's children; the agent ignores it),
    which finish their step, write a checkpoint and exit 138. Ctrl-C or SIGTERM is handed to the
    agent once (it runs in a session of its own, so a terminal's Ctrl-C does not reach it twice),
    which hands it to the ranks (they record the run as interrupted) and is waited for: killing it
    would leave them training.

    Before the signal goes on, INTERRUPT_FLAG is written in `run_path`: a rank whose collective fails
    because a peer left on its signal, before its own is handled, records the run interrupted rather
    than failed (harness/train/trainer.py, record_end). The flag is removed when the agent has ended.
    """
    flag = run_path / INTERRUPT_FLAG
    flag.unlink(missing_ok=True)  # left behind by a launch that was killed
    agent = subprocess.Popen(cmd, start_new_session=True)
    try:
        with relay_stop_requests(lambda: child_pids(agent.pid)) as relay:
            code = agent.wait()
    except KeyboardInterrupt as exc:
        flag.touch()  # before the signal goes on, so before any rank can see a peer leave
        pass_interrupt([agent], exc)
        raise
    finally:
        flag.unlink(missing_ok=True)
    return code, relay.requested


def topology_overrides(nnodes: int, nproc_per_node: int) -> list[str]:
    # The topology is part of the matched fingerprint, so it travels as suite overrides.
    return [f"topology.nnodes={nnodes}", f"topology.nproc_per_node={nproc_per_node}"]


def slurm_script(suite_path: str, args: argparse.Namespace, port: int = 29500) -> str:
    """An sbatch script that starts one `harness launch` (one torchrun agent) per node.

    `--signal=USR1@N` has Slurm send SIGUSR1 to every process of the job step N seconds before the
    time limit: the ranks finish their step and write a checkpoint, node 0's launch exits 138, and the
    script requeues the job, whose fresh time limit resumes the run where it stopped.
    """
    # The suite and overrides reach the task as arguments of `bash -c`, quoted once, here (inside its
    # single-quoted script a quoted value would end the script early and drop what follows).
    static = [suite_path, "--nproc-per-node", str(args.nproc_per_node)]
    for item in args.overrides:
        static += ["--set", item]
    return f"""#!/bin/bash
#SBATCH --job-name=harness-{Path(suite_path).stem}
#SBATCH --nodes={args.nnodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={args.nproc_per_node}
#SBATCH --exclusive
#SBATCH --output=harness-%j.log
#SBATCH --signal=USR1@{args.stop_lead_s}
#SBATCH --requeue
set -euo pipefail
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
# One task per node: each runs a torchrun agent for every planned run, rank 0 also reports. Slurm
# signals the task's shell too: its trap keeps it alive while harness launch hands the stop on. Only
# node 0 reports a stop (138): the other nodes' 0 lets --kill-on-bad-exit spare node 0 as it finishes.
code=0
srun --kill-on-bad-exit=1 bash -c 'trap : USR1
harness launch "$@" --nnodes "$SLURM_NNODES" --node-rank "$SLURM_NODEID" || code=$?
if [ "${{code:-0}}" -eq 138 ] && [ "$SLURM_NODEID" -ne 0 ]; then code=0; fi
exit "${{code:-0}}"' harness-task {shlex.join(static)} --rdzv-endpoint "$head:{port}" || code=$?
if [ "$code" -eq 138 ]; then  # stopped with a checkpoint before the time limit: go on in a new job
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$code"
"""


def configure_launch(parser: argparse.ArgumentParser):
    suite_args(parser)
    parser.add_argument("--nnodes", type=int, default=1)
    parser.add_argument("--nproc-per-node", type=int, default=1)
    parser.add_argument("--node-rank", type=int, default=0)
    parser.add_argument("--rdzv-endpoint", default="", help="HOST:PORT of node rank 0 (required for --nnodes > 1)")
    parser.add_argument("--slurm", action="store_true", help="write an sbatch script instead of running")
    parser.add_argument(
        "--stop-lead-s", type=int, default=300,
        help="with --slurm: seconds before the time limit at which the runs stop with a checkpoint (a step "
        "and a checkpoint must fit; Slurm may signal up to 60 s early)",
    )  # fmt: skip
    parser.add_argument("--runs-dir", help="root of run directories (default: the suite's runs_dir)")
    parser.add_argument("--report-dir", help="where the report goes (default: reports/<suite>)")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="print the torchrun commands only")

    def main(args) -> int:
        if args.nnodes < 1 or args.nproc_per_node < 1:
            raise InvalidInput("--nnodes and --nproc-per-node must be at least 1")
        if args.nnodes > 1 and not args.slurm and ":" not in args.rdzv_endpoint:
            raise InvalidInput("--rdzv-endpoint HOST:PORT is required with --nnodes > 1 (node rank 0's address)")
        if args.slurm:
            path = Path(f"harness-{Path(args.suite).stem}.sbatch")
            atomic_write_text(path, slurm_script(args.suite, args))
            print(f"wrote {path}; submit it with: sbatch {path}")
            return 0
        overrides = [*args.overrides, *topology_overrides(args.nnodes, args.nproc_per_node)]
        suite = load_suite(args.suite, overrides)
        runs_dir = args.runs_dir or suite.runs_dir
        suite_dir = Path(runs_dir) / suite.name

        def train_with_torchrun(spec: RunSpec, suite_dir: Path, quiet: bool) -> None:
            cmd = torchrun_command(
                args.suite,
                spec,
                nnodes=args.nnodes,
                nproc_per_node=args.nproc_per_node,
                node_rank=args.node_rank,
                rdzv_endpoint=args.rdzv_endpoint,
                overrides=overrides,
                runs_dir=runs_dir,
            )
            print(shlex.join(cmd), file=sys.stderr)
            if args.dry_run:
                return
            run_dir = prepare_run_dir(suite_dir, spec)
            code, stop_requested = run_torchrun(cmd, run_dir.path)
            if code != 0:
                manifest = run_dir.read_manifest() if run_dir.manifest.is_file() else {}
                status, reason = manifest.get("status"), manifest.get("reason") or ""
                if (
                    reason.startswith("stopped by SIGUSR1")
                    or stop_requested
                    and status not in ("failed", "interrupted")
                ):
                    raise Stopped(f"{spec.run_id}: {reason or STOPPED_ELSEWHERE}")
                raise RunFailed(f"{spec.run_id}: {reason or f'torchrun exited {code}'}")

        if args.dry_run or args.node_rank != 0:
            for spec in plan(suite):
                train_with_torchrun(spec, suite_dir, True)
            return 0
        report_dir = Path(args.report_dir or Path("reports") / suite.name)
        # Node 0 holds the suite folder as `harness run` does (its ranks each lock their run folder).
        with folder_lock(suite_dir, what="suite runs folder", command=f"harness launch {args.suite}"):
            preflight(suite, plan(suite), suite_dir, args.suite, evaluate=not args.skip_eval)
            return run_suite(
                suite, suite_dir, report_dir, skip_eval=args.skip_eval, quiet=True, train_fn=train_with_torchrun
            )

    return main
