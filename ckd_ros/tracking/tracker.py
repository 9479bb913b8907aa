"""CKD's test-time tracking loop (ckd-spec §2) plus an optional score-based LOST state.

With default parameters every number follows the official `OSTrack_twobranch` tracker: template
crop once (never updated), search crop around the last box, Hann-windowed argmax decode, map
back, clip. `lost_threshold` adds what a robot needs: a LOST state, during which the search
stays at the last confident box instead of drifting with low-score guesses.

Non-finite network outputs (NaN/inf maps, e.g. an FP16 engine that overflowed) never move the track:
such a frame is reported with the last good box and score 0.0, counts as a low-score frame towards
LOST (`lost_frames` in a row make the state LOST even with `lost_threshold` off), and is counted in
`Tracker.nonfinite_frames`. No NaN/inf ever leaves the tracker.
"""
from __future__ import annotations

import enum
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ckd_ros.boxes import check_box
from ckd_ros.tracking.postprocess import clip_box, decode, map_box_back, maps_finite
from ckd_ros.tracking.preprocess import normalize, sample_target
from ckd_ros.tracking.registration import Registration, check_registered_shapes

CLIP_MARGIN = 10  # px, official clip_box margin


class TrackState(enum.Enum):
    IDLE = "idle"  # no target
    TRACKING = "tracking"
    LOST = "lost"  # score below lost_threshold for lost_frames frames


@dataclass
class TrackerParams:
    template_factor: float = 2.0
    search_factor: float = 4.0
    template_size: Optional[int] = None  # None: from backend.config (else 128)
    search_size: Optional[int] = None  # None: from backend.config (else 256)
    lost_threshold: Optional[float] = None  # None or 0: never LOST (official behaviour)
    lost_frames: int = 5

    def validate(self) -> None:
        for name in ("template_factor", "search_factor"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
                raise ValueError(f"TrackerParams.{name} must be a positive number, got {value!r}")
        for name in ("template_size", "search_size"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, np.integer)) and value > 0):
                raise ValueError(f"TrackerParams.{name} must be a positive int or None, got {value!r}")
        thr = self.lost_threshold
        if thr is not None and not (isinstance(thr, numbers.Real) and 0.0 <= thr <= 1.0):
            raise ValueError(f"TrackerParams.lost_threshold must be in [0, 1] or None, got {thr!r}")
        if not (isinstance(self.lost_frames, (int, np.integer)) and self.lost_frames >= 1):
            raise ValueError(f"TrackerParams.lost_frames must be an int >= 1, got {self.lost_frames!r}")

    @property
    def lost_enabled(self) -> bool:
        return bool(self.lost_threshold)


@dataclass
class TrackResult:
    box_xywh: np.ndarray  # (4,) float64, RGB pixels
    score: float  # raw score-map value at the selected cell (1.0 on initialize; 0.0 for non-finite maps)
    state: TrackState
    timing_ms: Dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    nonfinite: bool = False  # the network returned NaN/inf maps: the box is the last good one


def _check_image(img, name: str, hint: str) -> None:
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name} image must be a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ValueError(f"{name} image must be uint8, got {img.dtype}; {hint}")
    ok = img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3))
    if not ok or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{name} image must be HxWx3 (or HxW gray), got shape {img.shape}; {hint}")


