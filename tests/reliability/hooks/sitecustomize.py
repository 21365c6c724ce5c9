"""Imported at start-up by the test's child processes (tests/reliability put this folder on PYTHONPATH).

HARNESS_TEST_PAUSE="KIND:N" makes the child stop itself with SIGSTOP at one exact point, so the
test can SIGKILL it there deterministically (no timing races):
    metrics:N     right after metrics.jsonl receives the line of step N
    checkpoint:N  after checkpoints/step-N.tmp/state.pt is written, before the rename
    eval:N        right after the N-th generated sample is appended to generations.jsonl
    server-stop:N as the N-th stop of a vLLM server begins (inside the part no signal may cut short)

HARNESS_TEST_LATE_INTERRUPT=R makes torchrun's rank R block SIGINT and SIGTERM from start-up, so its
own stop signal stays pending (and is dropped once it holds signals to record how the run ended):
the ordering in which a peer rank leaves first and this rank's signal arrives too late.
"""

import os
import signal

_PAUSE = os.environ.get("HARNESS_TEST_PAUSE", "")

_LATE = os.environ.get("HARNESS_TEST_LATE_INTERRUPT")
if _LATE and os.environ.get("RANK") == _LATE:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _stop() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


if _PAUSE:
    _kind, _, _value = _PAUSE.partition(":")
    _at = int(_value)
    if _kind == "metrics":
        from harness import store

        _write = store.MetricsWriter.write

        def _write_then_pause(self, record):
            _write(self, record)
            if record.get("step") == _at:
                _stop()

        store.MetricsWriter.write = _write_then_pause
    elif _kind == "checkpoint":
        import pathlib

        _rename = pathlib.Path.rename

        def _pause_then_rename(self, target):
            if self.name == f"step-{_at:06d}.tmp":
                _stop()
            return _rename(self, target)

        pathlib.Path.rename = _pause_then_rename
    elif _kind == "eval":
        from harness.eval import cache

        _append = cache.GenerationCache.append
        _count = [0]

        def _append_then_pause(self, *args, **kwargs):
            _append(self, *args, **kwargs)
            _count[0] += 1
            if _count[0] == _at:
                _stop()

        cache.GenerationCache.append = _append_then_pause
    elif _kind == "server-stop":  # server-stop:N: as the N-th vLLM server stop begins (signals already held)
        from harness.eval import vllm_server

        _server_stop = vllm_server.VllmServer._stop
        _stops = [0]

        def _pause_then_stop(self):
            _stops[0] += 1
            if _stops[0] == _at:
                _stop()
            return _server_stop(self)

        vllm_server.VllmServer._stop = _pause_then_stop
