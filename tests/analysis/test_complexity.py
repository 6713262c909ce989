import pytest
from torch import nn

from ldwseg import LDWPool2d, LDWUnpool2d
from ldwseg.analysis.complexity import count_flops, count_parameters, format_count


def test_parameters_of_a_conv():
    assert count_parameters(nn.Conv2d(3, 8, 3)) == 3 * 8 * 3 * 3 + 8 == 224


def test_tied_parameters_counted_once():
    pool = LDWPool2d(wavelet="db2")
    pair = nn.ModuleDict({"pool": pool, "unpool": LDWUnpool2d(pool)})
    assert count_parameters(pair) == count_parameters(pool) == 2 * 4
    linear = nn.Linear(5, 5, bias=False)
    assert count_parameters(nn.Sequential(linear, linear)) == 25


@pytest.mark.parametrize(("groups", "stride"), [(1, 1), (2, 2)])
def test_conv_flops_match_the_formula(groups, stride):
    n, cin, cout, k, h, w = 2, 4, 6, 3, 11, 14
    conv = nn.Conv2d(cin, cout, k, stride=stride, groups=groups)
    hout, wout = (h - k) // stride + 1, (w - k) // stride + 1
    # FlopCounterMode: 2 FLOPs per multiply-add, bias not counted
    assert count_flops(conv, (n, cin, h, w)) == 2 * n * (cin // groups) * cout * k * k * hout * wout


def test_linear_flops_and_elementwise_ops_are_free():
    model = nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.BatchNorm1d(7))
    assert count_flops(model, (3, 10)) == 2 * 3 * 10 * 7


@pytest.mark.parametrize(("wavelet", "taps"), [("haar", 2), ("db2", 4), ("db3", 6)])
def test_ldw_pooling_flops_are_all_counted(wavelet, taps):
    # each of the 4 bands at each output position is a K x K weighted sum of the input:
    # 2 * 4 * K^2 FLOPs per input channel and output position. For K = 2m > 2 the products
    # also run over the periodic margin of m - 1 rows and columns (one flat window per
    # shift, see ldwseg.pooling.functional), and every product counts, including the
    # ones accumulated in place.
    n, c, h, w = 2, 3, 16, 12
    m = taps // 2
    hp, wp = h // 2 + m - 1, w // 2 + m - 1
    window = c * hp * wp - (m - 1) * (wp + 1)
    expected = m * m * 2 * 4 * 4 * n * window
    if m == 1:
        assert expected == 2 * 4 * taps * taps * n * c * (h // 2) * (w // 2)
    pool = LDWPool2d(c, wavelet=wavelet)
    assert count_flops(pool, (n, c, h, w)) == expected
    assert count_flops(LDWUnpool2d(pool), (n, 4 * c, h // 2, w // 2)) == expected


def test_training_flags_restored_and_statistics_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model.train()
    model[1].eval()
    count_flops(model, (1, 3, 8, 8))
    assert model.training and not model[1].training and model[0].training
    model.train()
    count_flops(model, (1, 3, 8, 8))  # batch of 1 would fail in training mode
    assert model[1].num_batches_tracked.item() == 0
    assert model[1].running_mean.abs().sum().item() == 0


def test_device_mismatch_message():
    with pytest.raises(ValueError, match=r"the model is on cpu but device='meta'"):
        count_flops(nn.Linear(2, 2), (1, 2), device="meta")


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1.00 K"),
        (1_234_567, "1.23 M"),
        (4_560_000_000, "4.56 G"),
        (999_999, "1.00 M"),
        (2.5, "2.5"),
        (7 * 10**18, "7000.00 P"),
    ],
)
def test_format_count(n, text):
    assert format_count(n) == text
