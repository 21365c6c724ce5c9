"""Every report figure is drawn for a paper: curves visible, legends off the data, one font, seeds stated."""

import json

import pytest
from matplotlib.text import Text

from harness.analysis.compare import compare_suite
from harness.analysis.synthetic import synthetic_suite, write_synthetic_suite
from harness.report.data import load_report_data
from harness.report.figures import all_figures, close_all, loss_bias_figure, loss_figure
from harness.store import RunDir

ARMS = {"bf16": "bf16", "bf16-control": "bf16", "fp8": "te:blockwise"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    suite_dir = write_synthetic_suite(tmp_path_factory.mktemp("figs") / "runs", synthetic_suite(arms=ARMS),
                                      loss_offset={"fp8": 0.003}, with_nvml=True)  # fmt: skip
    profile = {"steps": [2, 3], "device": "NVIDIA H200", "per_step_ms": {"gemm": 40.0, "other": 3.0}}
    RunDir(suite_dir / "cpt-fp8-s0").profile.write_text(json.dumps(profile))
    compare_suite(suite_dir, n_resamples=100)
    return load_report_data(suite_dir)


def test_every_figure_is_drawn_with_one_font_and_its_legend_beside_the_data(data):
    figs = all_figures(data)
    drawn = {name for name, fig in figs.items() if fig is not None}
    assert {"loss-cpt-fp8-s0", "loss-bias", "step-times", "nvml", "kernels", "eval-deltas"} <= drawn
    try:
        for name, fig in figs.items():
            if fig is None:
                continue
            fig.canvas.draw()
            sizes = {t.get_fontsize() for t in fig.findobj(Text) if t.get_text()}
            assert sizes <= {8.0, 9.0, 10.0}, (name, sizes)  # ticks and legends 8, labels 9, titles 10
            for ax in fig.axes:
                legend = ax.get_legend()
                if legend is not None:
                    box, frame = legend.get_window_extent(), ax.get_window_extent()
                    assert box.x0 >= frame.x1 - 1, f"{name}: legend over the data"
    finally:
        close_all(figs)


def test_the_loss_figure_shows_both_curves_on_a_log_axis_and_says_it_is_one_seed(data):
    fig = loss_figure(data, "cpt/fp8/s0")
    top, bottom = fig.axes
    lines = [line for line in top.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in lines] == ["bf16 (bf16)", "fp8 (te:blockwise)"]
    # Equal curves stay visible: different line styles, the FP8 one drawn on top.
    assert lines[0].get_linestyle() != lines[1].get_linestyle() and lines[1].get_zorder() > lines[0].get_zorder()
    assert top.get_yscale() == "log" and "single seed" in top.get_title(loc="left")
    assert "(FP8 - BF16) / BF16" in bottom.get_ylabel()
    row = next(r for r in data.parity.comparisons if r.id == "cpt/fp8/s0")
    [stairs] = bottom.patches[1:]  # behind it, the DeepSeek-V3 band
    assert list(stairs.get_data().values) == pytest.approx([100 * e for e in row.loss.window_signed_rel_error])


def test_a_single_seed_loss_bias_figure_says_it_has_no_interval(data):
    ax = loss_bias_figure(data).axes[0]
    assert "single seed: no interval" in ax.get_title(loc="left")
    assert not [line for line in ax.get_lines() if line.get_marker() == "D"]  # no mean-over-seeds marker
    xmin, xmax = ax.get_xlim()
    xs = [x for line in ax.get_lines() if line.get_marker() == "o" for x in line.get_xdata()]
    assert all(xmin < x < xmax for x in xs) and min(xs) - xmin > 0.05 * (xmax - xmin)  # no point on the frame
