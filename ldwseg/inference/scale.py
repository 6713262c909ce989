"""Inference at the training scale: resize the image, run the network, resize the logits back.

A network trained on images resized by factors around ``s`` (``data.scale_min`` to
``data.scale_max``) sees objects at that scale; scored on images at their original size
it meets objects about ``1 / s`` times larger than any it trained on. As mmsegmentation
and the torchvision references do, evaluation therefore runs the network on the image
resized by ``data.eval_scale`` (the centre of the training range) and resizes the logits
bilinearly to the label's size, where the scores are counted (mmseg's
``postprocess_result``): the labels are never resampled.

Both resizes are bilinear with ``align_corners=False`` and no antialiasing: for a factor
of 1/2 the image resize averages each 2x2 block, as OpenCV's ``INTER_LINEAR`` (the
training augmentation's resize) does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["scaled_logits", "scaled_size"]


def scaled_size(size: Sequence[int], scale: float) -> tuple[int, int]:
    """``(round(H * scale), round(W * scale))``, each at least 1.

    >>> scaled_size((360, 480), 0.5), scaled_size((5, 7), 0.5)
    ((180, 240), (2, 4))
    """
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def scaled_logits(model: nn.Module, images: Tensor, *, scale: float = 1.0, size: Sequence[int] | None = None) -> Tensor:
    """``model`` run on ``images`` resized by ``scale``, its output resized to ``size``.

    Args:
        model: maps ``(N, C, h, w)`` to ``(N, K, h, w)`` logits.
        images: ``(N, C, H, W)``.
        scale: the resize factor before the network (1 runs it on ``images`` as they are).
        size: the ``(H', W')`` of the logits returned; ``None`` is the images' ``(H, W)``.

    Returns:
        ``(N, K, H', W')`` logits, bilinearly resized from the network's output where its
        size differs (in the output's dtype).

    Example:
        >>> import torch
        >>> net = nn.Conv2d(3, 2, 1)
        >>> tuple(scaled_logits(net, torch.zeros(1, 3, 36, 48), scale=0.5).shape)
        (1, 2, 36, 48)
    """
    size = tuple(images.shape[-2:]) if size is None else (int(size[0]), int(size[1]))
    inputs = images
    if scale != 1.0:
        inputs = F.interpolate(images, size=scaled_size(images.shape[-2:], scale), mode="bilinear", align_corners=False)
    logits = model(inputs)
    if tuple(logits.shape[-2:]) != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits
