"""Server lifecycle with a fake `vllm serve`: healthy, fails at start, dies midway; never an orphan."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.errors import InvalidInput, RunFailed
from harness.eval.generation import OpenAIChatGenerator, ReplicaPool, Request
from harness.eval.procs import group_alive
from harness.eval.vllm_server import VllmServer


def _requests(n: int) -> list[Request]:
    return [Request("p", i, ({"role": "user", "content": "hi"},), 1000 + i, 8, 0.65, 0.95) for i in range(n)]


def test_healthy_server_serves_and_is_stopped(tmp_path, fake_vllm_command):
    server = VllmServer(
        "/ckpt",
        log_path=tmp_path / "vllm.log",
        tensor_parallel_size=2,
        seed=5,
        command=fake_vllm_command,
        startup_timeout_s=60,
    )
    with server:
        pgid = server.process.pid
        assert server.healthy()
        generator = OpenAIChatGenerator(
            server.base_url, server.model_name, concurrency=2, on_error=server.raise_if_dead
        )
        outputs = dict((r.sample_index, c.text) for r, c in generator.generate(_requests(3)))
        assert server.generated_tokens() == 3 * 6  # vLLM's /metrics counter: six words ("tokens") each
    assert outputs == {i: f"seed {1000 + i}: The answer is \\boxed{{7}}." for i in range(3)}
    assert not group_alive(pgid)  # the server and its worker are gone
    log = (tmp_path / "vllm.log").read_text()
    assert "serving /ckpt tp=2 seed=5" in log  # arguments reached the server


def test_server_that_exits_at_start_raises_with_log_tail(tmp_path, fake_vllm_command):
    server = VllmServer(
        "/ckpt",
        log_path=tmp_path / "vllm.log",
        command=[*fake_vllm_command, "--mode", "exit-at-start"],
        startup_timeout_s=60,
    )
    with pytest.raises(RunFailed) as info:
        server.start()
    message = str(info.value)
    assert "exited with code 7" in message and "CUDA out of memory" in message and str(tmp_path) in message
    assert not group_alive(server.process.pid)


def test_server_that_never_gets_healthy_times_out_and_is_stopped(tmp_path, fake_vllm_command):
    command = [*fake_vllm_command, "--mode", "never-healthy"]
    server = VllmServer("/ckpt", log_path=tmp_path / "vllm.log", command=command, startup_timeout_s=1.0)
    with pytest.raises(RunFailed, match="not healthy after 1 s") as info:
        server.start()
    assert "fake vllm: serving /ckpt" in str(info.value)  # the log tail comes with the error
    assert not group_alive(server.process.pid)


def test_server_that_dies_midway_raises_and_leaves_no_worker(tmp_path, fake_vllm_command):
    server = VllmServer(
        "/ckpt",
        log_path=tmp_path / "vllm.log",
        command=[*fake_vllm_command, "--mode", "die-after=2"],
        startup_timeout_s=60,
    )
    got = []
    with pytest.raises(RunFailed) as info, server:
        pgid = server.process.pid
        generator = OpenAIChatGenerator(
            server.base_url, server.model_name, concurrency=1, on_error=server.raise_if_dead
        )
        for request, _ in generator.generate(_requests(5)):
            got.append(request.sample_index)
    assert got == [0, 1]
    assert "died during evaluation" in str(info.value) and "engine core died" in str(info.value)
    assert not group_alive(pgid)


def test_ctrl_c_stops_the_server(tmp_path, fake_vllm_command):
    server = VllmServer("/ckpt", log_path=tmp_path / "vllm.log", command=fake_vllm_command, startup_timeout_s=60)
    with pytest.raises(KeyboardInterrupt), server:
        pgid = server.process.pid
        raise KeyboardInterrupt
    assert not group_alive(pgid)


def test_missing_vllm_executable_is_invalid_input(tmp_path):
    server = VllmServer("/ckpt", log_path=tmp_path / "vllm.log", command=["no-such-vllm-binary", "serve"])
    with pytest.raises(InvalidInput, match="backend = 'transformers'"):
        server.start()


def test_an_interrupted_generation_returns_at_once_without_waiting_for_requests_in_flight(tmp_path, fake_vllm_command):
    import threading

    server = VllmServer("/ckpt", log_path=tmp_path / "vllm.log", command=[*fake_vllm_command, "--mode", "hang-after=2"],
                        startup_timeout_s=60)  # fmt: skip
    with server:
        generator = OpenAIChatGenerator(server.base_url, server.model_name, concurrency=4)
        stream = generator.generate(_requests(8))
        next(stream)  # one answered; three more in flight, two of them never answered
        assert _until(lambda: _count(server, "holding seed") >= 2)
        closed = threading.Thread(target=stream.close)  # what Ctrl-C / SIGTERM does to the loop consuming it
        closed.start()
        closed.join(timeout=60)  # a deadlock check: without the fix this waits for requests that never end
        assert not closed.is_alive()
        # ... and it let go of them: the server sees every held request's connection closed (vLLM
        # then aborts those requests, and its graceful shutdown no longer waits for them).
        assert _until(lambda: _count(server, "holding seed") == _count(server, "client closed, seed")), (
            server.log_path.read_text()
        )


def test_a_process_whose_generation_was_interrupted_exits_without_waiting_for_requests_in_flight(
    tmp_path, fake_vllm_command
):
    # Seen on the H200 with vLLM 0.26.0: `harness eval` stopped by SIGTERM had printed "terminated"
    # and stopped its server, yet its process did not exit for minutes: exiting Python joins the
    # worker threads, which were still reading replies to requests the server kept open.
    server = VllmServer("/ckpt", log_path=tmp_path / "vllm.log", command=[*fake_vllm_command, "--mode", "hang-after=1"],
                        startup_timeout_s=60)  # fmt: skip
    script = """
