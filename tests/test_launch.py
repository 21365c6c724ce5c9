"""harness launch: torchrun commands, the two-node rendezvous and the Slurm script."""

from __future__ import annotations

import argparse

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
    args = get_args_parser().parse_args(cmd[3:])  # after "python -m torch.distributed.run"
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
    args = argparse.Namespace(nnodes=2, nproc_per_node=8, overrides=["model.path=/m q"])
    script = slurm_script("suites/parity-7b.toml", args)
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=1" in script
    assert '--node-rank "$SLURM_NODEID"' in script and "--rdzv-endpoint" in script
    assert "--set 'model.path=/m q'" in script


def test_dry_run_prints_one_torchrun_per_planned_run(capsys):
    code = main(["launch", "suites/smoke.toml", "--nproc-per-node", "2", "--dry-run"])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("torch.distributed.run") == 4
    assert "topology.nproc_per_node=2" in err
