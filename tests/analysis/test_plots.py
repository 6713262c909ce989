"""ldwseg.analysis.plots: filter and sweep figures, atomic PNG and CSV files."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from ldwseg import LDWPool2d
from ldwseg.analysis.filter_report import pool_reports

pytest.importorskip("matplotlib", reason="the figures need matplotlib")
from PIL import Image  # after the skip: a dependency of matplotlib

from ldwseg.analysis import plots as viz

PAPER_LOW = [-0.0761025, 0.3535534, 0.8593118, 0.3535534, -0.0761025]
PAPER_HIGH = [(-1) ** n * v for n, v in enumerate(PAPER_LOW)]


def reports(count: int = 2):
    pools = [
        LDWPool2d(wavelet="db2", constraint="orthogonal"),
        LDWPool2d(wavelet=(PAPER_LOW, PAPER_HIGH), constraint="paper"),
        LDWPool2d(wavelet="haar", constraint="lattice"),
    ]
    model = nn.Sequential(*pools[:count])
    with torch.no_grad():
        model[0].low.add_(torch.tensor([0.05, -0.02, 0.0, 0.03]))  # learned differs from initial
    return pool_reports(model)


def sweep_rows():
    rows = []
    for constraint, pr, loss in (("paper", 0.5, 1e-3), ("orthogonal", 1e-7, 1e-9), ("lattice", 2e-8, 0.0)):
        for lam in (0.0, 0.01, 0.1, 1.0):
            rows.append(
                {
                    "wavelet_weight": lam,
                    "constraint": constraint,
                    "miou": 0.5 + 0.1 * lam,
                    "roundtrip_psnr": math.inf if constraint == "lattice" else 30.0 + 10 * lam,
                    "wavelet_loss": loss / (1 + lam),
                    "pr_error": pr,
                }
            )
    return rows


def png_size(path) -> tuple[int, int]:
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def no_temporaries(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_import_ldwseg_does_not_load_matplotlib():
    code = (
        "import sys, ldwseg, ldwseg.analysis.plots, ldwseg.analysis.filter_report; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_filters_writes_png_with_one_row_per_pool(tmp_path):
    one = png_size(viz.plot_filters(reports(1), tmp_path / "one.png"))
    three = viz.plot_filters(reports(3), tmp_path / "sub" / "three.png")
    assert three == tmp_path / "sub" / "three.png"
    width, height = png_size(three)
    assert width >= 800 and one[0] == width
    assert height > 2 * one[1]  # rows stack
    assert no_temporaries(tmp_path) and no_temporaries(tmp_path / "sub")


def test_filters_figure_draws_learned_and_initial_filters():
    report = reports(1)[0]
    fig = viz.filters_figure([report], n=64)
    taps_ax, change_ax, freq_ax = fig.axes
    assert "PR error" in freq_ax.get_title() and "orthogonal" in taps_ax.get_title()
    assert [ax.get_ylabel() for ax in fig.axes] == ["tap value", "learned − initial", "|W(ω)|"]
    lines = {line.get_label(): line for line in freq_ax.get_lines()}
    assert set(lines) == {"|W_L| initial", "|W_L| learned", "|W_H| initial", "|W_H| learned"}
    assert lines["|W_L| initial"].get_linestyle() == "--" and lines["|W_L| learned"].get_linestyle() == "-"
    # db2's initial low-pass passes DC with gain sqrt 2 and stops pi; the learned one moved
    assert lines["|W_L| initial"].get_ydata()[0] == pytest.approx(math.sqrt(2))
    assert lines["|W_L| initial"].get_ydata()[-1] == pytest.approx(0.0, abs=1e-6)
    assert lines["|W_L| learned"].get_ydata()[0] == pytest.approx(math.sqrt(2) + 0.06)


def stem_heights(ax, label: str) -> np.ndarray:
    """The heights of the stems called ``label`` in ``ax``."""
    (container,) = [c for c in ax.containers if c.get_label() == label]
    return np.asarray(container.markerline.get_ydata())


def test_filters_figure_shows_the_change_of_every_tap():
    report = reports(1)[0]
    change_ax = viz.filters_figure([report], n=16).axes[1]
    np.testing.assert_allclose(stem_heights(change_ax, "W_L learned - initial"), [0.05, -0.02, 0.0, 0.03], atol=1e-7)
    np.testing.assert_allclose(stem_heights(change_ax, "W_H learned - initial"), 0.0, atol=1e-12)
    assert f"max |Δ| {0.05:.2e}" in change_ax.get_title()
    assert report.max_change == pytest.approx(0.05, abs=1e-7)


def test_plot_filters_without_pools_says_why(tmp_path):
    with pytest.raises(ValueError, match="no LDWPool2d"):
        viz.plot_filters([], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_plot_sweep_writes_png_and_replaces_old_file(tmp_path):
    path = tmp_path / "sweep.png"
    path.write_bytes(b"old")
    assert viz.plot_sweep(sweep_rows(), path, task_metric="miou", task_label="val mIoU") == path
    width, height = png_size(path)
    assert width >= 800 and height >= 500
    assert no_temporaries(tmp_path)


def test_sweep_figure_clips_infinite_psnr_and_zero_loss():
    fig = viz.sweep_figure(sweep_rows(), task_metric="miou", task_label="val mIoU")
    task_ax, psnr_ax, loss_ax, pr_ax = fig.axes
    assert task_ax.get_ylabel() == "val mIoU" and task_ax.get_xscale() == "symlog"
    assert loss_ax.get_yscale() == "log" and pr_ax.get_yscale() == "log"
    assert [t.get_text() for t in task_ax.get_legend().get_texts()] == ["paper", "orthogonal", "lattice"]

    psnr = {line.get_label(): line.get_ydata() for line in psnr_ax.get_lines() if not line.get_label().startswith("_")}
    assert np.all(np.isfinite(psnr["lattice"])) and np.all(psnr["lattice"] == viz.PSNR_CEILING)
    assert any("exact" in t.get_text() for t in psnr_ax.texts)
    loss = {line.get_label(): line.get_ydata() for line in loss_ax.get_lines()}
    assert np.all(loss["lattice"] == viz.LOG_FLOOR) and np.all(loss["paper"] > viz.LOG_FLOOR)
    # lambda = 0 is on the axis, left of the smallest positive lambda
    assert list(task_ax.get_lines()[0].get_xdata()) == [0.0, 0.01, 0.1, 1.0]


def test_sweep_figure_reads_numbers_from_csv_strings(tmp_path):
    path = viz.write_csv(sweep_rows(), tmp_path / "sweep.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    fig = viz.sweep_figure(rows, task_metric="miou", task_label="val mIoU")
    psnr = {line.get_label(): line.get_ydata() for line in fig.axes[1].get_lines()}
    assert np.all(psnr["lattice"] == viz.PSNR_CEILING)


def test_plot_sweep_names_missing_keys(tmp_path):
    rows = sweep_rows()
    del rows[3]["pr_error"]
    with pytest.raises(ValueError, match=r"sweep row 3 lacks 'pr_error'"):
        viz.plot_sweep(rows, tmp_path / "s.png", task_metric="miou", task_label="mIoU")
    with pytest.raises(ValueError, match=r"lacks 'psnr'"):
        viz.plot_sweep(sweep_rows(), tmp_path / "s.png", task_metric="psnr", task_label="PSNR")
    with pytest.raises(ValueError, match="at least one row"):
        viz.plot_sweep([], tmp_path / "s.png", task_metric="miou", task_label="mIoU")


def test_plot_sweep_rejects_negative_weight(tmp_path):
    rows = sweep_rows()
    rows[0]["wavelet_weight"] = -1.0
    with pytest.raises(ValueError, match="finite and >= 0"):
        viz.plot_sweep(rows, tmp_path / "s.png", task_metric="miou", task_label="mIoU")


def test_write_csv_round_trip_with_stable_columns(tmp_path):
    rows = sweep_rows()
    rows[0]["note"] = "first"  # a key only some rows have
    path = viz.write_csv(rows, tmp_path / "out" / "sweep.csv")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        back = list(reader)
    assert reader.fieldnames == [
        "constraint",
        "wavelet_weight",
        "miou",
        "roundtrip_psnr",
        "wavelet_loss",
        "pr_error",
        "note",
    ]
    assert len(back) == len(rows)
    for row, read in zip(rows, back):
        assert read["constraint"] == row["constraint"]
        for key in ("wavelet_weight", "miou", "roundtrip_psnr", "wavelet_loss", "pr_error"):
            assert float(read[key]) == row[key]  # exact, inf included
    assert back[0]["note"] == "first" and back[1]["note"] == ""
    assert float(back[-1]["roundtrip_psnr"]) == math.inf
    assert no_temporaries(tmp_path / "out")


def test_write_csv_needs_rows(tmp_path):
    with pytest.raises(ValueError, match="at least one row"):
        viz.write_csv([], tmp_path / "empty.csv")
