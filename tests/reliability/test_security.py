"""Untrusted files never run code: checkpoints load with weights_only, pickled payloads are refused,
and no subprocess goes through a shell. (HTML escaping: tests/report/test_html_report.py and
test_report_in_chromium.py; SQLite writers: tests/test_store.py; code sandbox: tests/eval/test_sandbox.py.)"""

from __future__ import annotations

import ast
import base64
import os
import pickle
import zlib
from pathlib import Path

import pytest
import torch
from relkit import write_suite

import harness
from harness.cli import main
from harness.errors import InvalidInput

PACKAGE = Path(harness.__file__).parent


class Payload:
    """Unpickling this creates a folder: proof that the pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _calls(name: str):
    """(file, ast.Call) for every call of `module.attr` in the package, e.g. torch.load."""
    module, attr = name.split(".")
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            func = getattr(node, "func", None)
            if isinstance(func, ast.Attribute) and func.attr == attr and getattr(func.value, "id", None) == module:
                yield path, node


def test_every_torch_load_in_the_package_passes_weights_only_true():
    loads = list(_calls("torch.load"))
    assert loads  # the checkpoint loader is found, so the check can fail
    for path, call in loads:
        flags = {k.arg: getattr(k.value, "value", None) for k in call.keywords}
        assert flags.get("weights_only") is True, f"{path}:{call.lineno}: torch.load without weights_only=True"


@pytest.mark.parametrize("name", ["pickle.load", "pickle.loads", "os.system", "os.popen"])
def test_the_package_never_calls_unsafe_functions(name):
    assert [f"{p}:{c.lineno}" for p, c in _calls(name)] == []


def test_no_subprocess_in_the_package_uses_a_shell():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            for keyword in getattr(node, "keywords", []) if isinstance(node, ast.Call) else []:
                if keyword.arg == "shell" and getattr(keyword.value, "value", False) is not False:
                    found.append(f"{path}:{node.lineno}")
    assert found == []


def test_a_checkpoint_holding_a_pickled_payload_is_refused_and_never_run(tmp_path, corpus, capsys):
    marker = tmp_path / "payload-ran"
    checkpoint = tmp_path / "runs" / "rel" / "cpt-bf16-s0" / "checkpoints" / "step-000003"
    checkpoint.mkdir(parents=True)
    torch.save({"step": 3, "data": Payload(marker)}, checkpoint / "state.pt")
    suite = write_suite(tmp_path, corpus)
    code = main(["train", str(suite), "--run", "cpt-bf16-s0", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert f"{checkpoint / 'state.pt'}: unreadable checkpoint" in err and "delete this folder" in err
    assert "Traceback" not in err


def test_livecodebench_private_tests_with_a_pickled_payload_are_refused(tmp_path):
    from harness.eval.benchmarks import _lcb_tests

    marker = tmp_path / "payload-ran"
    raw = base64.b64encode(zlib.compress(pickle.dumps(Payload(marker)))).decode()
    with pytest.raises(InvalidInput, match="only plain data is loaded"):
        _lcb_tests(raw)
    assert not marker.exists()
    plain = base64.b64encode(zlib.compress(pickle.dumps('[{"input": "1", "output": "2"}]'))).decode()
    assert _lcb_tests(plain) == [{"input": "1", "output": "2"}]
