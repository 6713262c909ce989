"""ldwseg.analysis.filter_report: pool reports, frequency responses, the report table, and the models of checkpoints."""

import json
import math

import numpy as np
import pytest
import pywt
import torch
from torch import nn
from torch.testing import assert_close
from typer.testing import CliRunner

from ldwseg import LDWPool2d
from ldwseg.analysis.filter_report import format_reports, frequency_response, pool_reports, report_json
from ldwseg.cli import app
from ldwseg.config import Config
from ldwseg.engine.checkpoints import load_run_model, save_run_checkpoint
from ldwseg.errors import CheckpointError
from ldwseg.io.weights import save_weights
from ldwseg.models import build_unet

# The authors' symmetric K=5 pair: it meets Eqs. 9-12 exactly, yet is not an orthogonal PR bank.
PAPER_LOW = [-0.0761025, 0.3535534, 0.8593118, 0.3535534, -0.0761025]
PAPER_HIGH = [(-1) ** n * v for n, v in enumerate(PAPER_LOW)]

TINY = {"model": {"base_width": 4, "depth": 2}}


def two_pools() -> nn.Sequential:
    return nn.Sequential(
        LDWPool2d(wavelet="db2", constraint="orthogonal"),
        LDWPool2d(wavelet=(PAPER_LOW, PAPER_HIGH), constraint="paper"),
    )


# --- frequency_response -------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 256])
def test_frequency_response_shapes_and_grid(n):
    omega, mag = frequency_response(np.array([0.5, -0.25, 1.0]), n)
    assert omega.shape == mag.shape == (n,)
    assert omega[0] == 0.0 and omega[-1] == pytest.approx(math.pi)


def test_frequency_response_of_haar_low_pass():
    omega, mag = frequency_response(np.full(2, 1 / math.sqrt(2)), 101)
    assert_close(torch.from_numpy(mag), torch.from_numpy(math.sqrt(2) * np.abs(np.cos(omega / 2))))


@pytest.mark.parametrize("taps", [[1.0], [0.3, -1.2, 0.7], list(np.random.default_rng(1).standard_normal(8))])
def test_frequency_response_agrees_with_fft_of_zero_padded_filter(taps):
    n = 129
    # the FFT of length 2(n - 1) samples omega = 2 pi j / (2(n - 1)) = pi j / (n - 1), j = 0 .. n - 1
    reference = np.abs(np.fft.fft(np.asarray(taps), 2 * (n - 1))[:n])
    _, mag = frequency_response(np.asarray(taps), n)
    assert_close(torch.from_numpy(mag), torch.from_numpy(reference))


