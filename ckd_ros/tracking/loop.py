"""The one offline tracking loop: `ckd track` (folders, videos, dataset sequences, rosbag2 files) and
`ckd benchmark` both run every frame through `track_frames`, so the same sequence and backend give the
same boxes in both (test_tracking_loop.py proves it).

Framework-free (numpy only): frames arrive from the frame layer already decoded; the thermal
conversion is passed in as a callable. Also here: `interruptible()`, which turns SIGINT/SIGTERM into
an `Interrupted` exception in the main thread, so a command can keep the work finished so far.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence

import numpy as np

from ckd_ros.errors import BoxError, CKDError, FrameError
from ckd_ros.tracking.tracker import TrackState


@dataclass
class FrameResult:
    """One tracked frame. `box_xywh` (4,) float64 RGB pixels (frame 0: the initial box as validated);
    `seconds`: time of the tracker call alone (reading and thermal conversion excluded, as pytracking
    times it); `stamp`: what the frame source gave with the frame (bags: (rgb_ns, thermal_ns)) or None;
    `rgb` / `tir8`: the frames as tracked (HxWx3 uint8; for overlays)."""

    index: int
    box_xywh: np.ndarray
    score: float
    state: TrackState
    seconds: float
    timing_ms: Dict[str, float] = field(default_factory=dict)
    nonfinite: bool = False
    stamp: Any = None
    rgb: Optional[np.ndarray] = field(default=None, repr=False)
    tir8: Optional[np.ndarray] = field(default=None, repr=False)


def _split(item) -> tuple:
    if len(item) == 3:
        return item[0], item[1], item[2]
    rgb, tir = item
    return rgb, tir, None


def track_frames(tracker, frames: Iterable, init_box: Sequence[float],
                 convert_thermal: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                 max_frames: Optional[int] = None, where: str = "") -> Iterator[FrameResult]:
    """Initialise `tracker` on the first frame with `init_box` and track every following frame.

    `frames` yields (rgb, thermal) or (rgb, thermal, stamp): rgb HxWx3 uint8 RGB, thermal as stored
    (converted by `convert_thermal`, e.g. a `ThermalNormalizer`, to the 8-bit image the tracker takes).
    `tracker` has `initialize(rgb, tir, box)` and `track(rgb, tir)` (`ckd_ros.tracking.Tracker`).
    Yields one `FrameResult` per frame; stops after `max_frames`. Bad boxes raise `BoxError`, frames
    the tracker or the conversion reject raise `FrameError`, both naming `where` and the frame index.
    The backend's own exceptions pass through.
    """
    for index, item in enumerate(frames):
        if max_frames is not None and index >= max_frames:
            return
        rgb, tir, stamp = _split(item)
        at = f"{where}frame {index}"
        try:
            tir8 = convert_thermal(tir) if convert_thermal is not None else tir
        except ValueError as exc:
            raise FrameError(f"{at}: {exc}") from None
        start = time.perf_counter()
        try:
            if index == 0:
                result = tracker.initialize(rgb, tir8, [float(v) for v in init_box])
            else:
                result = tracker.track(rgb, tir8)
        except BoxError as exc:
            raise BoxError(f"{at}: {exc}") from None
        except CKDError:
            raise
        except ValueError as exc:  # the tracker's input checks (image sizes, dtypes)
            raise FrameError(f"{at}: {exc}") from None
        seconds = time.perf_counter() - start
        if result is None:  # trackers that report nothing on initialisation (test doubles)
            box, score, state, timing, nonfinite = np.asarray(init_box, np.float64), 1.0, TrackState.TRACKING, {}, False
        else:
            box = np.asarray(result.box_xywh, dtype=np.float64).reshape(4)
            score, state = float(result.score), getattr(result, "state", TrackState.TRACKING)
            timing = dict(getattr(result, "timing_ms", {}) or {})
            nonfinite = bool(getattr(result, "nonfinite", False))
        yield FrameResult(index, box, score, state, seconds, timing, nonfinite, stamp, rgb, tir8)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signal_name` says which. A KeyboardInterrupt, so code that already
    handles Ctrl-C handles SIGTERM (systemd stop, `docker stop`, a job scheduler) the same way."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + int(getattr(signal, self.signal_name, signal.SIGINT))


def signal_name(exc: BaseException) -> str:
    return getattr(exc, "signal_name", "SIGINT")


@contextlib.contextmanager
def interruptible():
    """Within the block SIGINT and SIGTERM raise `Interrupted` in the main thread (elsewhere: no-op).

    The previous handlers are restored on exit, so the caller can write its partial results after
    the block while a second Ctrl-C behaves as before.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
