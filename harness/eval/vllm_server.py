"""Start, health-check and stop a vLLM OpenAI-compatible server for one checkpoint.

    with VllmServer(checkpoint, log_path=..., tensor_parallel_size=2, seed=0) as server:
        generator = OpenAIChatGenerator(server.base_url, server.model_name, on_error=server.raise_if_dead)

The server runs in its own process group on 127.0.0.1 and a free port; its output goes to a
log file. It is stopped (SIGTERM to the group, then SIGKILL) on success, error or Ctrl-C, so no
worker outlives the evaluation. A server that exits or never becomes healthy raises RunFailed
with the tail of its log. `command` replaces `vllm serve` (tests pass a fake server script).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.errors import InvalidInput, RunFailed
from harness.eval.procs import group_alive
from harness.signals import signals_held

DEFAULT_COMMAND = ("vllm", "serve")
COMMAND_ENV = "HARNESS_VLLM_COMMAND"  # e.g. "/opt/vllm-env/bin/vllm serve": a vLLM in another venv
GENERATED_TOKENS = "vllm:generation_tokens_total"  # the Prometheus counter of tokens generated (vLLM /metrics)


def server_command() -> list[str]:
    """The server command: $HARNESS_VLLM_COMMAND (split like a shell would) or `vllm serve`."""
    custom = os.environ.get(COMMAND_ENV)
    return shlex.split(custom) if custom else list(DEFAULT_COMMAND)


def free_port() -> int:
    """A port the OS says is free on loopback now (another process may still take it: retried by the caller)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class VllmServer:
    def __init__(
        self,
        checkpoint: str | Path,
        *,
        log_path: str | Path,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        command: Sequence[str] = DEFAULT_COMMAND,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 900.0,
        stop_timeout_s: float = 30.0,
        model_name: str = "harness-eval",
        gpus: Sequence[str] | None = None,
    ):
        self.checkpoint = str(checkpoint)
        self.log_path = Path(log_path)
        self.tensor_parallel_size = tensor_parallel_size
        self.seed = seed
        self.command = list(command)
        self.extra_args = list(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.model_name = model_name
        self.gpus = list(gpus) if gpus is not None else None  # CUDA_VISIBLE_DEVICES of this replica
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            *self.command,
            self.checkpoint,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--tensor-parallel-size",
            str(self.tensor_parallel_size),
            "--seed",
            str(self.seed),
            "--served-model-name",
            self.model_name,
            *self.extra_args,
        ]

    def start(self) -> VllmServer:
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(self.gpus)} if self.gpus is not None else None
                self.process = subprocess.Popen(
                    self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, env=env,
                )  # fmt: skip
            except FileNotFoundError:
                raise InvalidInput(
                    f"eval.backend = 'vllm': {self.command[0]!r} not found; install vLLM on this machine "
                    "or set eval.backend = 'transformers' (or pass --backend transformers)"
                ) from None
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RunFailed(
                    f"vLLM server exited with code {self.process.returncode} before becoming healthy "
                    f"(log: {self.log_path}):\n{log_tail(self.log_path)}"
                )
            if self.healthy():
                return
            time.sleep(0.5)  # polling a child we do not control; not test synchronisation
        raise RunFailed(
            f"vLLM server not healthy after {self.startup_timeout_s:.0f} s (log: {self.log_path}):\n"
            f"{log_tail(self.log_path)}"
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def version(self) -> str | None:
        """The running server's vLLM version (GET /version), None if it does not say.

        Asked of the server, not of this Python: vLLM often lives in another environment
        (HARNESS_VLLM_COMMAND), where importlib.metadata here cannot see it.
        """
        try:
            with urllib.request.urlopen(f"{self.base_url}/version", timeout=2) as response:
                return json.load(response).get("version")
        except (urllib.error.URLError, OSError, ValueError, AttributeError):
            return None

    def generated_tokens(self) -> float | None:
        """Tokens this server has generated so far: vLLM's Prometheus counter `vllm:generation_tokens_total`
        at /metrics (summed over its label sets), None when the server does not say."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=2) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError, ValueError):
            return None
        values = [line.rsplit(" ", 1)[-1] for line in text.splitlines()
                  if line.startswith(GENERATED_TOKENS + "{") or line.startswith(GENERATED_TOKENS + " ")]  # fmt: skip
        try:
            return sum(float(v) for v in values) if values else None
        except ValueError:
            return None

    def raise_if_dead(self, cause: Exception | None = None) -> None:
        """Raise RunFailed with the log tail when the server has exited (used after a failed request)."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=1)  # a dying server may drop the connection a moment before it exits
        except subprocess.TimeoutExpired:
            return
        raise RunFailed(
            f"vLLM server died during evaluation (exit code {self.process.returncode}; log: {self.log_path}):\n"
            f"{log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """SIGTERM the whole group, wait, then SIGKILL what is left; safe to call twice.

        Not interruptible: a second Ctrl-C or SIGTERM here (a terminal's beside the one `harness run`
        relays) would leave the server running in its own session, holding its GPUs.
        """
        with signals_held():
            self._stop()

    def _stop(self) -> None:
        if self.process is None:
            return
        pgid = self.process.pid
        for sig, wait_s in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                try:
                    self.process.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    pass
                if self.process.poll() is not None and not group_alive(pgid):
                    break
            if self.process.poll() is not None and not group_alive(pgid):
                break
        self.process.wait()

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def visible_gpus() -> list[str] | None:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES, else every device NVML sees); None if unknown."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in (part.strip() for part in listed.split(",")) if g]
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML library or no driver: no GPU this process can see
        return None


def replica_gpus(eval_config, gpus: list[str] | None) -> list[list[str] | None]:
    """GPU ids per server replica: data_parallel_size replicas of tensor_parallel_size GPUs each.

    Default replicas: every visible GPU in use (visible // tensor_parallel_size, at least 1). Where the
    GPUs are unknown (no NVML), replicas get no CUDA_VISIBLE_DEVICES of their own.
    """
    tp = eval_config.tensor_parallel_size
    count = eval_config.data_parallel_size or max(1, len(gpus or ()) // tp)
    if gpus is None or not gpus:
        return [None] * count
    if count * tp > len(gpus):
        raise InvalidInput(
            f"eval.data_parallel_size x tensor_parallel_size = {count} x {tp} GPUs, but {len(gpus)} are visible "
            f"(CUDA_VISIBLE_DEVICES={','.join(gpus)}); lower eval.data_parallel_size or tensor_parallel_size"
        )
    return [gpus[i * tp : (i + 1) * tp] for i in range(count)]


@contextmanager
def replicas(checkpoint, eval_config, out_dir: Path) -> Iterator[list[VllmServer]]:
    """Start the evaluation's vLLM servers at once (one per replica, each healthy before we yield), stop all after."""
    groups = replica_gpus(eval_config, visible_gpus())
    servers = [
        VllmServer(
            checkpoint,
            log_path=out_dir / ("vllm.log" if i == 0 else f"vllm.{i}.log"),
            tensor_parallel_size=eval_config.tensor_parallel_size,
            seed=eval_config.seed,
            command=server_command(),
            extra_args=eval_config.server_args,
            gpus=gpus,
        )  # fmt: skip
        for i, gpus in enumerate(groups)
    ]
    errors: list[BaseException] = []

    def start(server: VllmServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # re-raised below, after every replica has settled
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        yield servers
    finally:
        for server in servers:
            server.stop()