def test_frequency_response_of_db2_is_power_complementary():
    # an orthogonal PR bank has |W_L|^2 + |W_H|^2 = 2 at every frequency
    pool = LDWPool2d(wavelet="db2", constraint="orthogonal")
    _, low = frequency_response(pool.initial_low.numpy())
    _, high = frequency_response(pool.initial_high.numpy())
    assert_close(torch.from_numpy(low**2 + high**2), torch.full((256,), 2.0, dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("taps", "n", "match"),
    [(np.zeros((2, 2)), 8, r"1-D filter, got shape \(2, 2\)"), (np.array([]), 8, "non-empty"), ([1.0], 1, "n >= 2")],
)
def test_frequency_response_rejects_bad_input(taps, n, match):
    with pytest.raises(ValueError, match=match):
        frequency_response(taps, n)


# --- pool_reports ------------------------------------------------------------------------


def test_pool_reports_of_orthogonal_and_paper_pools():
    orthogonal, paper = pool_reports(two_pools())
    assert (orthogonal.name, paper.name) == ("0", "1")
    assert (orthogonal.constraint, orthogonal.wavelet_name, orthogonal.kernel_size) == ("orthogonal", "db2", 4)
    assert (paper.constraint, paper.wavelet_name, paper.kernel_size) == ("paper", "custom", 5)

    # db2 is an orthogonal PR bank: every orthogonality term and the PR error vanish
    assert set(orthogonal.constraint_terms) == {"low_orthonormal", "high_orthonormal", "cross_orthogonal", "low_dc"}
    assert max(orthogonal.constraint_terms.values()) < 1e-12
    assert orthogonal.pr_error < 1e-6
    # the authors' pair meets Eqs. 9-12 but is not PR: A^T A - I has an entry of 1/2
    assert set(paper.paper_terms) == {"low", "high", "reverse", "sym"}
    assert paper.constraint_terms == paper.paper_terms
    assert max(paper.paper_terms.values()) < 1e-10
    assert paper.wavelet_loss < 1e-10
    assert paper.pr_error == pytest.approx(0.5, abs=1e-6)
    # and db2 is far from the paper's symmetric filters
    assert orthogonal.paper_terms["sym"] > 0.1


def test_pool_reports_hold_current_and_initial_filters_as_float64_arrays():
    model = two_pools()
    with torch.no_grad():
        model[0].low.add_(0.1)
    report = pool_reports(model)[0]
    for array in (report.low, report.high, report.initial_low, report.initial_high):
        assert isinstance(array, np.ndarray) and array.dtype == np.float64 and array.shape == (4,)
    assert_close(report.low, model[0].initial_low.double().numpy() + 0.1)
    assert_close(report.initial_low, model[0].initial_low.double().numpy())
    assert report.pr_error > 0.01 and report.wavelet_loss > 0.01


def test_pool_reports_of_lattice_pool_has_no_terms_and_exact_filters():
    (report,) = pool_reports(LDWPool2d(wavelet="db3", constraint="lattice"))
    assert report.name == "LDWPool2d"
    assert report.constraint_terms == {} and report.wavelet_loss == 0.0
    assert report.pr_error < 1e-6
    assert_close(report.low, report.initial_low, atol=1e-6, rtol=0)


def test_pool_reports_count_tied_pools_once():
    model = build_unet(Config.from_dict(TINY).model, 3, 2)
    reports = pool_reports(model)
    # each encoder pool is also reachable through the decoder's reverse pool
    assert [r.name for r in reports] == ["downs.0.pool", "downs.1.pool"]


def test_pool_reports_of_model_without_pools_is_empty():
    assert pool_reports(nn.Conv2d(3, 3, 1)) == []


# --- format_reports ----------------------------------------------------------------------


def test_format_reports_table():
    text = format_reports(pool_reports(two_pools()))
    header, rule, first, second = text.splitlines()
    assert header.split()[:7] == ["pool", "constraint", "K", "wavelet", "loss", "PR", "error"]
    for term in ("low_orthonormal", "cross_orthogonal", "paper.sym", "paper.reverse"):
        assert term in header
    assert set(rule.replace(" ", "")) == {"-"}
    assert first.split()[:3] == ["0", "orthogonal", "4"]
    assert second.split()[:3] == ["1", "paper", "5"]
    assert "5.00e-01" in second  # the paper pair's PR error
    assert "-" in second.split()  # it has no orthogonality terms


def test_format_reports_shows_paper_terms_once_for_paper_pools():
    pools = nn.Sequential(LDWPool2d(wavelet=(PAPER_LOW, PAPER_HIGH), constraint="paper"))
    header = format_reports(pool_reports(pools)).splitlines()[0]
    assert header.split()[-4:] == ["paper.low", "paper.high", "paper.reverse", "paper.sym"]
    assert "orthonormal" not in header and header.count("sym") == 1


def test_format_reports_without_pools():
    assert "no LDWPool2d" in format_reports([])


# --- load_run_model: the models whose pools are reported ------------------------------


def checkpoint(tmp_path, task: str, *, out_channels: int = 3, **meta):
    cfg = Config.from_dict(TINY)
    model = build_unet(cfg.model, 3, out_channels)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / f"{task}.safetensors"
    save_weights(path, model, metadata={"task": task, "config": cfg.to_dict(), **meta})
    return path, model


def test_load_run_model_of_a_seg_checkpoint(tmp_path):
    path, saved = checkpoint(tmp_path, "seg", out_channels=5, dataset={"num_classes": 5})
    model, meta, _ = load_run_model(path)
    assert meta["task"] == "seg" and meta["dataset"] == {"num_classes": 5}
    assert model.head.out_channels == 5 and not model.training
    for (name, a), (_, b) in zip(saved.state_dict().items(), model.state_dict().items()):
        assert_close(b, a, msg=name)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 9, 11)).shape == (1, 5, 9, 11)


