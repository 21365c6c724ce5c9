"""The report opened in headless Chromium (Debian package `chromium`; .ci/run installs it).

Network check: Chromium's net log records every URL request; requests the page makes carry
the page's network isolation key (file://), while Chromium's own background requests
(update checks and the like) carry none. A control page with an external image proves the
check sees page requests. --host-resolver-rules keeps anything from leaving the machine.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.analysis.compare import compare_suite
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.report.html import write_report

PLANTED = "<script>alert(1)</script>"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    raise AssertionError("chromium not found: apt-get install -y chromium (see docs/REPORT.md)")


def _open(page: Path, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = workdir / "profile"
    profile.mkdir(parents=True, exist_ok=True)
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", *extra, page.resolve().as_uri()]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def page_requests(net_log: Path) -> list[str]:
    """URLs of network requests made on behalf of a file:// page, from a Chromium net log."""
    log = json.loads(net_log.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls: dict[int, str] = {}
    page_sources: set[int] = set()
    for event in log["events"]:
        params, source = event.get("params") or {}, event["source"]["id"]
        if "url" in params:
            urls.setdefault(source, params["url"])
        if names[event["type"]] == "URL_REQUEST_START_JOB" and "file://" in params.get("network_isolation_key", ""):
            page_sources.add(source)
    return sorted(urls.get(s, "?") for s in page_sources)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("chromium")
    suite = synthetic_suite(arms={"bf16": "bf16", "fp8": "emulated:block"})
    suite_dir = write_synthetic_suite(root / "runs", suite, output_text=PLANTED)
    compare_suite(suite_dir, n_resamples=300)
    page = write_report(suite_dir, root / "report")
    net_log = root / "net.json"
    dom = _open(page, root, f"--log-net-log={net_log}", "--dump-dom").stdout
    return {"root": root, "page": page, "dom": dom, "net_log": net_log}


def test_report_renders_with_its_headline_table(rendered):
    dom = rendered["dom"]
    assert "FP8 parity report: synth" in dom
    assert "Time reduction" in dom and "Memory reduction" in dom and "Throughput increase" in dom
    assert "EMULATED" in dom


def test_svg_figures_are_in_the_rendered_dom(rendered):
    assert rendered["dom"].count("<svg") >= 4


def test_planted_script_in_a_model_output_is_text_not_an_element(rendered):
    dom = rendered["dom"]
    assert "<script" not in dom  # the page has no script element at all
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_opening_the_report_makes_no_network_request(rendered):
    assert page_requests(rendered["net_log"]) == []


def test_the_network_check_sees_a_page_request(tmp_path):
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://example.invalid/x.png"></body></html>')
    _open(control, tmp_path, f"--log-net-log={tmp_path / 'net.json'}", "--dump-dom")
    assert page_requests(tmp_path / "net.json") == ["http://example.invalid/x.png"]


def test_screenshot_is_written(rendered):
    shot = rendered["root"] / "report.png"
    _open(rendered["page"], rendered["root"], f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
