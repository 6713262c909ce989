"""The training cost of a config and the pooling benchmark, measured on the device and in the number format
the config trains with; CUDA times synchronise, CUDA memory is measured and CPU memory estimated."""

import pytest
import torch
from typer.testing import CliRunner

from ldwseg.analysis.bench import format_table, run_pool_benchmark
from ldwseg.analysis.cost import MIB, device_label, step_times_ms, training_cost
from ldwseg.cli import app
from ldwseg.tasks import get_task, load_config

runner = CliRunner()
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")),
]
TINY = {"model.base_width": 4, "model.depth": 2, "data.crop_size": 16, "train.batch_size": 2}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("amp, channels_last, precision", [("off", False, "float32"),
                                                            ("bf16", True, "bf16 autocast, channels-last")])  # fmt: skip
def test_training_cost_is_measured_where_and_as_the_config_trains(device, amp, channels_last, precision):
    cfg = load_config(None, {**TINY, "train.device": device, "train.amp": amp, "train.channels_last": channels_last})
    cost = training_cost(cfg, get_task("seg"), 3)
    assert cost["cost_device"] == device_label(torch.device(device)) and cost["cost_precision"] == precision
    assert cost["cost_device"].startswith("cpu (") if device == "cpu" else cost["cost_device"].startswith("cuda:0 (")
    assert cost["step_ms"] > 0 and cost["params"] > 0 and cost["flops"] > 0
    weights = 4 * cost["params"] / MIB  # float32 bytes
    # the weights, their gradients and Adam's two moments at least, plus activations
    assert cost["peak_mem_mb"] > 4 * weights
    assert cost["peak_mem_source"] == ("estimated" if device == "cpu" else "measured")


def test_fp16_cost_needs_cuda_as_training_does():
    from ldwseg.errors import ConfigError

    cfg = load_config(None, {**TINY, "train.device": "cpu", "train.amp": "fp16"})
    with pytest.raises(ConfigError, match="--amp fp16 needs a CUDA device"):
        training_cost(cfg, get_task("seg"), 3)


def test_step_times_run_the_warmup_untimed_and_time_each_repeat():
    calls = []
    times = step_times_ms(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=3)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)


def test_device_label_names_the_threads_on_the_cpu():
    threads = torch.get_num_threads()
    assert device_label(torch.device("cpu")) == f"cpu ({threads} thread{'s' * (threads != 1)})"


@pytest.mark.parametrize("device", DEVICES)
def test_the_pool_benchmark_runs_on_the_device_it_is_given(device):
    rows = run_pool_benchmark(shapes=((1, 4, 8, 8),), repeats=1, device=device)
    assert {"MaxPool2d(2)", "LDWPool2d K=4"} <= {r.name for r in rows}
    assert format_table(rows, device).splitlines()[0].startswith(f"torch {torch.__version__}, {device}")


def test_bench_device_option_names_the_device_and_refuses_a_missing_gpu():
    result = runner.invoke(app, ["bench", "--quick", "--repeats", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"torch {torch.__version__}, cpu (" in result.output
    if not torch.cuda.is_available():
        missing = runner.invoke(app, ["bench", "--quick", "--repeats", "1", "--device", "cuda"])
        assert missing.exit_code == 2
        assert missing.output.strip().splitlines()[-1] == (
            "error: device 'cuda' was asked for but CUDA is not available; use --device cpu"
        )
