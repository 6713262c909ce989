"""Class scores of a segmentation network, with optional test-time augmentation (TTA).

Without augmentation the scores are the network's logits at the evaluation scale,
resized to the label's size (:func:`~ldwseg.inference.scale.scaled_logits`). With it, as
mmsegmentation's ``--tta``, they are the class probabilities (softmax) averaged over every
combination of

* ``scales``: factors of the evaluation scale (``0.75, 1, 1.25`` runs the image at three
  sizes around it), and
* ``flip``: the image and its left-right mirror, the mirror's probabilities flipped back.

The argmax of either is the predicted class. A network whose filters are not symmetric
(a learned LDW filter bank need not be) is not flip-equivariant, so flipping may help it
differently from max pooling; ``ldwseg evaluate --tta flip`` measures it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .scale import scaled_logits

__all__ = ["TTA", "class_scores", "labels", "parse_tta"]


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: ``flip`` (left-right) and ``scales`` (factors of the evaluation scale)."""

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    @property
    def active(self) -> bool:
        return self.flip or self.scales != (1.0,)

    def __str__(self) -> str:
        parts = (["flip"] if self.flip else []) + ([f"{s:g}" for s in self.scales] if self.scales != (1.0,) else [])
        return ",".join(parts) or "none"


def parse_tta(text: str | None) -> TTA:
    """``"flip"``, ``"0.75,1,1.25"`` or ``"flip,0.75,1,1.25"`` (``None`` or ``""``: none) as a :class:`TTA`.

    >>> parse_tta("flip,0.75,1,1.25")
    TTA(flip=True, scales=(0.75, 1.0, 1.25))
    """
    flip, scales = False, []
    for item in (text or "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item == "flip":
            flip = True
            continue
        try:
            scale = float(item)
        except ValueError:
            raise ConfigError(f"--tta {text!r}: expected 'flip' and/or scale factors such as 0.75,1,1.25") from None
        if not 0 < scale <= 4:
            raise ConfigError(f"--tta {text!r}: a scale factor must be in (0, 4], got {item}")
        scales.append(scale)
    return TTA(flip=flip, scales=tuple(scales) or (1.0,))


def class_scores(
    model: nn.Module, images: Tensor, *, scale: float = 1.0, size: Sequence[int] | None = None, tta: TTA = TTA()
) -> Tensor:
    """Scores ``(N, K, H', W')`` whose argmax over dim 1 is the prediction (see the module docstring).

    Args:
        model: maps ``(N, C, h, w)`` to ``(N, K, h, w)`` logits.
        images: ``(N, C, H, W)`` normalised images.
        scale: the evaluation scale (``data.eval_scale``).
        size: ``(H', W')`` of the scores; ``None`` is the images' size.
        tta: the augmentations; none returns the logits themselves.
    """
    if not tta.active:
        return scaled_logits(model, images, scale=scale, size=size)
    total: Tensor | None = None
    for factor in tta.scales:
        for flipped in (False, True) if tta.flip else (False,):
            x = images.flip(-1) if flipped else images
            probs = scaled_logits(model, x, scale=scale * factor, size=size).float().softmax(dim=1)
            probs = probs.flip(-1) if flipped else probs
            total = probs if total is None else total + probs
    assert total is not None  # at least one scale
    return total / (len(tta.scales) * (2 if tta.flip else 1))


def labels(scores: Tensor) -> Tensor:
    """The predicted classes ``(N, 1, H, W)`` as ``uint8`` (at most 256 classes) from :func:`class_scores`."""
    return scores.argmax(dim=1, keepdim=True).to(torch.uint8)
