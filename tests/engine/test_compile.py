"""``train.compile``: torch.compile of the training network equals eager, keeps plain checkpoint keys, and a
network the compiler cannot take fails the run with one line.

The inductor comparison compiles a UNet (minutes on a small CPU) and is marked slow; it skips, with the
compiler's reason, where inductor cannot compile at all. The checks of the training run use dynamo's
``eager`` backend (the same capture, no code generation), so they stay fast.
"""

import copy
import functools

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.engine.build import build_model
from ldwseg.tasks import load_config

runner = CliRunner()
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")),
]
DESIGNS = {"ldw-efficient": {}, "maxpool": {"model.down": "maxpool", "model.up": "deconv"}}
TINY = {"model.base_width": 4, "model.depth": 2, "data.crop_size": 16}
RUN = ["--epochs", "1", "--device", "cpu", "--set", "model.base_width=4", "--set", "model.depth=2",
       "--set", "data.crop_size=32", "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=2"]  # fmt: skip


def one_step(net: torch.nn.Module, model: torch.nn.Module, images, target) -> tuple[torch.Tensor, dict]:
    """One training step through ``net`` (``model`` or its compiled wrapper): its logits and gradients."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logits = net(images)
    torch.nn.functional.cross_entropy(logits, target).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    return logits.detach(), grads


@pytest.mark.parametrize("design", ["ldw-efficient", "ldw-paper"])
def test_the_unets_compile_as_one_graph(design):
    """No graph break anywhere in a training step of the LDW UNets (``fullgraph=True`` raises at the first
    one): dynamo's capture with AOT autograd, equal to eager (inductor's code generation: the slow test below)."""
    overrides = {"model.down": "ldw", "model.up": "ldw", "model.wavelet": "haar", "model.constraint": "orthogonal",
                 "model.attention": True} if design == "ldw-paper" else {}  # fmt: skip
    torch.manual_seed(0)
    model = build_model(load_config(None, {**TINY, **overrides}), 3).train()
    twin = copy.deepcopy(model)
    images, target = torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2, 16, 16))
    torch._dynamo.reset()
    compiled = torch.compile(twin, backend="aot_eager", fullgraph=True)
    got_logits, got_grads = one_step(compiled, twin, images, target)
    want_logits, want_grads = one_step(model, model, images, target)
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-5)
    assert got_grads.keys() == want_grads.keys()
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("design", DESIGNS)
def test_inductor_compiled_training_step_equals_eager(design, device):
    """Logits, gradients and the logits after the step, compiled against eager from the same weights.

    Tolerance: inductor fuses the pointwise ops and reorders float32 sums (BatchNorm's batch
    statistics, the convolutions' bias and ReLU epilogues), so results differ by rounding:
    single ops by a few ulps (~1e-7 relative); BatchNorm in training mode divides by batch standard
    deviations of a 2-image batch, which scales these differences up by the ratio of activation to
    deviation, and depth compounds them. rtol 1e-4 (logits) and 1e-3 (gradients, which go through
    every layer twice), with atol 1e-5 for entries near 0, are ~1000x float32's epsilon: far below
    any error of substance (a wrong or missing op changes logits at O(1)), above the measured
    rounding (on the CPU the largest difference over the largest entry: 5e-7 for logits, 4e-6 for
    gradients).
    """
    from torch._dynamo.exc import BackendCompilerFailed

    torch.manual_seed(0)
    cfg = load_config(None, {**TINY, **DESIGNS[design]})
    model = build_model(cfg, 3).to(device).train()
    twin = copy.deepcopy(model)
    images = torch.randn(2, 3, 16, 16, device=device)
    target = torch.randint(0, 3, (2, 16, 16), device=device)
    torch._dynamo.reset()
    compiled = torch.compile(twin)
    try:
        got_logits, got_grads = one_step(compiled, twin, images, target)
    except BackendCompilerFailed as err:
        pytest.skip(f"inductor cannot compile here: {str(err).splitlines()[0][:160]}")
    want_logits, want_grads = one_step(model, model, images, target)
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-5)
    assert got_grads.keys() == want_grads.keys() and len(want_grads) > 10
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)
    # after the step, through the same compiled graph (under no_grad dynamo would compile a second one)
    torch.testing.assert_close(compiled(images).detach(), model(images).detach(), rtol=1e-3, atol=1e-5)


def eager_backend_compile(monkeypatch, backend="eager") -> None:
    """Make ``torch.compile`` use ``backend`` (dynamo's capture without inductor's code generation)."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", functools.partial(real, backend=backend))


@pytest.mark.slow
@pytest.mark.usefixtures("private_data")
def test_a_compiled_run_saves_the_plain_network_and_trains_as_eager(tmp_path, monkeypatch):
    plain = runner.invoke(app, ["train", "--out", str(tmp_path / "plain"), *RUN])
    assert plain.exit_code == 0, plain.output
    torch._dynamo.reset()
    eager_backend_compile(monkeypatch)
    compiled = runner.invoke(app, ["train", "--out", str(tmp_path / "compiled"), *RUN, "--set", "train.compile=true"])
    assert compiled.exit_code == 0, compiled.output
    want, got = (
        load_file(tmp_path / "plain" / "last.safetensors"),
        load_file(tmp_path / "compiled" / "last.safetensors"),
    )
    assert got.keys() == want.keys() and not any("_orig_mod" in key for key in got)
    states = [torch.load(tmp_path / run / "last.state.pt", weights_only=True)["model"] for run in ("plain", "compiled")]
    assert states[1].keys() == states[0].keys()
    for key in want:  # the eager backend runs the captured graphs op by op: the same arithmetic
        torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-7, msg=key)


@pytest.mark.usefixtures("private_data")
def test_a_network_the_compiler_cannot_take_fails_the_run_with_one_line(tmp_path, monkeypatch):
    def failing(graph, example_inputs):
        raise TypeError("Cannot convert expression to float")

    torch._dynamo.reset()
    eager_backend_compile(monkeypatch, backend=failing)
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), *RUN, "--set", "train.compile=true"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: train.compile=true: torch.compile could not compile the network (")
    assert "Cannot convert expression to float" in last and "drop --set train.compile=true" in last


def test_compile_is_off_by_default_and_a_switch():
    from ldwseg.config import Config, apply_overrides
    from ldwseg.errors import ConfigError

    assert Config().train.compile is False
    assert apply_overrides(Config(), ["train.compile=true"]).train.compile is True
    with pytest.raises(ConfigError, match=r"train.compile"):
        apply_overrides(Config(), ["train.compile=maybe"])
