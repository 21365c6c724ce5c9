"""Generated programs run contained: they see a read-only minimal file system and their own /tmp,
run as an unprivileged user, start no process, stay within their limits, and leave nothing behind.

Each test fails without the protection it names (harness/eval/sandbox.py; docs/EVAL.md lists them).
CI and this machine have bubblewrap, libseccomp and a writable pids cgroup (root), so the strong
containment is what runs here; test_this_machine_has_the_full_containment says so first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from evalkit import processes_running as _processes_running

import harness
from harness.errors import InvalidInput
from harness.eval import containment as sandbox_probe
from harness.eval.sandbox import Limits, containment, run_program

REPO = Path(harness.__file__).resolve().parent.parent


def _run_json(code: str, stdin: str = "", **limits) -> dict:
    result = run_program(code, stdin, Limits(**limits) if limits else Limits())
    assert result.status == "ok", (result.status, result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_this_machine_has_the_full_containment():
    expected = "bwrap+seccomp+pids-cgroup" if os.geteuid() == 0 else "bwrap+seccomp+rlimit-nproc"
    assert containment().level == expected


def test_program_cannot_write_outside_its_tmp(tmp_path):
    targets = [str(tmp_path / "escaped"), str(REPO / "escaped"), str(Path(sys.prefix) / "escaped"), "/escaped"]
    code = (
        "import json, sys\nwritten = []\nfor path in json.load(sys.stdin):\n"
        "    try:\n        open(path, 'w').write('x'); written.append(path)\n    except OSError:\n        pass\n"
        "open('/tmp/mine', 'w').write('x')\nprint(json.dumps({'written': written}))\n"
    )
    written = _run_json(code, json.dumps(targets))["written"]
    # Inside, /tmp is the program's own tmpfs: a path under it (pytest's tmp_path, a clone in /tmp)
    # is a folder of that tmpfs, never the host's; everything else is read-only.
    assert all(w.startswith("/tmp/") for w in written)
    assert not any(Path(t).exists() for t in targets)  # nothing reached the host


def test_program_cannot_read_files_outside_what_python_needs(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("hf_secret")
    secret.chmod(0o600)
    targets = [str(secret), str(REPO / "pyproject.toml"), str(Path.home() / ".bashrc"), "/etc/passwd", "/etc/hostname"]
    code = (
        "import json, os, sys\nread = []\nfor path in json.load(sys.stdin):\n"
        "    try:\n        open(path).read(); read.append(path)\n    except OSError:\n        pass\n"
        "print(json.dumps({'read': read, 'etc': sorted(os.listdir('/etc'))}))\n"
    )
    seen = _run_json(code, json.dumps(targets))
    assert seen["read"] == [] and seen["etc"] == ["ld.so.cache"]


def test_program_sees_none_of_the_repository_beside_the_interpreter():
    code = f"import json, os\nprint(json.dumps(sorted(os.listdir({str(REPO)!r})) if os.path.isdir({str(REPO)!r}) else []))\n"
    listed = _run_json(code)
    venv_parts = {p.relative_to(REPO).parts[0] for p in map(Path, (sys.prefix,)) if p.is_relative_to(REPO)}
    assert set(listed) <= venv_parts  # at most the folder holding the venv's interpreter, read-only
    assert "harness" not in listed and "pyproject.toml" not in listed


def test_program_runs_as_an_unprivileged_user_without_capabilities():
    code = (
        "import json, os\nstatus = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "print(json.dumps([os.getuid(), os.getgid(), status['CapEff'].strip(), status['NoNewPrivs'].strip()]))\n"
    )
    assert _run_json(code) == [65534, 65534, "0000000000000000", "1"]


SPAWN_ROUTES = {
    "os.fork": "pid = os.fork()\nif pid == 0:\n    open('/tmp/ran-os.fork', 'w'); os._exit(0)\nos.waitpid(pid, 0)",
    "posix.fork": "import posix\npid = posix.fork()\nif pid == 0:\n    open('/tmp/ran-posix.fork', 'w'); os._exit(0)\nos.waitpid(pid, 0)",
    "os.posix_spawn": "os.waitpid(os.posix_spawn(sys.executable, [sys.executable, '-c', MARK % 'os.posix_spawn'], {}), 0)",
    "subprocess": "import subprocess\nsubprocess.run([sys.executable, '-c', MARK % 'subprocess'])",
    "os.system": "os.system('touch /tmp/ran-os.system')",
    "multiprocessing": "import multiprocessing as mp\np = mp.get_context('fork').Process(target=open, args=('/tmp/ran-multiprocessing', 'w'))\np.start(); p.join()",
    "ctypes clone": "import ctypes, signal\nlibc = ctypes.CDLL(None, use_errno=True)\npid = libc.syscall(56, signal.SIGCHLD, 0, 0, 0, 0)\nif pid == 0:\n    open('/tmp/ran-ctypes clone', 'w'); os._exit(0)\nif pid > 0:\n    os.waitpid(pid, 0)",
}  # fmt: skip


def test_no_route_starts_a_second_process():
    body = "\n".join(f"try:\n{_indent(code)}\nexcept Exception:\n    pass" for code in SPAWN_ROUTES.values())
    code = (
        "import json, os, sys\nMARK = \"open('/tmp/ran-%s', 'w')\"\n" + body +
        "\nprint(json.dumps(sorted(n[4:] for n in os.listdir('/tmp') if n.startswith('ran-'))))\n"
    )  # fmt: skip
    assert _run_json(code) == []


def _indent(code: str) -> str:
    return "\n".join("    " + line for line in code.splitlines())


def test_fork_bomb_is_stopped_leaves_nothing_running_and_the_harness_unharmed():
    code = (
        "import json, os, posix, time\nstarted = 0\n"
        "for _ in range(20000):\n    try:\n        if posix.fork() == 0:\n            time.sleep(300)\n        started += 1\n"
        "    except OSError:\n        pass\nprint(json.dumps(started))\n"
    )
    result = run_program(code, limits=Limits(timeout_s=5.0))
    assert result.status == "ok" and json.loads(result.stdout) == 0
    assert not _processes_running("harness-sandbox-") and not _processes_running("time.sleep(300)")
    assert subprocess.run(["true"]).returncode == 0  # the harness can still start processes


def test_thread_bomb_is_capped_by_the_task_limit():
    code = (
        "import json, threading, time\nn = 0\ntry:\n    while n < 5000:\n"
        "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start(); n += 1\n"
        "except RuntimeError:\n    pass\nprint(json.dumps(n))\n"
    )
    started = _run_json(code, tasks=16, timeout_s=20.0)
    assert 0 < started < 16


def test_memory_hog_fails_inside_the_child():
    result = run_program("x = bytearray(50 * 1024**3)\nprint('allocated')\n")
    assert result.status == "error" and "MemoryError" in result.stderr and "allocated" not in result.stdout
    grow = run_program(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n", limits=Limits(timeout_s=20)
    )
    assert grow.status == "error" and "MemoryError" in grow.stderr


def test_tmp_is_private_and_size_capped():
    code = (
        "import json\nwritten = 0\ntry:\n    with open('/tmp/big', 'wb') as f:\n"
        "        for _ in range(200):\n            f.write(b'x' * (1 << 20)); f.flush(); written += 1\n"
        "except OSError as exc:\n    print(json.dumps([written, exc.errno]))\n"
    )
    written, errno_ = _run_json(code, file_bytes=1 << 30, tmp_bytes=8 << 20)
    assert written <= 8 and errno_ == 28  # ENOSPC at the tmpfs' size, not the disk's


def test_endless_output_is_capped():
    result = run_program("while True:\n    print('x' * 1000)\n", limits=Limits(timeout_s=5.0, file_bytes=1 << 20))
    assert result.status == "error" and len(result.stdout) <= 1 << 20
    flood = run_program(
        "import os\nfd = int(os.environ['HARNESS_RECORD_FD'])\nwhile True:\n    os.write(fd, b'r' * 65536 + b'\\n')\n",
        limits=Limits(timeout_s=10.0, record_bytes=4 << 20),
    )
    assert flood.status == "flood" and sum(map(len, flood.records)) <= 4 << 20
    assert not _processes_running("harness-sandbox-")


def test_open_files_are_limited():
    code = "import json\nfiles = []\ntry:\n    while True:\n        files.append(open('/dev/null'))\nexcept OSError:\n    print(json.dumps(len(files)))\n"
    assert _run_json(code, open_files=64) < 64


def test_no_network_inside():
    code = (
        "import json, socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    net = True\n"
        "except OSError:\n    net = False\nprint(json.dumps([net, socket.if_nameindex()]))\n"
    )
    net, interfaces = _run_json(code)
    assert net is False and [name for _, name in interfaces] == ["lo"]


def test_infinite_loop_is_killed_at_the_wall_clock_limit():
    result = run_program("while True:\n    pass\n", limits=Limits(timeout_s=1.0, cpu_s=30))
    assert result.status == "timeout"
    assert not _processes_running("harness-sandbox-")


def test_cpu_time_is_limited():
    result = run_program("while True:\n    pass\n", limits=Limits(timeout_s=30.0, cpu_s=1))
    assert result.status == "error" and result.returncode != 0


def test_a_weak_sandbox_is_refused_unless_allowed(monkeypatch):
    monkeypatch.setenv(sandbox_probe.BWRAP_ENV, "")  # as on a machine without bubblewrap
    with pytest.raises(InvalidInput, match="bubblewrap.*--allow-weak-sandbox"):
        containment()
    with pytest.raises(InvalidInput, match="allow-weak-sandbox"):
        run_program("print(1)\n")
    weak = containment(allow_weak=True)
    assert weak.weak and weak.level in ("weak:unshare", "weak:rlimits")
    result = run_program("print(1)\n", allow_weak=True)
    assert result.status == "ok" and result.stdout.strip() == "1"
