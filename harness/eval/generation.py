"""What a generation backend is: requests in, (request, text) pairs out as each one finishes.

Every sample has its own seed derived from (eval seed, benchmark, problem id, sample index):
with k samples per problem, one fixed seed would make all k samples identical on a server
that honours per-request seeds. `OpenAIChatGenerator` talks to any OpenAI-compatible server
(the vLLM server the harness starts); `harness.eval.hf_backend` generates in-process.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from harness.errors import RunFailed
from harness.signals import signals_held


@dataclass(frozen=True)
class Request:
    problem_id: str
    sample_index: int
    messages: tuple[dict, ...]  # chat turns, e.g. ({"role": "user", "content": ...},)
    seed: int
    max_tokens: int
    temperature: float
    top_p: float
    benchmark: str = ""  # whose cache the completion goes to (several benchmarks share one request stream)


@dataclass(frozen=True)
class Completion:
    text: str
    output_tokens: int | None = None  # tokens generated (None when the backend does not say)
    finish_reason: str | None = None  # "stop" (end of turn), "length" (hit max_tokens), ...


class Generator(Protocol):
    name: str

    def generate(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Completion]]:
        """Yield (request, completion) as each finishes, in any order."""
        ...


def sample_seed(eval_seed: int, benchmark: str, problem_id: str, sample_index: int) -> int:
    """A 31-bit seed unique to one sample, stable across runs and arms (so arms are paired)."""
    blob = f"{eval_seed}|{benchmark}|{problem_id}|{sample_index}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


class OpenAIChatGenerator:
    """Chat completions over HTTP with `concurrency` requests in flight; no client library needed."""

    name = "openai_api"
    engine_version: str | None = None  # the server's version, set by whoever started it

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        concurrency: int = 256,
        timeout_s: float = 3600.0,
        retries: int = 3,
        on_error: Callable[[Exception], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.on_error = on_error  # e.g. the server's liveness check, which raises with its log tail
        self._active: set[_Calls] = set()  # the generate() calls running now (abort() closes their requests)
        self._active_lock = threading.Lock()

    def _complete(self, request: Request, calls: _Calls) -> Completion:
        body = {
            "model": self.model,
            "messages": list(request.messages),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "n": 1,
        }
        reply = self._post("/v1/chat/completions", json.dumps(body).encode(), calls)
        choice = reply["choices"][0]
        message = choice["message"]
        # Servers with a reasoning parser split the thinking out; keep it so `</think>` handling is uniform.
        thinking = message.get("reasoning_content") or message.get("reasoning")
        content = message.get("content") or ""
        tokens = (reply.get("usage") or {}).get("completion_tokens")
        return Completion(
            f"{thinking}</think>{content}" if thinking else content,
            int(tokens) if tokens is not None else None,
            choice.get("finish_reason"),
        )

    def _post(self, path: str, data: bytes, calls: _Calls) -> dict:
        """POST with a few retries on dropped connections (a busy server); HTTP errors are not retried."""
        url = urllib.parse.urlsplit(self.base_url)
        connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        for attempt in range(self.retries + 1):
            conn = connection_class(url.hostname, url.port, timeout=self.timeout_s)
            try:
                calls.connect(conn)
                conn.request(
                    "POST", url.path.rstrip("/") + path, body=data, headers={"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                raw = response.read()
                if response.status >= 400:
                    detail = raw.decode(errors="replace")[:500]
                    raise RunFailed(f"{self.base_url} answered HTTP {response.status}: {detail}")
                return json.loads(raw)
            except (ConnectionError, http.client.HTTPException) as exc:
                if calls.aborted:
                    raise
                if self.on_error:
                    self.on_error(exc)  # a dead server raises here, with its log, instead of being retried
                if attempt == self.retries:
                    raise
                time.sleep(0.5 * 2**attempt)  # back off before retrying a dropped connection
            finally:
                calls.done(conn)
        raise AssertionError("unreachable")

    def generate(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Completion]]:
        pending = iter(requests)  # may be shared with other replicas' generators (ReplicaPool)
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        calls = _Calls()
        with self._active_lock:
            self._active.add(calls)
        in_flight = {pool.submit(self._complete, r, calls): r for r in _take(pending, self.concurrency)}
        try:
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    request = in_flight.pop(future)
                    try:
                        completion = future.result()
                    except (OSError, http.client.HTTPException, KeyError, json.JSONDecodeError) as exc:
                        if self.on_error:
                            self.on_error(exc)
                        raise RunFailed(f"generation request to {self.base_url} failed: {exc}") from None
                    yield request, completion
                    for nxt in _take(pending, 1):
                        in_flight[pool.submit(self._complete, nxt, calls)] = nxt
        finally:
            # Interrupted (Ctrl-C, SIGTERM, a failed request): return now, not when the requests still in
            # flight end (at 31k tokens, minutes). Their connections are closed: the server drops those
            # requests (vLLM aborts a request whose client went away, and its graceful shutdown waits
            # for open connections), and the worker threads end, so the process can exit.
            with signals_held():  # a second Ctrl-C must not leave connections open (harness/signals.py)
                calls.abort()
                pool.shutdown(wait=False, cancel_futures=True)
                with self._active_lock:
                    self._active.discard(calls)

    def abort(self) -> None:
        """Close the connections of every request in flight (from any thread): their calls end with an error."""
        with self._active_lock:
            active = list(self._active)
        for calls in active:
            calls.abort()


class _Calls:
    """The HTTP connections of one `generate` call's requests in flight, so an interruption can close them.

    A worker blocked reading a reply wakes when its socket is shut down from another thread;
    a worker that connects after the abort closes its own connection at once.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self.aborted = False

    def connect(self, conn: http.client.HTTPConnection) -> None:
        conn.connect()
        with self._lock:
            if self.aborted:
                raise ConnectionAbortedError("generation was stopped")
            self._open.add(conn)

    def done(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(conn)
        conn.close()

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            for conn in self._open:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except (AttributeError, OSError):  # not connected, or already closed
                    pass


def _take(items: Iterator[Request], n: int) -> Iterable[Request]:
    for _ in range(n):
        try:
            yield next(items)
        except StopIteration:
            return


class _Shared:
    """One iterator several threads take from (each replica pulls its next request when one finishes)."""

    def __init__(self, items: Iterable[Request]):
        self._items, self._lock = iter(items), threading.Lock()

    def __iter__(self):
        return self

    def __next__(self) -> Request:
        with self._lock:
            return next(self._items)


class ReplicaPool:
    """Several generators (one per vLLM server replica) working off one queue of requests.

    Each replica keeps its own requests in flight and takes the next one as one finishes, so
    faster replicas serve more; results come back as they finish, from whichever replica.
    """

    name = "openai_api"

    def __init__(self, generators: list):
        self.generators = generators
        self.engine_version = getattr(generators[0], "engine_version", None)

    def generate(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Completion]]:
        if len(self.generators) == 1:
            yield from self.generators[0].generate(requests)
            return
        shared, results, done = _Shared(requests), queue.Queue(), object()
        stop = threading.Event()

        def work(generator) -> None:
            try:
                for item in generator.generate(shared):
                    results.put(item)
                    if stop.is_set():
                        break
            except BaseException as exc:  # re-raised in the caller's thread
                results.put(exc)
            finally:
                results.put(done)

        threads = [threading.Thread(target=work, args=(g,), daemon=True) for g in self.generators]
        for thread in threads:
            thread.start()
        running = len(threads)
        try:
            while running:
                item = results.get()
                if item is done:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            with signals_held():
                stop.set()
                for generator in self.generators:  # their threads may be waiting on requests that never end
                    generator.abort()