import pathlib, time
from harness.eval.generation import OpenAIChatGenerator, Request
requests = [Request("p", i, ({"role": "user", "content": "hi"},), 1000 + i, 8, 0.65, 0.95) for i in range(6)]
stream = OpenAIChatGenerator(BASE_URL, "harness-eval", concurrency=4).generate(requests)
next(stream)  # one answered, the rest held by the server
end = time.monotonic() + 30
while pathlib.Path(LOG).read_text().count("holding seed") < 2 and time.monotonic() < end:
    time.sleep(0.05)  # until the server holds two requests: the case to test
stream.close()  # what Ctrl-C / SIGTERM does to the loop consuming it
print("closed", flush=True)
"""
    with server:
        code = script.replace("BASE_URL", repr(server.base_url)).replace("LOG", repr(str(server.log_path)))
        # A deadlock check: without the fix the child never exits (its threads wait for the held replies).
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "closed"
        assert _count(server, "holding seed") >= 2


def test_an_interrupted_generation_over_several_replicas_lets_go_of_every_replicas_requests(
    tmp_path, fake_vllm_command
):
    servers = [
        VllmServer(
            "/ckpt",
            log_path=tmp_path / f"vllm.{i}.log",
            command=[*fake_vllm_command, "--mode", "hang-after=1"],
            startup_timeout_s=60,
        )  # fmt: skip
        for i in range(2)
    ]
    with servers[0], servers[1]:
        pool = ReplicaPool([OpenAIChatGenerator(s.base_url, s.model_name, concurrency=3) for s in servers])
        stream = pool.generate(_requests(12))
        next(stream)  # one answered; the replicas' other requests are held
        assert _until(lambda: all(_count(s, "holding seed") >= 2 for s in servers))
        stream.close()
        # Each replica's thread was waiting on held requests: their connections must be closed too.
        for server in servers:
            assert _until(lambda s=server: _count(s, "holding seed") == _count(s, "client closed, seed")), (
                server.log_path.read_text()
            )


def _count(server: VllmServer, marker: str) -> int:
    return server.log_path.read_text().count(marker)


def _until(condition, deadline_s: float = 30.0) -> bool:
    """Poll `condition` until it holds (True) or deadline_s passes (False)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
