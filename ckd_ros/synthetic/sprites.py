"""Object sprites: alpha mask, RGB appearance and thermal signature drawn at a fixed base size.

A sprite is resized per frame to the object's current box, so rendering is O(box area).
The RGB pattern and the thermal pattern are drawn independently (stripes/checks in RGB,
a body temperature with a hot spot in thermal): the two modalities show different textures.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

SPRITE = 96  # base resolution of every sprite (pixels per side)
SHAPES = ("ellipse", "rect", "diamond")


@dataclass
class Sprite:
    mask: np.ndarray  # SxS float32 in [0, 1]; its bounding box is the whole sprite
    rgb: np.ndarray  # SxSx3 float32 in [0, 255]
    heat: np.ndarray  # SxS float32: kelvin above ambient at full signature
    aspect: float  # height / width of the object
    hue: float
    shape: str
    heat_level: float
    pattern_seed: int


def _mask(shape: str) -> np.ndarray:
    s = SPRITE
    m = np.zeros((s, s), np.float32)
    if shape == "ellipse":
        cv2.ellipse(m, (s // 2, s // 2), (s // 2, s // 2), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    elif shape == "rect":
        r = s // 6  # rounded corners
        cv2.rectangle(m, (r, 0), (s - 1 - r, s - 1), 1.0, -1)
        cv2.rectangle(m, (0, r), (s - 1, s - 1 - r), 1.0, -1)
        for cx, cy in ((r, r), (s - 1 - r, r), (r, s - 1 - r), (s - 1 - r, s - 1 - r)):
            cv2.circle(m, (cx, cy), r, 1.0, -1, cv2.LINE_AA)
    else:
        pts = np.array([[s // 2, 0], [s - 1, s // 2], [s // 2, s - 1], [0, s // 2]], np.int32)
        cv2.fillConvexPoly(m, pts, 1.0, cv2.LINE_AA)
    return m


def _hue_rgb(hue: float, sat: float, val: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, sat, val), np.float32) * 255.0


def make_sprite(rng: np.random.Generator, hue: Optional[float] = None, shape: Optional[str] = None,
                heat: Optional[float] = None, aspect: Optional[float] = None,
                pattern_seed: Optional[int] = None) -> Sprite:
    """A random object. Pass hue/shape/heat to build look-alikes (distractors) of another sprite."""
    s = SPRITE
    shape = shape or SHAPES[int(rng.integers(len(SHAPES)))]
    hue = float(rng.random()) if hue is None else hue
    heat = float(rng.uniform(8.0, 16.0)) if heat is None else heat
    aspect = float(rng.uniform(0.6, 1.6)) if aspect is None else aspect
    pattern_seed = int(rng.integers(2**31)) if pattern_seed is None else int(pattern_seed)
    prng = np.random.default_rng(pattern_seed)

    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    # RGB: two colours in stripes or checks, a dark outline
    c1 = _hue_rgb(hue, prng.uniform(0.6, 1.0), prng.uniform(0.7, 1.0))
    c2 = _hue_rgb(hue + prng.uniform(0.3, 0.7), prng.uniform(0.3, 0.9), prng.uniform(0.3, 0.8))
    freq = prng.uniform(2.0, 5.0)
    angle = prng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    if prng.random() < 0.5:
        sel = (np.sin(2 * np.pi * freq * u) > 0).astype(np.float32)
    else:
        sel = ((np.floor(xx * freq * 1.5) + np.floor(yy * freq * 1.5)) % 2).astype(np.float32)
    rgb = sel[..., None] * c1 + (1 - sel[..., None]) * c2
    mask = _mask(shape)
    edge = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((7, 7), np.uint8))
    rgb = np.where(edge[..., None] > 0, rgb, rgb * 0.35).astype(np.float32)

    # thermal: warm body, hotter spot (engine/head) at a random place, cooler rim
    hx, hy = prng.uniform(0.3, 0.7, size=2)
    spot = np.exp(-((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * 0.12**2))
    rim = cv2.GaussianBlur(mask, (0, 0), s / 12)
    body = heat * (0.55 + 0.45 * rim) + 0.8 * heat * spot
    return Sprite(mask=mask, rgb=rgb.astype(np.float32), heat=(body * mask).astype(np.float32), aspect=aspect,
                  hue=hue, shape=shape, heat_level=heat, pattern_seed=pattern_seed)


def place(size_wh: Tuple[int, int], frame_wh: Tuple[int, int], center: Tuple[float, float]):
    """Integer box (x, y, w, h) of an object of size_wh centred at `center`, and the part in the frame.

    Returns (box, (fx0, fy0, fx1, fy1) frame slice, (sx0, sy0) offset into the resized sprite), or
    None when the object is completely outside the frame.
    """
    w, h = max(2, int(round(size_wh[0]))), max(2, int(round(size_wh[1])))
    x0, y0 = int(round(center[0] - w / 2)), int(round(center[1] - h / 2))
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame_wh[0], x0 + w), min(frame_wh[1], y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return (x0, y0, w, h), (fx0, fy0, fx1, fy1), (fx0 - x0, fy0 - y0)


def render(sprite: Sprite, rgb: np.ndarray, temp: np.ndarray, center: Tuple[float, float],
           width: float, rgb_gain: float, heat_scale: float):
    """Alpha-blend the sprite into float images `rgb` (HxWx3) and `temp` (HxW kelvin), in place.

    Object temperature = mean temperature of the background under it + heat_scale * signature, so
    heat_scale -> 0 is a real thermal crossover (a flat patch at ambient, no contrast). Returns the
    integer box (x, y, w, h) or None when off-frame.
    """
    h_img, w_img = temp.shape
    placed = place((width, width * sprite.aspect), (w_img, h_img), center)
    if placed is None:
        return None
    (x0, y0, w, h), (fx0, fy0, fx1, fy1), (sx0, sy0) = placed
    interp = cv2.INTER_AREA if w < SPRITE else cv2.INTER_LINEAR
    sy1, sx1 = sy0 + (fy1 - fy0), sx0 + (fx1 - fx0)
    m = cv2.resize(sprite.mask, (w, h), interpolation=interp)[sy0:sy1, sx0:sx1]
    c = cv2.resize(sprite.rgb, (w, h), interpolation=interp)[sy0:sy1, sx0:sx1] * rgb_gain
    q = cv2.resize(sprite.heat, (w, h), interpolation=interp)[sy0:sy1, sx0:sx1]
    roi = rgb[fy0:fy1, fx0:fx1]
    roi += m[..., None] * (c - roi)
    troi = temp[fy0:fy1, fx0:fx1]
    ambient = float(troi.mean())
    troi += m * (ambient + heat_scale * q - troi)
    return (x0, y0, w, h)