def test_load_run_model_of_a_recon_checkpoint(tmp_path):
    path, saved = checkpoint(tmp_path, "recon", out_channels=3)
    model, meta, _ = load_run_model(path)
    assert meta["task"] == "recon" and model.head.out_channels == 3
    assert_close(model.head.weight, saved.head.weight)
    assert [r.name for r in pool_reports(model)] == ["downs.0.pool", "downs.1.pool"]


def test_load_run_model_with_default_config(tmp_path):
    # the brief's tiny case: a full default config but narrow layers
    cfg = Config.from_dict({"model": {"base_width": 4}})
    path = tmp_path / "seg.safetensors"
    save_weights(
        path,
        build_unet(cfg.model, 3, 3),
        metadata={"task": "seg", "config": cfg.to_dict(), "dataset": {"num_classes": 3}},
    )
    model, _, _ = load_run_model(path)
    assert len(pool_reports(model)) == cfg.model.depth


def test_load_run_model_rejects_unknown_task(tmp_path):
    path, _ = checkpoint(tmp_path, "detect")
    with pytest.raises(
        CheckpointError, match=r"'detect' checkpoint; ldwseg rebuilds the models of the tasks seg, recon only"
    ):
        load_run_model(path)


def test_load_run_model_needs_num_classes_for_seg(tmp_path):
    path, _ = checkpoint(tmp_path, "seg", dataset={})
    with pytest.raises(CheckpointError, match="no valid dataset.num_classes"):
        load_run_model(path)