class Tracker:
    """CKD single-object tracker over any `ckd_ros.runtime.base.Backend`.

    Images are HxWx3 uint8 RGB; the thermal frame is 8-bit (HxWx3 with equal channels or HxW,
    see `ThermalNormalizer`), in thermal pixels when a non-identity `Registration` is given (its
    crops are taken through the homography, i.e. from the thermal frame warped into the RGB frame)
    and the same size as the RGB frame otherwise. Boxes are (x, y, w, h) in RGB pixels.
    """

    def __init__(self, backend, params: Optional[TrackerParams] = None,
                 registration: Optional[Registration] = None) -> None:
        self.backend = backend
        self.params = params if params is not None else TrackerParams()
        self.params.validate()
        self.registration = registration if registration is not None else Registration.identity()
        config = getattr(backend, "config", None)
        self.template_size = int(self.params.template_size or getattr(config, "template_size", None) or 128)
        self.search_size = int(self.params.search_size or getattr(config, "search_size", None) or 256)
        self.last_timing: Dict[str, float] = {}
        self.last_search_crops = None  # (rgb, tir) uint8 crops of the last frame, for debugging
        #: frames whose network maps held NaN/inf since this Tracker was made (node diagnostics,
        #: `ckd track` summary); never reset by `reset`/`initialize`
        self.nonfinite_frames = 0
        self.reset()

    # ---- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the target (state IDLE). The next `track` needs a new `initialize`."""
        self._state = TrackState.IDLE
        self._box: Optional[List[float]] = None  # search centre for the next frame
        self._confident_box: Optional[List[float]] = None
        self._low_count = 0

    @property
    def state(self) -> TrackState:
        return self._state

    @property
    def box(self) -> Optional[np.ndarray]:
        """The box the next search is centred on (while LOST: the last confident box)."""
        return None if self._box is None else np.array(self._box, dtype=np.float64)

    # ---- frames --------------------------------------------------------------------------
    def _prepare(self, rgb: np.ndarray, tir: np.ndarray):
        _check_image(rgb, "RGB", "convert to 8-bit RGB first")
        _check_image(tir, "thermal", "normalise it with ThermalNormalizer first")
        if self.registration.is_identity:  # with a homography any thermal size maps into the RGB frame
            check_registered_shapes(rgb.shape, tir.shape, self.registration)
        return rgb, tir

    def _crops(self, rgb, tir, box, factor, size):
        crop_rgb, resize_factor = sample_target(rgb, box, factor, size)
        if self.registration.is_identity:
            crop_tir, _ = sample_target(tir, box, factor, size)
        else:  # warp only the crop, not the whole thermal frame
            crop_tir = self.registration.sample_thermal(tir, box, factor, size)
        return crop_rgb, crop_tir, resize_factor

    def initialize(self, rgb: np.ndarray, tir: np.ndarray, box_xywh: Sequence[float]) -> TrackResult:
        """Set the target from a box (x, y, w, h) in RGB pixels; crops and stores the template.

        The box is validated by `ckd_ros.boxes.check_box` (finite, positive, overlapping the frame, at
        most `MAX_BOX_TO_FRAME` times the frame): `BoxError` (a ValueError) otherwise.
        """
        rgb, tir = self._prepare(rgb, tir)
        box = check_box(box_xywh, rgb.shape[1], rgb.shape[0])
        t0 = time.perf_counter()
        z_rgb, z_tir, _ = self._crops(rgb, tir, box, self.params.template_factor, self.template_size)
        self.backend.set_template(normalize(z_rgb), normalize(z_tir))
        self.reset()
        self._box = list(box)
        self._confident_box = list(box)
        self._state = TrackState.TRACKING
        self.last_timing = {"preprocess": (time.perf_counter() - t0) * 1e3}
        return TrackResult(np.array(box), 1.0, self._state, dict(self.last_timing))

    def track(self, rgb: np.ndarray, tir: np.ndarray) -> TrackResult:
        """One frame: search around the current box, return the new box, its score and the state."""
        if self._state is TrackState.IDLE:
            raise RuntimeError("Tracker.track() called with no target: call initialize() first")
        rgb, tir = self._prepare(rgb, tir)
        height, width = rgb.shape[:2]
        prev = self._box
        t0 = time.perf_counter()
        x_rgb, x_tir, resize_factor = self._crops(rgb, tir, prev, self.params.search_factor,
                                                  self.search_size)
        self.last_search_crops = (x_rgb, x_tir)
        inputs = (normalize(x_rgb), normalize(x_tir))
        t1 = time.perf_counter()
        maps = self.backend.infer_search(*inputs)
        t2 = time.perf_counter()
        try:
            score_map, size_map, offset_map = maps["score_map"], maps["size_map"], maps["offset_map"]
            finite = maps_finite(score_map, size_map, offset_map)
            if finite:
                box_n, score, _ = decode(score_map, size_map, offset_map)
        except (KeyError, ValueError) as exc:
            name = getattr(self.backend, "name", "?")
            raise RuntimeError(f"backend {name} returned bad maps: {exc}") from exc
        box = None
        if finite:
            # the official code uses the RGB crop's resize factor and the RGB frame size for both
            box = clip_box(map_box_back(box_n, prev, self.search_size, resize_factor), height, width,
                           CLIP_MARGIN)
            finite = math.isfinite(score) and all(math.isfinite(v) for v in box)
        if finite:
            self._update_state(box, score)
        else:
            self.nonfinite_frames += 1
            self._low_frame()
            box, score = list(self._box), 0.0
        t3 = time.perf_counter()
        self.last_timing = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                            "postprocess": (t3 - t2) * 1e3}
        return TrackResult(np.array(box), score, self._state, dict(self.last_timing), nonfinite=not finite)

    def _update_state(self, box: List[float], score: float) -> None:
        params = self.params
        if not params.lost_enabled or score >= params.lost_threshold:
            self._low_count = 0
            self._box = box
            self._confident_box = box
            self._state = TrackState.TRACKING
            return
        if not self._low_frame():
            self._box = box  # a short dip (partial occlusion): keep following, as the official loop

    def _low_frame(self) -> bool:
        """Count one unconfident frame; True when the state is (now) LOST and the search is held at
        the last confident box. Non-finite frames come here even with `lost_threshold` off."""
        self._low_count += 1
        if self._state is TrackState.LOST or self._low_count >= self.params.lost_frames:
            # hold the search at the last confident box: low-score guesses would walk it away
            self._state = TrackState.LOST
            self._box = list(self._confident_box)
            return True
        return False
