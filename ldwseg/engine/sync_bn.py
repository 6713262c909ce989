"""BatchNorm2d whose training statistics span every rank of a CPU (gloo) process group.

torch's :class:`torch.nn.SyncBatchNorm` has CUDA kernels only, so ``--sync-bn`` under
``torchrun`` on CPUs uses :class:`SyncBatchNorm2d` instead (:func:`convert_sync_batchnorm`
puts it in place of every :class:`torch.nn.BatchNorm2d`). It is a BatchNorm2d: same
parameters, buffers and state-dict keys, and plain BatchNorm in eval mode, so its
checkpoints evaluate in one process like any other.

The maths, per channel, with ``K`` the running mean (the same on every rank; zero without
running statistics): each rank ``r`` sums over its local batch ``n_r``,
``S1_r = sum(x - K)`` and ``S2_r = sum((x - K)^2)``; one all-reduce adds them over the
ranks (``n, S1, S2``), then

    mean = K + S1 / n,    var = S2 / n - (S1 / n)^2,    y = (x - mean) / sqrt(var + eps) * weight + bias

and, as BatchNorm does, ``running_mean <- (1 - m) running_mean + m mean`` and
``running_var <- (1 - m) running_var + m var n / (n - 1)`` (unbiased). The shift ``K`` and
the float64 sums keep ``S2 / n - (S1 / n)^2`` from cancelling digits when ``|mean| >> std``.

The gradient goes back through the all-reduce: the gradient of a sum over ranks is the
sum of every rank's gradient, so the backward all-reduces the gradients of ``S1`` and
``S2`` -- the sums of ``dy`` and ``dy (x - mean)`` of the standard SyncBatchNorm backward.
Under DDP, which averages the parameter gradients, this is the gradient of the mean of
the ranks' losses, as on one process with the whole batch.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .distributed import DistInfo

__all__ = ["SyncBatchNorm2d", "convert_sync_batchnorm", "sync_batch_norm", "sync_batchnorm"]

log = logging.getLogger(__name__)


class _AllReduceSum(torch.autograd.Function):
    """``dist.all_reduce`` (sum) with a backward: the all-reduce (sum) of the gradient.

    Written here because ``torch.distributed.nn.functional.all_reduce`` is deprecated (a
    FutureWarning on every call in torch 2.14) and its replacement is a private module.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor, group: dist.ProcessGroup | None) -> Tensor:
        ctx.group = group
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=ctx.group)
        return total, None


def _world(group: dist.ProcessGroup | None) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def sync_batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    momentum: float = 0.1,
    eps: float = 1e-5,
    group: dist.ProcessGroup | None = None,
) -> Tensor:
    """Training-mode batch norm of ``x`` with the statistics of the batches of every rank of ``group``.

    Like ``F.batch_norm(x, running_mean, running_var, weight, bias, training=True, ...)``
    with the mean and variance over the union of the ranks' batches (see the module
    docstring for the maths); the running statistics, when given, are updated in place
    with ``momentum``. Outside a process group (or in a group of one) it normalises the
    local batch. Every rank of ``group`` must call it, and later run the backward, in the
    same order: it is a collective.

    Args:
        x: input ``(N, C, *)``; half precision is normalised in float32.
        running_mean, running_var: ``(C,)`` buffers, or both ``None`` (no running statistics).
        weight, bias: ``(C,)`` affine parameters, or ``None``.
        momentum: the weight of this batch in the running statistics.
        eps: added to the variance.
        group: the process group; ``None``, the default one.

    Shape:
        - Input and output: ``(N, C, *)``.

    Example:
        >>> x = torch.randn(4, 3, 5, 5)
        >>> y = sync_batch_norm(x, None, None)
        >>> torch.testing.assert_close(y, torch.nn.functional.batch_norm(x, None, None, training=True))
    """
    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    shape = (1, channels) + (1,) * (x.dim() - 2)
    data = x.to(torch.promote_types(x.dtype, torch.float32))
    shift = torch.zeros(channels, dtype=torch.float64, device=x.device) if running_mean is None else running_mean
    centred = data - shift.detach().to(data.dtype).view(shape)
    count = torch.full((1,), x.numel() // channels, dtype=torch.float64, device=x.device)
    sums = torch.cat([centred.sum(dims, dtype=torch.float64), centred.square().sum(dims, dtype=torch.float64), count])
    if _world(group) > 1:
        sums = _AllReduceSum.apply(sums, group)
    s1, s2, n = sums[:channels], sums[channels:-1], sums[-1].detach()
    total = int(n.item())
    if total <= 1:
        raise ValueError(
            f"batch norm needs more than 1 value per channel when training, got {total} over all ranks (input of "
            f"shape {tuple(x.shape)} on this rank); use a larger batch or crop"
        )
    shifted_mean = s1 / n
    var = (s2 / n - shifted_mean.square()).clamp_min(0)
    scale = torch.rsqrt(var + eps)
    if weight is not None:
        scale = scale * weight
    y = (centred - shifted_mean.to(data.dtype).view(shape)) * scale.to(data.dtype).view(shape)
    if bias is not None:
        y = y + bias.to(data.dtype).view(shape)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            mean = shift.to(torch.float64) + shifted_mean
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_((var * n / (n - 1)).to(running_var.dtype), alpha=momentum)
    return y.to(x.dtype)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` whose training statistics are over the batches of all ranks.

    For CPU process groups (gloo), where :class:`torch.nn.SyncBatchNorm` cannot run; see
    :func:`sync_batch_norm`. In eval mode it is plain BatchNorm2d (the running statistics).
    ``group`` is the process group (``None``: the default one).

    Shape:
        - Input and output: ``(N, C, H, W)``.

    Example:
        >>> bn = SyncBatchNorm2d(3)
        >>> bn(torch.randn(2, 3, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        group: dist.ProcessGroup | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not self.training:
            return super().forward(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average, as BatchNorm does
                momentum = 1.0 / float(self.num_batches_tracked)
        return sync_batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, momentum=momentum, eps=self.eps,
            group=self.group,
        )  # fmt: skip


def convert_sync_batchnorm(module: nn.Module, *, group: dist.ProcessGroup | None = None) -> nn.Module:
    """``module`` with every :class:`torch.nn.BatchNorm2d` replaced by a :class:`SyncBatchNorm2d`.

    The new layers take over the old ones' parameters and buffers (the same tensors, so an
    optimizer made before still holds them) and their train/eval mode. Only layers whose
    type is exactly BatchNorm2d are replaced: a subclass may compute something else.
    Returns the new root when ``module`` itself is a BatchNorm2d.

    Example:
        >>> net = convert_sync_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
        >>> type(net[1]).__name__
        'SyncBatchNorm2d'
    """
    if type(module) is nn.BatchNorm2d:
        synced = SyncBatchNorm2d(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats, group=group,
            device="meta",
        )  # fmt: skip
        for name, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            setattr(synced, name, tensor)
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, group=group))
    return module


def sync_batchnorm(model: nn.Module, dist_info: DistInfo, device: torch.device) -> nn.Module:
    """``model`` with BatchNorm synced across the ``torchrun`` ranks (same parameters and state-dict keys):
    torch's SyncBatchNorm on CUDA (nccl), :class:`~ldwseg.engine.sync_bn.SyncBatchNorm2d` on the CPU (gloo),
    where torch's has no kernels."""
    if not dist_info.enabled:
        log.warning("--sync-bn (train.sync_bn) has no effect in one process (no torchrun group); ignoring it")
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return convert_sync_batchnorm(model)
