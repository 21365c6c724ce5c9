"""torchrun's agent as `harness launch` starts it: `python -m harness.torchrun ARGS`, ARGS as torchrun's.

Two differences from `python -m torch.distributed.run`. The agent ignores SIGUSR1: that signal is for
the ranks (stop after the current step, with a checkpoint), and Python's default would kill the agent
and orphan them in their sessions; the ranks inherit the ignoring until the trainer installs its
handler. And when a rank ends with an error, or a signal ends the agent, it exits with that rank's code
(138 for a stopped run) or 128 + the signal after at most one line, not a traceback: the rank has
said why, and `harness launch` reads the manifest.
"""

from __future__ import annotations

import signal
import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        run(parse_args(argv))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode if failure.exitcode > 0 else 1  # negative: killed by a signal
        print(f"torchrun: rank {rank} exited first (code {failure.exitcode}); torchrun ended any rank still running",
              file=sys.stderr)  # fmt: skip
        return code
    except SignalException as exc:  # Ctrl-C or SIGTERM: handed to the ranks, which recorded it
        return 128 + exc.sigval
    return 0


if __name__ == "__main__":
    sys.exit(main())
