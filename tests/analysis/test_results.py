"""parity.json is read into typed models: older schema versions read, newer or foreign files refused clearly."""

import json

import pytest

from harness.analysis.compare import compare_suite
from harness.analysis.results import SCHEMA_VERSION, read_parity
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.cli import main
from harness.errors import InvalidInput


@pytest.fixture
def parity_file(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path / "runs", synthetic_suite(seeds=[0, 1]), failed={"cpt-fp8-s1": "OOM"})
    compare_suite(suite_dir, {"min_speedup": 1.0}, n_resamples=100)
    return suite_dir / "parity.json"


def test_a_written_parity_json_reads_back_to_the_same_results(parity_file):
    parity = read_parity(parity_file)
    assert json.loads(parity_file.read_text()) == json.loads(json.dumps(parity.model_dump(mode="json")))
    assert parity.comparisons[0].memory.headline_ratio == parity.comparisons[0].memory.alloc_ratio


def test_an_older_file_without_the_newer_fields_still_reads(parity_file):
    data = json.loads(parity_file.read_text())
    for row in data["comparisons"]:
        if row["loss"]:
            for key in ("window_end_steps", "window_rel_error", "window_signed_rel_error", "noise_floor"):
                del row["loss"][key]
        if row["status"] == "failed":
            row["verdicts"] = {}  # what schema 1 wrote for a failed comparison
    parity_file.write_text(json.dumps(data))
    parity = read_parity(parity_file)
    assert parity.comparisons[0].loss.window_end_steps == [] and parity.comparisons[1].verdicts is None


def test_a_newer_schema_version_is_refused_naming_the_file(parity_file, capsys):
    data = json.loads(parity_file.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    parity_file.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match=r"parity.json: schema_version \d+ was written by a newer harness"):
        read_parity(parity_file)
    assert main(["gate", str(parity_file)]) == 2
    assert "upgrade the harness" in capsys.readouterr().err


def test_a_mistyped_field_is_refused_naming_it(parity_file):
    data = json.loads(parity_file.read_text())
    data["comparisons"][0]["seed"] = "zero"
    parity_file.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match=r"field comparisons\.0\.seed: .*re-run `harness compare`"):
        read_parity(parity_file)
