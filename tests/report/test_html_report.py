from html.parser import HTMLParser

import pytest

from harness.analysis.compare import compare_suite
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.cli import main
from harness.report.export import latex_escape, markdown_escape, to_latex, to_markdown
from harness.report.html import write_report
from harness.report.tables import eval_table, headline_table

PLANTED = "<script>alert(1)</script>"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    suite = synthetic_suite(seeds=[0, 1], arms={"bf16": "bf16", "fp8": "te:blockwise", "emu": "emulated:block"})
    suite_dir = write_synthetic_suite(root / "runs", suite, failed={"cpt-fp8-s1": "loss was NaN at step 30"},
                                      output_text=f"{PLANTED} the answer", with_nvml=True)  # fmt: skip
    compare_suite(suite_dir, {"min_speedup": 1.05}, n_resamples=300)
    return write_report(suite_dir, root / "reports" / "synth")


def test_report_writes_one_page_with_paper_figures_and_tables(report):
    out = report.parent
    assert report.name == "index.html"
    assert (out / "figures" / "step-times.pdf").read_bytes().startswith(b"%PDF")
    assert (out / "figures" / "loss-cpt-fp8-s0.svg").read_text().lstrip().startswith("<?xml")
    assert "\\toprule" in (out / "tables" / "headline.tex").read_text()
    assert (out / "tables" / "eval.md").read_text().startswith("| Comparison |")


def test_page_is_self_contained_no_script_and_no_external_reference(report):
    html = report.read_text()
    tags = _tags(html)
    names = {t for t, _ in tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    for _, attrs in tags:
        for key in ("src", "href", "xlink:href", "action", "srcset"):
            assert attrs.get(key) in (None,) or attrs[key].startswith("#"), (key, attrs[key])
    assert "url(http" not in html and "@import" not in html
    assert "default-src 'none'" in html


def test_model_output_is_escaped_text(report):
    html = report.read_text()
    assert PLANTED not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_emulated_and_failed_arms_are_visible(report):
    html = report.read_text()
    assert html.count('class="emulated"') >= 3  # banner, headline, comparisons
    assert "loss was NaN at step 30" in html
    assert 'class="chip failed"' in html


def test_svg_figures_are_inline_with_unique_ids(report):
    html = report.read_text()
    assert html.count("<svg") >= 4  # loss curves, step times, NVML, eval deltas
    ids = [attrs["id"] for _, attrs in _tags(html) if "id" in attrs]
    assert len(ids) == len(set(ids))


def test_missing_nvml_says_why(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path / "runs", with_nvml=False)
    html = write_report(suite_dir, tmp_path / "out").read_text()
    assert "nvml.csv is absent or empty" in html


def test_report_cli_defaults_to_reports_suite(tmp_path, monkeypatch, capsys):
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(suite_dir)]) == 0
    assert (tmp_path / "reports" / "synth" / "index.html").is_file()
    assert "wrote" in capsys.readouterr().out


def test_tables_escape_latex_and_markdown():
    assert latex_escape("a_b & 50%") == r"a\_b \& 50\%"
    assert latex_escape("<x> |y|") == r"\textless{}x\textgreater{} \textbar{}y\textbar{}"
    assert "\\|" in to_markdown(["x"], [["a|b"]])
    # A name from a suite prints as itself: no emphasis, link, code span or HTML.
    assert markdown_escape("fp8_x *a* [b](c) `d` <i>&") == r"fp8\_x \*a\* \[b\](c) \`d\` &lt;i&gt;&amp;"
    tex = to_latex(["Stage", "Arm"], [["cpt", "fp8_x"]], "cap", "tab:x")
    assert "fp8\\_x" in tex and "\\bottomrule" in tex


def test_loss_bias_cell_carries_sign_interval_and_seed_count():
    from harness.analysis.results import SeedMean
    from harness.report.tables import loss_bias

    assert loss_bias(SeedMean(value=0.0091, ci_low=None, ci_high=None, n=1)) == "+0.91% (1 seed, no interval)"
    assert loss_bias(SeedMean(value=0.0021, ci_low=-0.004, ci_high=0.0082, n=3)) == "+0.21% [-0.40, +0.82] (3 seeds)"
    assert loss_bias(None) == "-"


