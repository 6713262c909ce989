"""Running a network on its input padded to a multiple of a stride."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ldwseg.models.layers.padding import pad_to_multiple, run_padded


@pytest.mark.parametrize(("size", "padded"), [((16, 16), (16, 16)), ((17, 30), (32, 32)), ((1, 1), (16, 16))])
def test_the_input_is_padded_at_the_bottom_and_right(size, padded):
    x = torch.rand(2, 3, *size)
    zeros, edge = pad_to_multiple(x, 16), pad_to_multiple(x, 16, mode="replicate")
    assert zeros.shape[-2:] == edge.shape[-2:] == padded
    assert_close(zeros[..., : size[0], : size[1]], x)
    assert torch.all(zeros[..., size[0] :, :] == 0) and torch.all(zeros[..., :, size[1] :] == 0)
    rows = torch.arange(padded[0]).clamp_max(size[0] - 1)
    cols = torch.arange(padded[1]).clamp_max(size[1] - 1)
    assert_close(edge, x[..., rows, :][..., cols])  # the last row and column repeated


def test_the_network_sees_the_padded_input_and_its_output_is_cropped_back():
    seen = []

    def net(z):
        seen.append(z.shape[-2:])
        return F.avg_pool2d(z, 3, stride=1, padding=1)

    x = torch.rand(1, 2, 9, 13)
    y = run_padded(net, x, 8, mode="replicate")
    assert seen == [(16, 16)] and y.shape == x.shape
    reference = F.avg_pool2d(F.pad(x, (0, 3, 0, 7), mode="replicate"), 3, stride=1, padding=1)[..., :9, :13]
    assert_close(y, reference)
