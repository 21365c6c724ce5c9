"""harness launch: torchrun commands, the two-node rendezvous and the Slurm script."""

from __future__ import annotations

import argparse
import shutil
import subprocess

from harness.cli import main
from harness.launch import slurm_script, torchrun_command
from harness.suite import load_suite, plan


def spec():
    return plan(load_suite("suites/smoke.toml"))[0]


def test_single_node_uses_standalone_rendezvous():
    cmd = torchrun_command(
        "suites/smoke.toml",
        spec(),
        nnodes=1,
        nproc_per_node=2,
        node_rank=0,
        rdzv_endpoint="",
        overrides=[],
        runs_dir="r",
    )
    assert "--standalone" in cmd and "--nproc-per-node=2" in cmd
    assert cmd[cmd.index("--run-id") + 1] == "cpt-bf16-s0"


def test_torchrun_parses_our_command_and_passes_the_run_through():
    from torch.distributed.run import get_args_parser

    cmd = torchrun_command(
        "s.toml",
        spec(),
        nnodes=2,
        nproc_per_node=8,
        node_rank=1,
        rdzv_endpoint="h:29500",
        overrides=["a=1"],
        runs_dir="r",
    )
    args = get_args_parser().parse_args(cmd[3:])  # after "python -m harness.torchrun"
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "8", 1)
    assert args.module and args.training_script == "harness.cli"
    assert args.training_script_args[:4] == ["train", "s.toml", "--run-id", "cpt-bf16-s0"]


def test_two_nodes_meet_at_the_endpoint_with_their_own_rank():
    cmds = [
        torchrun_command(
            "s.toml",
            spec(),
            nnodes=2,
            nproc_per_node=8,
            node_rank=r,
            rdzv_endpoint="10.0.0.1:29500",
            overrides=[],
            runs_dir="r",
        )
        for r in (0, 1)
    ]
    for rank, cmd in enumerate(cmds):
        assert f"--node-rank={rank}" in cmd
        assert "--rdzv-endpoint=10.0.0.1:29500" in cmd and "--rdzv-backend=c10d" in cmd
        assert "--standalone" not in cmd
    assert [c for c in cmds[0] if c.startswith("--rdzv-id")] == [c for c in cmds[1] if c.startswith("--rdzv-id")]


def test_two_nodes_without_endpoint_is_a_clear_error(capsys):
    assert main(["launch", "suites/smoke.toml", "--nnodes", "2", "--nproc-per-node", "1"]) == 2
    assert "--rdzv-endpoint" in capsys.readouterr().err


def test_slurm_script_starts_one_agent_per_node():
    args = argparse.Namespace(nnodes=2, nproc_per_node=8, overrides=["model.path=/m q"], stop_lead_s=300)
    script = slurm_script("suites/parity-7b.toml", args)
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=1" in script
    assert '--node-rank "$SLURM_NODEID"' in script and "--rdzv-endpoint" in script
    assert "--set 'model.path=/m q'" in script


def test_dry_run_prints_one_torchrun_per_planned_run(capsys):
    code = main(["launch", "suites/smoke.toml", "--nproc-per-node", "2", "--dry-run"])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("harness.torchrun") == 4
    assert "topology.nproc_per_node=2" in err


def _slurm_job(tmp_path, exit_codes: dict[int, int], overrides=()) -> tuple[int, str]:
    """Run the sbatch script with stand-ins for srun (two nodes, the step's exit code the highest of its
    tasks), scontrol and harness (exits as `exit_codes` says for its --node-rank); returns the script's
    exit code and the log of what the stand-ins were asked."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    stand_ins = {
        "srun": 'shift; worst=0; for node in 0 1; do SLURM_NODEID=$node "$@" || c=$?; '
        '[ "${c:-0}" -gt "$worst" ] && worst=${c:-0}; c=0; done; exit "$worst"',
        "scontrol": 'echo "scontrol $*" >> "$CALLS"; if [ "$1" = show ]; then echo node-a; fi',
        "harness": 'echo "harness node $SLURM_NODEID" >> "$CALLS"; printf "arg[%s]\\n" "$@" >> "$CALLS"; '
        f'case "$SLURM_NODEID" in 0) exit {exit_codes[0]};; *) exit {exit_codes[1]};; esac',
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    args = argparse.Namespace(nnodes=2, nproc_per_node=8, overrides=list(overrides), stop_lead_s=300)
    script = tmp_path / "job.sbatch"
    script.write_text(slurm_script("suites/parity-7b.toml", args))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(log), "SLURM_JOB_NODELIST": "node-[a-b]",
           "SLURM_NNODES": "2", "SLURM_JOB_ID": "42"}  # fmt: skip
    code = subprocess.run(["bash", str(script)], env=env, timeout=60).returncode
    return code, log.read_text()


def test_slurm_script_asks_for_sigusr1_before_the_time_limit_and_requeues_a_stopped_job(tmp_path):
    code, calls = _slurm_job(tmp_path, {0: 138, 1: 138})
    assert code == 138 and "scontrol requeue 42" in calls
    assert calls.count("harness node") == 2
    script = (tmp_path / "job.sbatch").read_text()
    assert "#SBATCH --signal=USR1@300" in script and "#SBATCH --requeue" in script


def test_slurm_script_requeues_neither_a_finished_nor_a_failed_job(tmp_path):
    for codes, expected in (({0: 0, 1: 0}, 0), ({0: 1, 1: 138}, 1), ({0: 0, 1: 1}, 1)):
        code, calls = _slurm_job(tmp_path, codes)
        assert code == expected and "requeue" not in calls, (codes, calls)
        for path in tmp_path.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_slurm_script_hands_every_override_to_each_node_intact(tmp_path):
    overrides = ["model.path=/models/Qwen 7B", "description=it's FP8", "stages.cpt.steps=10"]
    code, calls = _slurm_job(tmp_path, {0: 0, 1: 0}, overrides)
    assert code == 0 and calls.count("harness node ") == 2
    for block in calls.split("harness node ")[1:]:  # one block per node: its number, then its arguments
        node, *lines = block.splitlines()
        args = [line[4:-1] for line in lines if line.startswith("arg[")]
        assert args[:4] == ["launch", "suites/parity-7b.toml", "--nproc-per-node", "8"]
        assert [args[i + 1] for i, a in enumerate(args) if a == "--set"] == overrides
        assert args[args.index("--node-rank") + 1] == node and args[args.index("--rdzv-endpoint") + 1] == "node-a:29500"