def test_headline_rows_are_in_infir2_terms(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    parity = compare_suite(suite_dir, n_resamples=200, record=False)
    table = headline_table(parity)
    headers, rows = table.headers, [r.cells for r in table.rows]
    assert headers[2:5] == ["Time reduction", "Memory reduction", "Throughput increase"]
    assert rows[0][3] == f"{(1 - 51.7 / 57.8) * 100:.1f}%"
    assert headers[6] == "Loss (FP8 - BF16) / BF16" and rows[0][6].endswith("% (1 seed, no interval)")
    assert eval_table(parity).rows[0].cells[1] == "aime24"


def test_loss_bias_figure_shows_every_seed_and_the_mean_over_seeds(tmp_path):
    from harness.report.data import load_report_data
    from harness.report.figures import loss_bias_figure

    suite = synthetic_suite(seeds=[0, 1, 2], arms={"bf16": "bf16", "bf16-control": "bf16", "fp8": "te:blockwise"})
    suite_dir = write_synthetic_suite(tmp_path / "runs", suite, loss_offset={"fp8": 0.01})
    compare_suite(suite_dir, n_resamples=100)
    fig = loss_bias_figure(load_report_data(suite_dir))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cpt/fp8", "cpt/bf16-control (control)"]
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [len(line.get_xdata()) for line in points] == [3, 3]  # one circle per seed, per arm
    assert all(0.5 < x < 1.5 for x in points[0].get_xdata())  # the FP8 arm's +1%, in percent
    report = write_report(suite_dir, tmp_path / "reports" / "synth")
    assert "Loss bias over seeds" in report.read_text()
    assert (report.parent / "figures" / "loss-bias.pdf").read_bytes().startswith(b"%PDF")


def test_profiled_runs_get_a_kernel_time_figure_against_their_step_time(tmp_path):
    import json
    import statistics

    from harness.errors import InvalidInput
    from harness.report.data import load_report_data
    from harness.report.figures import kernel_figure
    from harness.store import RunDir

    suite_dir = write_synthetic_suite(tmp_path / "runs", with_nvml=True)
    compare_suite(suite_dir, n_resamples=100)
    assert 'id="kernels"' not in write_report(suite_dir, tmp_path / "plain").read_text()  # no profile, no section

    profiles = {"cpt-bf16-s0": {"gemm": 40.0, "attention": 5.0, "other": 3.0},
                "cpt-fp8-s0": {"gemm": 25.0, "fp8 cast/transpose": 6.0, "attention": 5.0, "other": 2.0}}  # fmt: skip
    for run_id, per_kind in profiles.items():
        RunDir(suite_dir / run_id).profile.write_text(json.dumps(
            {"steps": [2, 3], "device": "NVIDIA H200", "per_step_ms": per_kind, "total_ms": sum(per_kind.values())}))  # fmt: skip
    data = load_report_data(suite_dir)
    ax = kernel_figure(data).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(profiles)
    # One stacked bar per run whose segments are its kinds' ms, ending at its kernel total ...
    widths = {}
    for bar in ax.patches:
        widths.setdefault(round(bar.get_y() + bar.get_height() / 2), []).append(bar.get_width())
    assert [sorted(w) for w in widths.values()] == [sorted(p.values()) for p in profiles.values()]
    # ... and a tick at its median steady step time, in ms.
    ticks = [line for line in ax.get_lines() if line.get_marker() == "|"]
    expected = [1e3 * statistics.median(data.runs[r].steady_step_time_s) for r in profiles]
    assert [line.get_xdata()[0] for line in ticks] == pytest.approx(expected)

    report = write_report(suite_dir, tmp_path / "profiled")
    assert "Where the step time goes" in report.read_text()
    assert (report.parent / "figures" / "kernels.pdf").read_bytes().startswith(b"%PDF")

    RunDir(suite_dir / "cpt-fp8-s0").profile.write_text('{"steps": [2, 3]}')
    with pytest.raises(InvalidInput, match=r"cpt-fp8-s0/profile.json: no per_step_ms table.*delete it"):
        load_report_data(suite_dir)


def test_the_report_opens_with_the_gate_outcome_and_lists_every_gate(report):
    html = report.read_text()
    outcome = html.index('id="outcome"')
    assert outcome < html.index('id="headline"') and "Gates: <b>FAILED</b>" in html[outcome : outcome + 200]
    section = html[html.index('id="gates"') : html.index('id="comparisons"')]
    for text in ("Passes when", "speedup", "&gt;= 1.050x", "PASS", "FAIL", "loss was NaN at step 30"):
        assert text in section, text


def test_an_emulated_arm_shows_no_speed_or_memory_numbers(report):
    html = report.read_text()
    headline = html[html.index('id="headline"') : html.index('id="gates"')]
    assert "emu (emulated:block)</td>" in headline and "not measured (emulated)" in headline
    md = (report.parent / "tables" / "headline.md").read_text()
    [emu] = [line for line in md.splitlines() if "emu (emulated:block)" in line]
    assert emu.count("not measured (emulated)") == 4 and "EMULATED" not in emu  # the recipe already says so
    assert "EMULATED" in (report.parent / "tables" / "eval.md").read_text()  # comparison ids do not


def test_a_verdict_that_disagrees_with_its_gates_is_explained(tmp_path):
    suite = synthetic_suite(margin_points=3.0, gates={"max_score_drop": 50.0})
    suite_dir = write_synthetic_suite(tmp_path / "runs", suite, accuracy_shift={"fp8": -0.3}, n_problems=40, k=8)
    parity = compare_suite(suite_dir, suite.gates, n_resamples=200)
    assert parity.comparisons[0].verdict == "worse"
    html = write_report(suite_dir, tmp_path / "out").read_text()
    assert "Gates: <b>PASSED</b>" in html
    assert "cpt/fp8/s0: the verdict is worse while every gate passed." in html
    assert "lies below 0; the score_drop gate passes any delta &gt;= -50.0 pts" in html


def test_speed_and_memory_of_an_arm_whose_loss_diverged_read_void(tmp_path):
    suite_dir = write_synthetic_suite(tmp_path / "runs", step_time_s={"bf16": 3.0, "fp8": 1.8},
                                      loss_offset={"fp8": 0.5})  # fmt: skip
    compare_suite(suite_dir, {"min_speedup": 1.05}, n_resamples=200)
    html = write_report(suite_dir, tmp_path / "report").read_text()
    comparisons = html[html.index('id="comparisons"') : html.index('id="loss"')]
    assert "the FP8 loss left BF16&#39;s" in comparisons and ">void</span>" in comparisons
    [fp8] = [
        line for line in (tmp_path / "report" / "tables" / "headline.md").read_text().splitlines() if "fp8" in line
    ]
    assert fp8.count("(void: FP8 loss diverged)") == 4
