"""The inference worker: one thread that owns the Tracker and processes the newest pair only.

The executor thread that receives images only hands pairs over (`submit`); decoding, thermal
normalisation, inference and publishing happen here, so a slow network never blocks the
subscriptions, services or diagnostics. Target commands run on this thread too (the tracker is
never touched concurrently) and answer through a Future.
"""
from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from ckd_ros.frames.ros_image import (
    ImageConversionError,
    decode_rgb,
    decode_rgb_compressed,
    decode_thermal,
    decode_thermal_compressed,
)
from ckd_ros.node.frame_cache import FrameCache, FramePair, pick_catchup
from ckd_ros.node.latest_slot import LatestSlot
from ckd_ros.node.target import FrameInfo, TargetError, TargetRequest, box_to_rgb
from ckd_ros.tracking import TrackState

CATCHUP_MAX = 8  # tracked frames at most when catching up from an old init frame to the newest


class BadPair(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass
class Settings:
    """What the worker reads per pair; the node swaps in a new object when parameters change."""

    normalizer: object
    registration: object
    label: str = "target"
    slop_s: float = 0.03


@dataclass
class Decoded:
    pair: FramePair
    rgb: np.ndarray  # HxWx3 uint8 RGB
    tir8: np.ndarray  # HxWx3 uint8, normalised, thermal pixels (the tracker warps it)
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    decoded: Decoded
    state: str  # 'idle' | 'tracking' | 'lost'
    box: Optional[np.ndarray]  # RGB pixels (while LOST: where the search is held)
    score: Optional[float]
    track_id: str
    timings: Dict[str, float]
    started_at: float  # monotonic, worker start on this pair
    live: bool = True  # False: published by set_target (init frame or catch-up), not a newly received pair


def _stamp_str(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


class TrackingWorker:
    def __init__(self, tracker, converter, cache: FrameCache, stats, reporter,
                 settings: Callable[[], Settings], on_outcome: Callable[[Outcome], None],
                 compressed: bool = False, log_warn: Callable[[str], None] = print) -> None:
        self.tracker = tracker
        self.converter = converter
        self.cache = cache
        self.stats = stats
        self.reporter = reporter
        self._settings = settings
        self._on_outcome = on_outcome
        self._compressed = compressed
        self._warn = log_warn
        self._slot = LatestSlot()
        self._thread: Optional[threading.Thread] = None
        self._last_stamp_ns: Optional[int] = None  # newest pair processed (or caught up to)
        self._last_published_ns: Optional[int] = None
        self._track_count = 0
        self._palette_warned = False
        self.busy_since: Optional[float] = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ckd_tracker_worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after the current pair; pending commands fail. False if the thread did not end in time."""
        for cmd in self._slot.close():
            cmd[-1].set_result((False, "node deactivated before the request ran"))
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---- inputs (executor thread) ----------------------------------------------------------
    def submit(self, pair: FramePair) -> None:
        if self._slot.put(pair):
            self.stats.count("pairs_dropped")

    def reset_stream(self) -> None:
        """Stamps went backwards (bag loop): forget the pending pair and the stamp order."""
        self._slot.clear()
        self._slot.put_command(("reset_stream", concurrent.futures.Future()))

    def set_target(self, req: TargetRequest) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if not self._slot.put_command(("set", req, fut)):
            fut.set_result((False, "node not active"))
        return fut

    def clear_target(self) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if not self._slot.put_command(("clear", fut)):
            fut.set_result((False, "node not active"))
        return fut

    @property
    def track_id(self) -> str:
        return str(self._track_count)

    # ---- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            kind, item = self._slot.take()
            if kind == "closed":
                return
            self.busy_since = time.monotonic()
            try:
                if kind == "command":
                    self._command(item)
                elif kind == "pair":
                    self._process(item)
            except Exception as exc:  # never let one bad frame end the thread
                self.reporter.report("internal", f"worker: unexpected {type(exc).__name__}: {exc}")
            finally:
                self.busy_since = None

    def _command(self, cmd) -> None:
        name, fut = cmd[0], cmd[-1]
        if name == "reset_stream":
            self._last_stamp_ns = None
            self._last_published_ns = None
            fut.set_result((True, ""))
        elif name == "clear":
            was = self.tracker.state
            self.tracker.reset()
            fut.set_result((True, "target cleared" if was is not TrackState.IDLE else "no target was set"))
        elif name == "set":
            try:
                fut.set_result((True, self._set_target(cmd[1])))
            except TargetError as exc:
                fut.set_result((False, str(exc)))

    # ---- per pair ----------------------------------------------------------------------------
    def _decode(self, pair: FramePair, settings: Settings) -> Decoded:
        t0 = time.perf_counter()
        try:
            if self._compressed:
                rgb = decode_rgb_compressed(pair.rgb)
                tir, palette = decode_thermal_compressed(pair.thermal)
            else:
                rgb = decode_rgb(pair.rgb, self.converter)
                tir, palette = decode_thermal(pair.thermal, self.converter)
        except ImageConversionError as exc:
            raise BadPair(exc.key, str(exc)) from None
        t1 = time.perf_counter()
        if palette and not self._palette_warned:
            self._palette_warned = True
            self._warn(f"thermal images are colour ({pair.thermal.encoding if not self._compressed else 'bgr'}): "
                       "a palette is converted to luminance, which loses temperature order; publish mono16 "
                       "raw counts or 32FC1 temperatures if the camera can")
        if tir.shape[:2] != rgb.shape[:2] and settings.registration.is_identity:
            raise BadPair("size_mismatch",
                          f"RGB image is {rgb.shape[1]}x{rgb.shape[0]} but thermal is {tir.shape[1]}x{tir.shape[0]} "
                          "and registration.homography is the identity: set registration.homography "
                          "(thermal -> RGB pixels) so the thermal image can be warped into the RGB frame")
        try:
            tir8 = settings.normalizer(tir)
        except ValueError as exc:
            raise BadPair("thermal", f"thermal: {exc}") from None
        bad = getattr(settings.normalizer, "last_nonfinite", 0)
        if bad:
            total = tir.shape[0] * tir.shape[1]
            if bad >= total:
                raise BadPair("all_nonfinite", f"thermal: all {total} pixels are NaN/inf; pair skipped")
            self.reporter.report("nonfinite", f"thermal: {bad} of {total} pixels are NaN/inf "
                                 "(shown as the coldest value)")
        t2 = time.perf_counter()
        return Decoded(pair, rgb, tir8, {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3})

    def _track(self, decoded: Decoded) -> Outcome:
        started = time.monotonic()
        timings = dict(decoded.timings)
        state, box, score = "idle", None, None
        if self.tracker.state is not TrackState.IDLE:
            try:
                result = self.tracker.track(decoded.rgb, decoded.tir8)
            except ValueError as exc:
                raise BadPair("tracker_input", f"tracker rejected the pair: {exc}") from None
            except RuntimeError as exc:
                raise BadPair("inference", f"inference failed: {exc}") from None
            for stage, ms in result.timing_ms.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            state, box, score = result.state.value, np.asarray(result.box_xywh, dtype=np.float64), result.score
        return Outcome(decoded, state, box, score, self.track_id, timings, started)

    def _emit(self, outcome: Outcome) -> None:
        stamp = outcome.decoded.pair.rgb_stamp_ns
        if outcome.state != "idle" and self._last_published_ns is not None and stamp <= self._last_published_ns:
            return  # never publish detections out of stamp order (re-init on an older frame)
        if outcome.state != "idle":
            self._last_published_ns = stamp
        self._on_outcome(outcome)

    def _process(self, pair: FramePair) -> None:
        if self._last_stamp_ns is not None and pair.rgb_stamp_ns <= self._last_stamp_ns:
            self.stats.count("pairs_stale")  # already covered by a catch-up
            return
        started = time.monotonic()
        settings = self._settings()
        try:
            decoded = self._decode(pair, settings)
            decoded.timings["queue"] = (started - pair.paired_at) * 1e3
            decoded.timings["sync_wait"] = pair.sync_wait_s * 1e3
            outcome = self._track(decoded)
        except BadPair as exc:
            self.stats.count("pairs_rejected")
            self.reporter.report(exc.key, str(exc))
            return
        outcome.started_at = started
        self._last_stamp_ns = pair.rgb_stamp_ns
        self._emit(outcome)

    # ---- set_target ------------------------------------------------------------------------------
    def _set_target(self, req: TargetRequest) -> str:
        settings = self._settings()
        if req.box[2] <= 0 or req.box[3] <= 0:
            raise TargetError(f"zero-size box (width {req.box[2]:g}, height {req.box[3]:g}): roi.width and "
                              "roi.height must be > 0")
        if req.stamp_ns == 0:
            pair, how = self.cache.newest(), "newest"
            if pair is None:
                raise TargetError("no frames yet: no synchronised RGB+thermal pair has been received "
                                  "(check the input topics, their stamps and sync.slop)")
        else:
            pair, how = self.cache.find(req.stamp_ns, int(settings.slop_s * 1e9))
            if pair is None:
                span = self.cache.span()
                cached = ("the cache is empty: no frames yet" if span is None else
                          f"cached RGB stamps {_stamp_str(span[0])} .. {_stamp_str(span[1])}")
                raise TargetError(f"stamp {_stamp_str(req.stamp_ns)} not in the frame cache ({cached}; "
                                  "tracking.init_cache_s sets how far back); use stamp 0 for the newest frame")
        try:
            decoded = self._decode(pair, settings)
        except BadPair as exc:
            raise TargetError(f"the frame at {_stamp_str(pair.rgb_stamp_ns)} cannot be used: {exc}") from None
        rgb_info = FrameInfo(decoded.rgb.shape[1], decoded.rgb.shape[0], pair.rgb.header.frame_id)
        tir_info = FrameInfo(decoded.tir8.shape[1], decoded.tir8.shape[0], pair.thermal.header.frame_id)
        box, frame = box_to_rgb(req, rgb_info, tir_info, settings.registration)
        try:
            self.tracker.initialize(decoded.rgb, decoded.tir8, box)
        except ValueError as exc:
            raise TargetError(f"tracker rejected the box: {exc}") from None
        self._track_count += 1
        newer = self.cache.newer_than(pair.rgb_stamp_ns)
        steps = pick_catchup(newer, CATCHUP_MAX)
        last: Optional[Outcome] = None
        for p in steps:
            try:
                last = self._track(self._decode(p, settings))
            except BadPair as exc:
                self.reporter.report(exc.key, str(exc))
        if last is None:
            last = Outcome(decoded, self.tracker.state.value, box, 1.0, self.track_id, dict(decoded.timings),
                           time.monotonic())
        last.live = False
        self._last_stamp_ns = max(self._last_stamp_ns or 0, last.decoded.pair.rgb_stamp_ns)
        self._emit(last)
        box_txt = ", ".join(f"{v:.1f}" for v in box)
        stamp = _stamp_str(pair.rgb_stamp_ns)  # `how`: which stamp matched; `frame`: the image the box is in
        where = f"the newest frame {stamp}" if how == "newest" else f"the frame {stamp} ({how} stamp match)"
        return (f"tracking target {self.track_id} from {where}: {frame} box -> RGB box [{box_txt}]; caught up "
                f"through {len(steps)} of {len(newer)} newer frames (state {self.tracker.state.value})")
