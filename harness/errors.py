"""Errors the command line turns into one message and a documented exit code."""

from __future__ import annotations


class HarnessError(Exception):
    """A problem the user can fix; the CLI prints the message without a traceback."""

    exit_code = 2


class InvalidInput(HarnessError):
    """Bad suite file, missing path, corrupt run directory: exit 2."""

    exit_code = 2


class NotAvailable(HarnessError):
    """A command or option that this version does not provide yet: exit 2."""

    exit_code = 2


class RunFailed(HarnessError):
    """A run diverged, hit NaN or ran out of memory; its reason is recorded: exit 3."""

    exit_code = 3


class GateFailed(HarnessError):
    """A regression gate failed: exit 1."""

    exit_code = 1


class Stopped(HarnessError):
    """A run stopped on request (SIGUSR1) after writing a checkpoint: run the same command again to resume.

    Exit code 138 (128 + SIGUSR1), so a batch script can tell it from a failure and requeue the job.
    """

    exit_code = 138


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm time limit or preemption, torchrun stopping workers, `kill`): unwinds like Ctrl-C,
    so runs are marked interrupted and child servers stopped instead of the process vanishing.

    Here, not in harness.cli: under `python -m harness.cli` that module is __main__, and a class
    defined there would not be the one other modules import.
    """
