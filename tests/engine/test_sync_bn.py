"""SyncBatchNorm2d for CPU process groups: one BatchNorm2d over the union of the ranks' batches.

The reference is torch's own ``nn.BatchNorm2d`` run on the whole batch in this process;
the synced layer runs in 2 gloo ranks (``torch.multiprocessing``), each on its part.
"""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from run_checks import free_port
from torch import nn

from ldwseg.engine.sync_bn import SyncBatchNorm2d, convert_sync_batchnorm, sync_batch_norm

WORLD = 2
CASES = {
    # name: (dtype, rows of the batch of 8 that each rank holds)
    "float32, halves": (torch.float32, [range(0, 4), range(4, 8)]),
    "float64, 3 and 5 rows": (torch.float64, [range(0, 3), range(3, 8)]),
}
STEPS = 2  # the second step normalises with a shift K (the running mean) that is not zero


def batches(dtype: torch.dtype) -> tuple[dict, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The layer's starting state and, per step, an input batch and the gradient of the output to back-propagate."""
    g = torch.Generator().manual_seed(0)
    state = {
        "weight": torch.rand(3, generator=g, dtype=dtype) + 0.5, "bias": torch.randn(3, generator=g, dtype=dtype),
        "running_mean": torch.randn(3, generator=g, dtype=dtype), "running_var": torch.rand(3, generator=g, dtype=dtype)
        + 0.5, "num_batches_tracked": torch.tensor(3),
    }  # fmt: skip
    steps = []
    for step in range(STEPS):
        x = torch.randn(8, 3, 5, 7, generator=g, dtype=dtype) * (step + 1) + 4 * step
        steps.append((x, torch.randn(8, 3, 5, 7, generator=g, dtype=dtype)))
    return state, steps


def bn_run(layer: nn.BatchNorm2d, steps: list, rows: range | slice = slice(None)) -> list[dict]:
    """``layer`` trained on ``steps`` (the ``rows`` of each batch), then evaluated on the last one."""
    results = []
    for x, dy in steps:
        x = x[rows].clone().requires_grad_(True)
        layer.zero_grad()
        y = layer(x)
        y.backward(dy[rows])
        results.append({"y": y.detach(), "dx": x.grad, "dweight": layer.weight.grad.clone(),
                        "dbias": layer.bias.grad.clone(), **{k: v.clone() for k, v in layer.state_dict().items()}})  # fmt: skip
    layer.eval()
    results.append({"y": layer(steps[-1][0][rows]).detach()})
    return results


def rank_worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        runs = {}
        for name, (dtype, rows) in CASES.items():
            state, steps = batches(dtype)
            layer = SyncBatchNorm2d(3, dtype=dtype)
            layer.load_state_dict(state)
            runs[name] = bn_run(layer, steps, rows[rank])
        torch.save(runs, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_runs(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("sync_bn")
    mp.spawn(rank_worker, args=(free_port(), str(out)), nprocs=WORLD)
    return [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]


def reference_run(dtype: torch.dtype) -> list[dict]:
    state, steps = batches(dtype)
    layer = nn.BatchNorm2d(3, dtype=dtype)
    layer.load_state_dict(state)
    return bn_run(layer, steps)


@pytest.mark.parametrize("case", CASES)
def test_two_gloo_ranks_train_like_one_batchnorm_on_the_whole_batch(rank_runs, case):
    dtype, rows = CASES[case]
    reference = reference_run(dtype)
    for step, expected in enumerate(reference[:STEPS]):
        ranks = [runs[case][step] for runs in rank_runs]
        parts = {key: torch.cat([r[key] for r in ranks]) for key in ("y", "dx")}
        for key in ("y", "dx"):
            torch.testing.assert_close(parts[key], expected[key], msg=f"{key}, step {step + 1}")
        for key in ("dweight", "dbias"):  # each rank's share of the parameter gradient (DDP sums, then averages)
            torch.testing.assert_close(sum(r[key] for r in ranks), expected[key], msg=f"{key}, step {step + 1}")
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            for rank, r in enumerate(ranks):
                torch.testing.assert_close(r[key], expected[key], msg=f"{key} of rank {rank}, step {step + 1}")
    evaluated = torch.cat([runs[case][STEPS]["y"] for runs in rank_runs])
    torch.testing.assert_close(evaluated, reference[STEPS]["y"], msg="eval mode")


def test_in_one_process_it_trains_like_batchnorm2d():
    x = torch.randn(4, 5, 6, 7) * 3 + 2
    synced, plain = SyncBatchNorm2d(5), nn.BatchNorm2d(5)
    for layer in (synced, plain):
        layer.load_state_dict({**plain.state_dict(), "weight": torch.linspace(0.5, 2, 5), "bias": torch.arange(5.0)})
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    ys = [layer(x) for layer, x in zip((synced, plain), xs)]
    for y in ys:
        y.square().sum().backward()
    torch.testing.assert_close(ys[0], ys[1])
    torch.testing.assert_close(xs[0].grad, xs[1].grad)
    for (name, a), b in zip(synced.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    torch.testing.assert_close(synced.weight.grad, plain.weight.grad)
    torch.testing.assert_close(synced.bias.grad, plain.bias.grad)


def test_momentum_none_is_a_cumulative_average_and_no_running_stats_normalise_the_batch():
    x = [torch.randn(2, 3, 4, 4) + i for i in range(3)]
    for kwargs in ({"momentum": None}, {"track_running_stats": False}, {"affine": False}):
        synced, plain = SyncBatchNorm2d(3, **kwargs), nn.BatchNorm2d(3, **kwargs)
        for batch in x:
            torch.testing.assert_close(synced(batch), plain(batch), msg=str(kwargs))
        for (name, a), b in zip(synced.state_dict().items(), plain.state_dict().values()):
            torch.testing.assert_close(a, b, msg=f"{name}, {kwargs}")


def test_module_is_the_function():
    layer = SyncBatchNorm2d(3)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.normal_()
    x = torch.randn(3, 3, 4, 5)
    running = (layer.running_mean.clone(), layer.running_var.clone())
    expected = sync_batch_norm(x, *running, layer.weight, layer.bias, momentum=0.1, eps=1e-5)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(layer.running_mean, running[0], rtol=0, atol=0)
    torch.testing.assert_close(layer.running_var, running[1], rtol=0, atol=0)


def test_channels_last_and_bfloat16_inputs():
    x = torch.randn(2, 4, 6, 5).to(memory_format=torch.channels_last)
    torch.testing.assert_close(SyncBatchNorm2d(4)(x), nn.BatchNorm2d(4)(x))
    y = SyncBatchNorm2d(4)(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, nn.BatchNorm2d(4)(x.bfloat16().float()).bfloat16())


def test_gradcheck_float64():
    x = torch.randn(3, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    running = torch.zeros(2, dtype=torch.float64) + 0.3, torch.ones(2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, w, b: sync_batch_norm(x, *running, w, b), (x, weight, bias))


def test_one_value_per_channel_is_refused():
    with pytest.raises(ValueError, match=r"more than 1 value per channel when training, got 1 over all ranks"):
        SyncBatchNorm2d(3)(torch.randn(1, 3, 1, 1))
    with pytest.raises(ValueError, match="expected 4D input"):
        SyncBatchNorm2d(3)(torch.randn(2, 3, 4))


def test_convert_keeps_tensors_and_keys_and_swaps_only_batchnorm2d():
    class OwnNorm(nn.BatchNorm2d):
        pass

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4, affine=False)),
                        nn.BatchNorm1d(4), OwnNorm(4))  # fmt: skip
    net[1].running_mean.fill_(0.25)
    net.eval()
    tensors = dict(net.state_dict(keep_vars=True))
    converted = convert_sync_batchnorm(net)
    assert converted is net
    assert [type(m) for m in (net[1], net[2][0], net[3], net[4])] == [SyncBatchNorm2d, SyncBatchNorm2d,
                                                                      nn.BatchNorm1d, OwnNorm]  # fmt: skip
    assert not net[1].training and net[2][0].weight is None
    after = net.state_dict(keep_vars=True)
    assert list(after) == list(tensors)
    assert all(after[k] is tensors[k] for k in tensors)  # the very same parameters and buffers
    assert type(convert_sync_batchnorm(nn.BatchNorm2d(2))) is SyncBatchNorm2d
