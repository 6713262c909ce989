"""Drawing primitives of the synthetic data set: textures, filled shapes and thin curves.

Every function draws on a square ``size x size`` canvas from a ``numpy`` random generator, so
a scene is a pure function of its seed. Masks are boolean ``(size, size)`` arrays; textures are
float32 ``(size, size, 3)`` RGB arrays in ``[0, 255]``.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

__all__ = ["TEXTURES", "background", "curve_mask", "hsv_color", "shape_mask", "texture"]

TEXTURES = ("flat", "stripes", "checker", "blotches", "radial")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(y, x)``."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return y, x


def hsv_color(hue: float, saturation: float, value: float) -> np.ndarray:
    """An RGB colour in ``[0, 255]`` from hue in degrees and saturation, value in ``[0, 1]``."""
    rgb = colorsys.hsv_to_rgb((hue % 360.0) / 360.0, float(np.clip(saturation, 0, 1)), float(np.clip(value, 0, 1)))
    return np.array(rgb, dtype=np.float32) * 255.0


def smooth_noise(rng: np.random.Generator, size: int, *, cells: int) -> np.ndarray:
    """Noise in ``[-1, 1]`` with about ``cells`` blobs per side: a coarse random grid, upsampled bicubically."""
    coarse = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), -1.0, 1.0)


def texture(rng: np.random.Generator, size: int, color: np.ndarray, kind: str) -> np.ndarray:
    """A ``kind`` texture around ``color``: its brightness is ``color * (1 - 0.55 t)``, ``t`` in ``[0, 1]``.

    ``stripes``: ``t = (1 + sin(2 pi f (x cos a + y sin a) + p)) / 2``; ``checker``: squares of
    side 2-6 px; ``blotches``: smooth noise; ``radial``: ``t`` grows from a random centre.
    """
    y, x = _grid(size)
    if kind == "flat":
        t = np.zeros((size, size), dtype=np.float32)
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(3.0, 8.0)
        t = 0.5 + 0.5 * np.sin(2 * np.pi / period * (x * np.cos(angle) + y * np.sin(angle)) + rng.uniform(0, 6.3))
    elif kind == "checker":
        side = int(rng.integers(2, 7))
        t = ((x // side + y // side) % 2).astype(np.float32)
    elif kind == "blotches":
        t = 0.5 + 0.5 * smooth_noise(rng, size, cells=int(rng.integers(6, 14)))
    elif kind == "radial":
        cy, cx = rng.uniform(0, size, size=2)
        t = np.clip(np.hypot(y - cy, x - cx) / (0.5 * size), 0.0, 1.0)
    else:
        raise ValueError(f"unknown texture {kind!r}; expected one of {TEXTURES}")
    return color[None, None, :] * (1.0 - 0.55 * t[..., None])


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear gradient between two muted colours plus smooth and fine noise."""
    y, x = _grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (x * np.cos(angle) + y * np.sin(angle)) / size
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    first, second = (hsv_color(rng.uniform(0, 360), rng.uniform(0.0, 0.45), rng.uniform(0.3, 0.95)) for _ in range(2))
    image = first * (1.0 - ramp[..., None]) + second * ramp[..., None]
    image += 30.0 * smooth_noise(rng, size, cells=int(rng.integers(3, 10)))[..., None]
    return image + rng.normal(0.0, 6.0, size=image.shape).astype(np.float32)


def shape_mask(rng: np.random.Generator, size: int, kind: str, *, radius: float) -> np.ndarray:
    """A filled ``disk``, ``rectangle``, ``triangle`` or ``ring`` of about ``radius`` px at a random place."""
    y, x = _grid(size)
    cy, cx = rng.uniform(0.05 * size, 0.95 * size, size=2)
    angle = rng.uniform(0, np.pi)
    dy, dx = y - cy, x - cx
    if kind == "disk":
        return np.hypot(dy, dx) < radius
    if kind == "ring":
        distance = np.hypot(dy, dx)
        inner = min(radius * rng.uniform(0.45, 0.7), radius - 1.5)
        return (distance < radius) & (distance >= inner)
    if kind == "rectangle":
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        return (np.abs(u) < radius * rng.uniform(0.6, 1.0)) & (np.abs(v) < radius * rng.uniform(0.35, 0.9))
    if kind == "triangle":
        corners = angle + 2 * np.pi / 3 * np.arange(3) + rng.uniform(-0.3, 0.3, size=3)
        px, py = cx + 1.2 * radius * np.cos(corners), cy + 1.2 * radius * np.sin(corners)
        # Inside <=> the point lies on the same side of all three edges (signs of the cross products agree).
        sides = np.stack(
            [(px[(k + 1) % 3] - px[k]) * (y - py[k]) - (py[(k + 1) % 3] - py[k]) * (x - px[k]) for k in range(3)]
        )
        return (sides >= 0).all(axis=0) | (sides <= 0).all(axis=0)
    raise ValueError(f"unknown shape {kind!r}; expected disk, rectangle, triangle or ring")


def curve_mask(rng: np.random.Generator, size: int, *, width: int) -> np.ndarray:
    """A cubic Bezier curve ``width`` (1-3) px thick from one random point to another.

    ``B(t) = (1-t)^3 P0 + 3 (1-t)^2 t P1 + 3 (1-t) t^2 P2 + t^3 P3``, sampled densely, rounded
    to pixels and thickened by a ``width x width`` dilation.
    """
    points = rng.uniform(-0.1 * size, 1.1 * size, size=(4, 2))
    t = np.linspace(0.0, 1.0, 8 * size)[:, None]
    weights = np.hstack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3])  # Bernstein polynomials
    curve = weights @ points
    pixels = np.floor(curve).astype(np.int64)
    inside = (pixels >= 0).all(axis=1) & (pixels < size).all(axis=1)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[pixels[inside, 1], pixels[inside, 0]] = 1
    if width > 1:
        mask = cv2.dilate(mask, np.ones((width, width), dtype=np.uint8))
    return mask.astype(bool)