def test_load_run_model_needs_stored_config(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_weights(path, nn.Linear(2, 2), metadata={"task": "recon"})
    with pytest.raises(CheckpointError, match="no stored config"):
        load_run_model(path)


def test_load_run_model_refuses_weights_of_another_model(tmp_path):
    path, _ = checkpoint(tmp_path, "seg", out_channels=2, dataset={"num_classes": 4})
    with pytest.raises(CheckpointError, match="does not fit UNet"):
        load_run_model(path)


# --- report_json and ldwseg filters --json ------------------------------------------------


def strict_loads(text: str):
    """``json.loads`` that refuses NaN and Infinity, which strict JSON does not have."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))


def test_report_json_of_orthogonal_and_paper_pools():
    model = two_pools()
    orthogonal, paper = (report_json(r) for r in pool_reports(model))
    assert strict_loads(json.dumps([orthogonal, paper], allow_nan=False)) == [orthogonal, paper]
    assert [orthogonal[k] for k in ("name", "constraint", "wavelet", "kernel_size")] == ["0", "orthogonal", "db2", 4]
    assert set(orthogonal["constraint_terms"]) == {"low_orthonormal", "high_orthonormal", "cross_orthogonal", "low_dc"}
    assert set(paper["constraint_terms"]) == {"low", "high", "reverse", "sym"}  # no orthogonality terms
    assert_close(paper["low"], PAPER_LOW, atol=1e-6, rtol=0)
    assert_close(paper["initial_high"], PAPER_HIGH, atol=1e-6, rtol=0)
    assert paper["pr_error"] == pytest.approx(0.5, abs=1e-6)
    assert all(isinstance(v, float) for v in [*orthogonal["low"], orthogonal["pr_error"], orthogonal["wavelet_loss"]])


def test_report_json_writes_non_finite_numbers_as_null():
    pool = LDWPool2d(wavelet="haar", constraint="orthogonal")
    with torch.no_grad():
        pool.low[0] = float("nan")
        pool.high[1] = float("inf")
    out = report_json(pool_reports(pool)[0])
    assert out["low"][0] is None and out["high"][1] is None and out["pr_error"] is None
    assert out["initial_low"] == pytest.approx([2**-0.5, 2**-0.5])
    strict_loads(json.dumps(out, allow_nan=False))


def saved_run(tmp_path, **model) -> tuple:
    """A trained-looking seg UNet (filters moved off the wavelet) saved by the training's own writer."""
    cfg = Config.from_dict({"model": {**TINY["model"], **model}})
    net = build_unet(cfg.model, 3, 3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "best.safetensors"
    record = {"name": "synthetic", "num_classes": 3, "out_channels": 3, "class_names": ["a", "b", "c"]}
    save_run_checkpoint(path, net, cfg, record, epoch=0, metrics={})
    return path, net


def filters_json(*args) -> dict:
    result = CliRunner().invoke(app, ["filters", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return strict_loads(result.stdout)


@pytest.mark.parametrize(
    ("wavelet", "constraint", "terms"),
    [
        ("haar", "orthogonal", {"low_orthonormal", "high_orthonormal", "cross_orthogonal", "low_dc"}),
        ("db2", "paper", {"low", "high", "reverse", "sym"}),
        ("db3", "lattice", set()),
    ],
)
def test_filters_json_of_a_checkpoint(tmp_path, wavelet, constraint, terms):
    path, net = saved_run(tmp_path, wavelet=wavelet, constraint=constraint)
    out = filters_json(path)
    assert (out["checkpoint"], out["task"]) == (str(path), "seg")
    assert [p["name"] for p in out["pools"]] == ["downs.0.pool", "downs.1.pool"]
    reference = pywt.Wavelet(wavelet)  # the initial taps, independently of ldwseg
    for entry in out["pools"]:
        pool = net.get_submodule(entry["name"])
        low, high = pool.filters()
        assert_close(torch.tensor(entry["low"], dtype=torch.float64), low.detach().double())
        assert_close(torch.tensor(entry["high"], dtype=torch.float64), high.detach().double())
        assert not np.allclose(entry["low"], reference.rec_lo, atol=1e-3)  # the taps moved: not the initial ones
        assert_close(entry["initial_low"], list(reference.rec_lo), atol=1e-6, rtol=0)
        assert_close(entry["initial_high"], list(reference.rec_hi), atol=1e-6, rtol=0)
        assert (entry["constraint"], entry["wavelet"], entry["kernel_size"]) == (constraint, wavelet, reference.dec_len)
        assert set(entry["constraint_terms"]) == terms
        for name, value in pool.constraint_terms().items():
            assert entry["constraint_terms"][name] == pytest.approx(float(value.detach()), rel=1e-6, abs=1e-12)
        assert entry["wavelet_loss"] == pytest.approx(float(pool.wavelet_loss().detach()), rel=1e-6, abs=1e-12)
        assert entry["pr_error"] == pytest.approx(pool.pr_error(), rel=1e-6, abs=1e-12)
    assert not list(tmp_path.glob("*.png"))  # --json alone draws nothing


def test_filters_json_with_out_also_writes_the_plot(tmp_path):
    path, _ = saved_run(tmp_path)
    png = tmp_path / "f.png"
    result = CliRunner().invoke(app, ["filters", str(path), "--json", "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert len(strict_loads(result.stdout)["pools"]) == 2  # stdout is the JSON alone
    assert png.is_file() and str(png) in result.stderr


def test_filters_json_of_a_maxpool_model_lists_no_pools(tmp_path):
    path, _ = saved_run(tmp_path, down="maxpool", up="deconv")
    assert filters_json(path)["pools"] == []
