"""SyntheticScene: a seeded RGB-thermal scene rendered frame by frame, with the target's box.

`frame(t)` is a pure function of (seed, size, scenario, period, t): random access, no state, so
the camera node can stream it forever and `make_sequence` gets identical frames.

Scenarios (one effect each, strong; `mixed` = two compatible effects; `clean` = none):
night (RGB goes dark and noisy, thermal unaffected), crossover (the target cools to the
temperature of its background), occlusion (a pole sweeps across the target), distractors
(look-alikes, each differing from the target in one modality only, one crossing the target),
scale (the target grows to 1.8x then shrinks to 0.55x), camera_motion (fast pan plus shake).
Effects are timed by `phase = (t mod period) / period`, so each happens once per period.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import cv2
import numpy as np

from ckd_ros.synthetic.noise import blob_labels, fractal_noise, noise_bank
from ckd_ros.synthetic.sprites import Sprite, make_sprite, render

EFFECTS = ("night", "crossover", "occlusion", "distractors", "scale", "camera_motion")
SCENARIOS = ("clean",) + EFFECTS + ("mixed",)
KELVIN = 273.15
COUNTS_PER_K = 100.0  # radiometric "TLinear" 16-bit: counts = kelvin * 100 (0.01 K resolution)
NOISE_FRAMES = 8

Box = Tuple[float, float, float, float]


def _smoothstep(a: float, b: float, x: float) -> float:
    u = min(1.0, max(0.0, (x - a) / (b - a)))
    return u * u * (3 - 2 * u)


class _Wave:
    """Sum of two sines: smooth deterministic 1-D motion, |value| <= amp, |speed| <= max_speed."""

    def __init__(self, rng: np.random.Generator, amp: float, max_speed: float):
        self.amp = max(0.0, amp)
        split = rng.uniform(0.55, 0.85)
        self.amps = (self.amp * split, self.amp * (1 - split))
        # angular frequencies bounded so the summed speed stays under max_speed
        wmax = max_speed / max(self.amp, 1e-6)
        self.freqs = (rng.uniform(0.35, 0.7) * wmax, rng.uniform(0.7, 1.0) * wmax)
        self.phases = rng.uniform(0, 2 * np.pi, size=2)

    def __call__(self, t: float) -> float:
        return sum(a * math.sin(w * t + p) for a, w, p in zip(self.amps, self.freqs, self.phases))


def _pick_scenario(rng: np.random.Generator, scenario: Optional[str]) -> Tuple[str, frozenset]:
    if scenario is None:
        scenario = SCENARIOS[int(rng.integers(len(SCENARIOS)))]
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {SCENARIOS} or None (seeded choice)")
    if scenario == "clean":
        return scenario, frozenset()
    if scenario != "mixed":
        return scenario, frozenset([scenario])
    while True:  # night + crossover together would blind both cameras at once
        pair = frozenset(rng.choice(EFFECTS, size=2, replace=False).tolist())
        if pair != {"night", "crossover"}:
            return scenario, pair


class SyntheticScene:
    """Deterministic RGB-T scene. `size` is (width, height) like the camera resolution 640x512."""

    def __init__(self, seed: int, size: Tuple[int, int] = (640, 512), scenario: Optional[str] = None,
                 period: int = 100):
        self.seed = int(seed)
        self.width, self.height = int(size[0]), int(size[1])
        if self.width < 64 or self.height < 64:
            raise ValueError(f"size {size} too small: need at least 64x64")
        self.period = max(10, int(period))
        rng = np.random.default_rng(self.seed)
        self.scenario, self.effects = _pick_scenario(rng, scenario)
        self._build_background(rng)
        self._build_objects(rng)
        self._rgb_noise = noise_bank(rng, NOISE_FRAMES, (self.height, self.width, 3), 2.5)
        self._tir_noise = noise_bank(rng, NOISE_FRAMES, (self.height, self.width), 0.05 * COUNTS_PER_K)
        # microbolometer fixed-pattern noise: per-column offsets (0.1 K)
        self._tir_fpn = (rng.standard_normal(self.width) * 0.1 * COUNTS_PER_K).astype(np.float32)
        self.brightness = float(rng.uniform(0.75, 1.15))

    # ---- set-up ------------------------------------------------------------------------------------
    def _build_background(self, rng: np.random.Generator) -> None:
        w, h = self.width, self.height
        self.margin = int(0.25 * min(w, h)) if "camera_motion" in self.effects else int(0.08 * min(w, h))
        ch, cw = h + 2 * self.margin, w + 2 * self.margin
        unit = min(w, h) / 512.0  # texture scales follow the resolution
        labels = blob_labels(rng, ch, cw, 14, (int(15 * unit) + 2, int(110 * unit) + 4))
        # RGB: two natural colours blended by large-scale noise, fine grain, shared blobs, own clutter
        n_large = fractal_noise(rng, ch, cw, base=max(4, int(64 * unit)), octaves=5)
        n_fine = fractal_noise(rng, ch, cw, base=2, octaves=3)
        hue = rng.uniform(0, 1)
        cols = [np.array(cv2.cvtColor(np.uint8([[[int(179 * ((hue + d) % 1)), s, v]]]), cv2.COLOR_HSV2RGB)[0, 0],
                         np.float32) for d, s, v in ((0.0, rng.integers(40, 140), rng.integers(70, 200)),
                                                     (rng.uniform(0.05, 0.5), rng.integers(30, 160),
                                                      rng.integers(60, 220)))]
        rgb = cols[0] * (1 - n_large[..., None]) + cols[1] * n_large[..., None]
        rgb += (n_fine[..., None] - 0.5) * 50
        levels_rgb = rng.uniform(-90, 90, size=(15, 3)).astype(np.float32)
        levels_rgb[0] = 0
        rgb += levels_rgb[labels]
        own = blob_labels(rng, ch, cw, 8, (int(5 * unit) + 2, int(30 * unit) + 3))
        own_levels = rng.uniform(-80, 80, size=(9, 3)).astype(np.float32)
        own_levels[0] = 0
        rgb += own_levels[own]
        self._bg_rgb = np.clip(rgb, 0, 255).astype(np.float32)

        # thermal (kelvin): independent large/fine fields, the shared blobs at unrelated levels,
        # thermal-only hot spots (lamps, vents) that the RGB camera does not see
        self.ambient = float(rng.uniform(0.0, 30.0)) + KELVIN
        m_large = fractal_noise(rng, ch, cw, base=max(4, int(96 * unit)), octaves=4)
        m_fine = fractal_noise(rng, ch, cw, base=3, octaves=2)
        temp = self.ambient + 5.0 * (m_large - 0.5) + 0.8 * (m_fine - 0.5)
        levels_t = rng.uniform(-6, 6, size=15).astype(np.float32)
        levels_t[0] = 0
        temp += cv2.GaussianBlur(levels_t[labels], (0, 0), 2.0 * unit + 0.5)
        hot = blob_labels(rng, ch, cw, 6, (int(4 * unit) + 2, int(18 * unit) + 3))
        hot_levels = rng.uniform(3, 12, size=7).astype(np.float32)
        hot_levels[0] = 0
        temp += cv2.GaussianBlur(hot_levels[hot], (0, 0), 1.5 * unit + 0.5)
        self._bg_temp = temp.astype(np.float32)

        # camera: slow drift, or for camera_motion a fast pan and a shake
        strong = "camera_motion" in self.effects
        self._pan = (_Wave(rng, 0.9 * self.margin, (6.0 if strong else 1.0) * unit),
                     _Wave(rng, 0.9 * self.margin, (4.0 if strong else 0.7) * unit))
        self._shake_amp = (5.0 if strong else 0.0) * unit
        self._shake_phase = rng.uniform(0, 2 * np.pi, size=4)

    def _build_objects(self, rng: np.random.Generator) -> None:
        w, h = self.width, self.height
        unit = min(w, h) / 512.0
        self.target: Sprite = make_sprite(rng)
        self.scale_range = (0.55, 1.8) if "scale" in self.effects else (0.87, 1.15)
        smax = self.scale_range[1]
        # base width so the largest box (either side) is at most ~28% of the short image side
        cap = 0.28 * min(w, h) / (smax * max(1.0, self.target.aspect))
        self.base_width = float(min(cap, rng.uniform(0.09, 0.16) * min(w, h)))
        self._scale_wave = _Wave(rng, 1.0, 2 * np.pi / 150)
        half_w = smax * self.base_width / 2 + self._shake_amp + 2
        half_h = smax * self.base_width * self.target.aspect / 2 + self._shake_amp + 2
        speed = float(rng.uniform(2.0, 5.0)) * unit
        self._traj = (_Wave(rng, w / 2 - half_w, speed), _Wave(rng, h / 2 - half_h, speed * 0.8))

        # distractors: look-alikes differing in ONE modality (so fusing both disambiguates)
        self.distractors: List[Tuple[Sprite, _Wave, _Wave, float]] = []
        similar = "distractors" in self.effects
        count = 3 if similar else int(rng.integers(0, 3))
        tgt = self.target
        for k in range(count):
            if similar and k % 2 == 0:  # RGB twin (same colours and pattern), thermally cold
                sprite = make_sprite(rng, hue=(tgt.hue + rng.uniform(-0.02, 0.02)) % 1.0, shape=tgt.shape,
                                     heat=float(rng.uniform(0.0, 1.5)), aspect=tgt.aspect,
                                     pattern_seed=tgt.pattern_seed)
            elif similar:  # thermal twin (same shape and heat), other colours
                sprite = make_sprite(rng, hue=(tgt.hue + rng.uniform(0.3, 0.7)) % 1.0, shape=tgt.shape,
                                     heat=tgt.heat_level, aspect=tgt.aspect)
            else:
                sprite = make_sprite(rng)
            width = self.base_width * float(rng.uniform(0.8, 1.2))
            self.distractors.append((sprite, _Wave(rng, w / 2 - width / 2, speed),
                                     _Wave(rng, h / 2 - width / 2, speed), width))
        self._occluder_tone = (rng.uniform(50, 140, size=3).astype(np.float32), float(rng.uniform(-1.0, 2.0)))

    # ---- per-frame state ---------------------------------------------------------------------------
    def phase(self, t: int) -> float:
        return (t % self.period) / self.period

    def camera(self, t: int) -> Tuple[int, int]:
        """Top-left corner of the view in the background canvas (integer pixels)."""
        m = self.margin
        return int(round(m + self._pan[0](t))), int(round(m + self._pan[1](t)))

    def _shake(self, t: int) -> Tuple[float, float]:
        a, p = self._shake_amp, self._shake_phase
        if a == 0:
            return 0.0, 0.0
        return (a * (0.6 * math.sin(0.9 * t + p[0]) + 0.4 * math.sin(2.3 * t + p[1])),
                a * (0.6 * math.sin(0.7 * t + p[2]) + 0.4 * math.sin(1.9 * t + p[3])))

    def target_scale(self, t: int) -> float:
        lo, hi = self.scale_range
        if "scale" in self.effects:  # 1 -> hi -> lo -> 1 once per period
            s = math.sin(2 * np.pi * self.phase(t))
            return hi**s if s >= 0 else lo ** (-s)
        return math.exp(self._scale_wave(t) * math.log(hi))

    def target_center(self, t: int) -> Tuple[float, float]:
        sx, sy = self._shake(t)
        return self.width / 2 + self._traj[0](t) + sx, self.height / 2 + self._traj[1](t) + sy

    def rgb_gain(self, t: int) -> float:
        if "night" not in self.effects:
            return self.brightness
        ph = self.phase(t)  # dusk over 10-30% of the period, dark until 90%, dawn after
        dark = _smoothstep(0.1, 0.3, ph) * (1 - _smoothstep(0.9, 1.0, ph))
        return self.brightness * (1 - 0.93 * dark)

    def heat_scale(self, t: int) -> float:
        if "crossover" not in self.effects:
            return 1.0
        ph = self.phase(t)  # cools to the background's temperature over 20-40%, stays until 85%
        return 1 - 0.98 * _smoothstep(0.2, 0.4, ph) * (1 - _smoothstep(0.85, 0.98, ph))

    # ---- rendering ---------------------------------------------------------------------------------
    def frame(self, t: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb HxWx3 uint8, thermal HxW uint16 counts = kelvin*100, box float32 [x, y, w, h])."""
        w, h = self.width, self.height
        cx, cy = self.camera(t)
        rgb = self._bg_rgb[cy:cy + h, cx:cx + w].copy()
        temp = self._bg_temp[cy:cy + h, cx:cx + w].copy()
        tcx, tcy = self.target_center(t)
        width = self.base_width * self.target_scale(t)
        ph = self.phase(t)

        for k, (sprite, wx, wy, dwidth) in enumerate(self.distractors):
            if "distractors" in self.effects and k == 0:  # crosses just behind the target mid-period
                off = (ph - 0.5) * 10 * width
                pos = (tcx + off, tcy + 0.35 * width * self.target.aspect)
            else:
                pos = (w / 2 + wx(t), h / 2 + wy(t))
            render(sprite, rgb, temp, pos, dwidth, 1.0, 1.0)

        box = render(self.target, rgb, temp, (tcx, tcy), width, 1.0, self.heat_scale(t))
        if "occlusion" in self.effects:
            self._render_occluder(rgb, temp, tcx + (ph - 0.5) * 8 * width, 0.45 * width)

        gain = self.rgb_gain(t)
        noise_gain = 1.0 + 1.5 * (1 - gain / self.brightness)  # dark frames: amplified sensor noise
        i = (t * 5 + self.seed) % NOISE_FRAMES
        rgb *= gain
        rgb += self._rgb_noise[i] * noise_gain
        rgb_u8 = np.clip(rgb, 0, 255).astype(np.uint8)

        temp = cv2.GaussianBlur(temp, (0, 0), 0.9 * min(w, h) / 512 + 0.3)  # softer thermal optics
        counts = temp * COUNTS_PER_K + self._tir_fpn + self._tir_noise[i]
        tir = np.clip(counts, 0, 65535).astype(np.uint16)
        assert box is not None  # the trajectory keeps the target inside the frame
        return rgb_u8, tir, np.asarray(box, np.float32)

    def _render_occluder(self, rgb: np.ndarray, temp: np.ndarray, x: float, width: float) -> None:
        x0, x1 = int(round(x - width / 2)), int(round(x + width / 2))
        x0, x1 = max(0, x0), min(self.width, x1)
        if x1 <= x0:
            return
        colour, dt = self._occluder_tone
        shade = np.linspace(0.7, 1.1, x1 - x0, dtype=np.float32)[None, :, None]
        rgb[:, x0:x1] = colour * shade
        temp[:, x0:x1] = self.ambient + dt
