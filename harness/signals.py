"""Signal handling shared by training and evaluation (torch-free): Ctrl-C and SIGTERM stop a command
once, and the code that records how it ended, or stops its servers, is never cut short."""

from __future__ import annotations

import contextlib
import signal
import threading

from harness.errors import Terminated

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _interrupt_handler(handler):
    """`handler` for SIGINT and SIGTERM inside the block, the previous ones after it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in INTERRUPTS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)


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
