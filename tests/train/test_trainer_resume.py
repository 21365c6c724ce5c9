"""A run killed right after a checkpoint (a real SIGKILL) and re-run reproduces the per-step losses
of an uninterrupted run bitwise (exact float equality of every logged loss), on CPU."""

import os
import subprocess
import sys
import textwrap

from trainkit import losses, prepare, specs, tiny_suite

from harness.train.trainer import train

# Runs the trainer in a child process whose save_checkpoint kills the process with SIGKILL right
# after writing the checkpoint of step KILL_AT: no cleanup, no finish(), like a node failure.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from harness.store import RunDir
    import harness.train.trainer as trainer

    original = trainer.save_checkpoint
    def save_then_die(folder, step, *args, **kwargs):
        path = original(folder, step, *args, **kwargs)
        if step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
        return path
    trainer.save_checkpoint = save_then_die
    run_dir = RunDir(sys.argv[1])
    trainer.train(run_dir.read_spec(), run_dir, quiet=True)
""")


def test_killed_run_resumes_from_its_checkpoint_with_bitwise_identical_losses(tmp_path, corpus, harness_cache):
    suite = tiny_suite(str(corpus), arms={"fp8": "emulated:block"}, steps=10, checkpoint_every=4)
    spec = specs(suite)["cpt-fp8-s0"]
    reference = prepare(tmp_path / "reference", spec)
    train(spec, reference, quiet=True)

    killed = prepare(tmp_path / "killed", spec)
    env = {**os.environ, "HARNESS_CACHE": harness_cache}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(killed.path), "8"], env=env, capture_output=True, text=True
    )
    assert child.returncode == -9, child.stderr[-2000:]
    assert (killed.checkpoints / "step-000008").is_dir() and not (killed.checkpoints / "final").exists()
    assert killed.read_manifest()["status"] == "running"

    summary = train(spec, killed, quiet=True)
    assert summary["status"] == "completed"
    assert [r["step"] for r in killed.read_metrics()] == list(range(1, 11))
    assert losses(killed) == losses(reference)
    assert killed.read_manifest()["segment_starts"] == [0, 8]


def test_a_torn_checkpoint_folder_is_ignored_when_resuming(tmp_path):
    from harness.train.checkpoint import latest_checkpoint

    (tmp_path / "step-000004").mkdir()
    (tmp_path / "step-000004" / "state.pt").write_bytes(b"x")
    (tmp_path / "step-000008.tmp").mkdir()  # killed while writing
    (tmp_path / "step-000012").mkdir()  # renamed folder without its state file
    assert latest_checkpoint(tmp_path).name == "step-000004"
