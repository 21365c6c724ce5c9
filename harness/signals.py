"""Signal handling shared by training and evaluation (torch-free): Ctrl-C and SIGTERM stop a command
once, the code that records how it ended, or stops its servers, is never cut short, and SIGUSR1 (stop
after the current step, with a checkpoint) reaches the processes that train."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.errors import Terminated

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
# In a run folder while `harness launch` stops torchrun's ranks after a Ctrl-C or SIGTERM.
INTERRUPT_FLAG = "interrupt-requested"


@contextlib.contextmanager
def handling(signals: Iterable[int], handler):
    """`handler` for `signals` inside the block, the previous handlers after it (main thread only:
    elsewhere Python cannot install handlers, and the block runs without)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)


def _interrupt_handler(handler):
    """`handler` for SIGINT and SIGTERM inside the block."""
    return handling(INTERRUPTS, handler)


def _interrupt_once(signum, frame):
    for sig in INTERRUPTS:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def interrupts_once():
    """The first Ctrl-C or SIGTERM interrupts the run; further ones are ignored until it has ended.

    A terminal's Ctrl-C reaches a `harness train` child twice (from the terminal, and relayed by
    `harness run`). Were the second to land while the first unwinds towards the handler that
    records the run as interrupted, it would escape that handler and leave the manifest
    "running"; so the first one's handler ignores both signals before it raises. The previous
    handlers come back when the block ends, with the run's end recorded.
    """
    return _interrupt_handler(_interrupt_once)


def signals_held():
    """Ignore Ctrl-C and SIGTERM inside the block: while a run records how it ended (completed, failed or
    interrupted), and while an evaluation closes its requests and stops its vLLM servers.

    A signal must not cut those short: the run would stay "running" for ever, or a server (in a
    session of its own) would outlive the harness and keep its GPUs. The process is on its way
    out already, so nothing is lost; a second Ctrl-C (a terminal's, beside the one `harness run`
    relays) is one such signal.
    """
    return _interrupt_handler(signal.SIG_IGN)


class StopRelay:
    """What `relay_stop_requests` saw: whether a SIGUSR1 arrived inside its block."""

    requested = False


@contextlib.contextmanager
def relay_stop_requests(targets: Callable[[], Iterable[int]]):
    """Hand SIGUSR1 (stop after the current step, with a checkpoint) on to the processes `targets()`
    names when it lands, inside the block; yields a StopRelay.

    Python's default for SIGUSR1 is to die, which would orphan the training processes: `harness run`
    hands it to its `harness train` child, `harness launch` to torchrun's ranks (whose agent ignores it).
    """
    relay = StopRelay()

    def hand_on(signum, frame):
        relay.requested = True
        for pid in targets():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)

    with handling([signal.SIGUSR1], hand_on):
        yield relay


def interrupt_requested(run_path: Path) -> bool:
    """Whether `harness launch` is stopping this run's ranks after a Ctrl-C or SIGTERM.

    Launch writes INTERRUPT_FLAG before it hands the signal on, so the flag is there before any rank
    can see a peer leave; a rank whose own signal comes later still knows why its collective failed.
    """
    return (run_path / INTERRUPT_FLAG).exists()
