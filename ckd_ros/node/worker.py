"""The inference worker: one thread that owns the Tracker and processes the newest pair only.

The executor thread that receives images only hands pairs over (`submit`); decoding, thermal
normalisation, inference and publishing happen here, so a slow network never blocks the
subscriptions, services or diagnostics. Every change of the tracker (set/clear target, new
tracker parameters or registration) is a small command dataclass run on this thread, so the
tracker is never touched concurrently; commands answer through a Future that the service side
waits on for a bounded time (and cancels when it gives up, so a late command never runs).

Every failure is a `CKDError` with a `stage` (conversion, thermal, inference, ...): per-frame
failures are counted per stage and reported; command failures become the service's answer.
"""
from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

import numpy as np

from ckd_ros.errors import BackendError, BoxError, CKDError, FrameError
from ckd_ros.frames import ros_image
from ckd_ros.node.frame_cache import FrameCache, FramePair, pick_catchup
from ckd_ros.node.input_sync import fmt_stamp
from ckd_ros.node.latest_slot import LatestSlot
from ckd_ros.node.target import FrameInfo, TargetError, TargetRequest, box_to_rgb
from ckd_ros.tracking import TrackState

CATCHUP_MAX = 8  # tracked frames at most when catching up from an old init frame to the newest
CATCHUP_BUDGET_S = 2.0  # and at most this long: the service answers within tracking.service_timeout_s


class PairError(CKDError):
    """A pair that cannot be tracked; `stage` names where it failed, `key` groups log lines."""

    def __init__(self, stage: str, key: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.key = key


@dataclass
class Settings:
    """What the worker reads per pair; the node swaps in a new object when parameters change."""

    normalizer: object
    registration: object
    label: str = "target"
    slop_s: float = 0.03
    transports: tuple = ("raw", "raw")  # (rgb, thermal)


@dataclass
class Decoded:
    pair: FramePair
    rgb: np.ndarray  # HxWx3 uint8 RGB
    tir8: np.ndarray  # HxW (gray) or HxWx3 (8-bit palette) uint8, normalised, thermal pixels (the tracker warps it)
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    """One tracking result, handed to the node's publishing hook (`on_outcome`)."""

    decoded: Decoded
    state: TrackState
    box: Optional[np.ndarray]  # RGB pixels (while LOST: where the search is held)
    score: Optional[float]
    track_id: str
    timings: Dict[str, float]
    started_at: float  # monotonic, worker start on this pair
    live: bool = True  # False: published by set_target (init frame or catch-up), not a newly received pair


# ---- commands (run on the worker thread, answered through `future`) -------------------------------

@dataclass
class SetTarget:
    request: TargetRequest
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class ClearTarget:
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class ResetStream:
    """Stamps jumped back (bag loop, /clock jump): forget the stamp order."""

    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class UpdateTracker:
    """New TrackerParams and/or Registration from a parameter change."""

    params: Any = None
    registration: Any = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class TrackingWorker:
    """The thread that owns `tracker`. `settings()` returns the current Settings (read per pair),
    `on_outcome(Outcome)` publishes a result (on this thread), `cache` serves set_target by stamp,
    `stats`/`reporter` count and report; `name` (the node's fully qualified name) names the thread."""

    def __init__(self, tracker, *, converter, cache: FrameCache, stats, reporter,
                 settings: Callable[[], Settings], on_outcome: Callable[[Outcome], None],
                 log_warn: Callable[[str], None] = print, name: str = "ckd_tracker") -> None:
        self.tracker = tracker
        self.converter = converter
        self.cache = cache
        self.stats = stats
        self.reporter = reporter
        self._settings = settings
        self._on_outcome = on_outcome
        self._warn = log_warn
        self._name = name
        self._slot = LatestSlot()
        self._thread: Optional[threading.Thread] = None
        self._last_stamp_ns: Optional[int] = None  # newest pair processed (or caught up to)
        self._last_published_ns: Optional[int] = None
        self._track_count = 0
        self._palette_warned = False
        self.busy_since: Optional[float] = None
        self.busy_with = ""

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self._name}/worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after the current pair; pending commands fail. False if the thread did not end in time."""
        for cmd in self._slot.close():
            _answer(cmd.future, (False, "node deactivated before the request ran"))
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---- inputs (executor thread) ----------------------------------------------------------
    def submit(self, pair: FramePair) -> None:
        if self._slot.put(pair):
            self.stats.drop("superseded")

    def command(self, cmd) -> concurrent.futures.Future:
        """Queue a command; its future answers (ok, message)."""
        if not self._slot.put_command(cmd):
            _answer(cmd.future, (False, "node not active"))
        return cmd.future

    def reset_stream(self) -> None:
        self._slot.clear()
        self.command(ResetStream())

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
            self.busy_with = "command" if kind == "command" else "pair"
            try:
                if kind == "command":
                    self._command(item)
                elif kind == "pair":
                    self._process(item)
            except Exception as exc:  # never let one bad frame end the thread
                self.stats.error("internal")
                self.reporter.report("internal", f"worker: unexpected {type(exc).__name__}: {exc}")
            finally:
                self.busy_since = None

    def _command(self, cmd) -> None:
        if not cmd.future.set_running_or_notify_cancel():
            return  # the service gave up waiting: do not act on it late
        try:
            if isinstance(cmd, ResetStream):
                self._last_stamp_ns = None
                self._last_published_ns = None
                result = (True, "")
            elif isinstance(cmd, ClearTarget):
                was = self.tracker.state
                self.tracker.reset()
                result = (True, "target cleared" if was is not TrackState.IDLE else "no target was set")
            elif isinstance(cmd, UpdateTracker):
                if cmd.params is not None:
                    self.tracker.params = cmd.params
                if cmd.registration is not None:
                    self.tracker.registration = cmd.registration
                result = (True, "")
            elif isinstance(cmd, SetTarget):
                result = (True, self._set_target(cmd.request))
            else:
                result = (False, f"unknown command {type(cmd).__name__}")
        except CKDError as exc:  # TargetError, BackendError, FrameError...: the answer says which stage
            self.stats.error(exc.stage)
            result = (False, str(exc) if isinstance(exc, TargetError) else f"{exc.stage}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a backend bug must still answer the service
            self.stats.error("internal")
            result = (False, f"internal error: {type(exc).__name__}: {exc}")
        cmd.future.set_result(result)

    # ---- per pair ----------------------------------------------------------------------------
    def _decode(self, pair: FramePair, settings: Settings) -> Decoded:
        t0 = time.perf_counter()
        rgb_transport, tir_transport = settings.transports
        try:
            if rgb_transport == "compressed":
                rgb = ros_image.decode_rgb_compressed(pair.rgb)
            else:
                rgb = ros_image.decode_rgb(pair.rgb, self.converter)
            if tir_transport == "compressed":
                tir, palette = ros_image.decode_thermal_compressed(pair.thermal)
            else:
                tir, palette = ros_image.decode_thermal(pair.thermal, self.converter)
        except (ros_image.ImageConversionError, FrameError) as exc:
            raise PairError("conversion", getattr(exc, "key", "conversion"), str(exc)) from None
        t1 = time.perf_counter()
        if palette and not self._palette_warned:
            self._palette_warned = True
            enc = getattr(pair.thermal, "encoding", None) or "compressed colour"
            self._warn(f"thermal images are colour ({enc}): a palette is converted to luminance, which loses "
                       "temperature order; publish mono16 raw counts or 32FC1 temperatures if the camera can")
        if tir.shape[:2] != rgb.shape[:2] and settings.registration.is_identity:
            raise PairError("registration", "size_mismatch",
                            f"RGB image is {rgb.shape[1]}x{rgb.shape[0]} but thermal is {tir.shape[1]}x{tir.shape[0]} "
                            "and registration.homography is the identity: set registration.homography "
                            "(thermal -> RGB pixels) so the thermal image can be warped into the RGB frame")
        try:
            # gray stays one channel (3 equal channels would triple the crop work, same network input)
            tir8 = settings.normalizer.convert(tir, keep_gray=True)
        except (ValueError, CKDError) as exc:
            raise PairError("thermal", "thermal", f"thermal: {exc}") from None
        bad = getattr(settings.normalizer, "last_nonfinite", 0)
        if bad:
            total = tir.shape[0] * tir.shape[1]
            if bad >= total:
                raise PairError("thermal", "all_nonfinite", f"thermal: all {total} pixels are NaN/inf; pair skipped")
            self.reporter.report("nonfinite", f"thermal: {bad} of {total} pixels are NaN/inf "
                                 "(shown as the coldest value)")
        t2 = time.perf_counter()
        return Decoded(pair, rgb, tir8, {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3})

    def _track(self, decoded: Decoded) -> Outcome:
        started = time.monotonic()
        timings = dict(decoded.timings)
        state, box, score = TrackState.IDLE, None, None
        if self.tracker.state is not TrackState.IDLE:
            try:
                result = self.tracker.track(decoded.rgb, decoded.tir8)
            except CKDError as exc:
                raise PairError(exc.stage, exc.stage, f"{exc.stage}: {exc}") from None
            except ValueError as exc:
                raise PairError("tracker_input", "tracker_input", f"tracker rejected the pair: {exc}") from None
            except RuntimeError as exc:
                raise PairError("inference", "inference", f"inference failed: {exc}") from None
            if getattr(result, "nonfinite", False):  # the tracker held the last good box
                self.stats.error("nonfinite_outputs")
                self.reporter.report("nonfinite_outputs", "the network returned NaN/inf maps (an overflowing fp16 "
                                     "engine?): the box is held at the last good one; try precision fp32")
            for stage, ms in result.timing_ms.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            state, box, score = result.state, np.asarray(result.box_xywh, dtype=np.float64), result.score
        return Outcome(decoded, state, box, score, self.track_id, timings, started)

    def _emit(self, outcome: Outcome) -> None:
        stamp = outcome.decoded.pair.rgb_stamp_ns
        active = outcome.state is not TrackState.IDLE
        if active and self._last_published_ns is not None and stamp < self._last_published_ns:
            self.stats.drop("older_than_published")
            return  # never publish detections backwards in stamp order (re-init on an older frame)
        if active:
            self._last_published_ns = stamp
        self._on_outcome(outcome)

    def _process(self, pair: FramePair) -> None:
        if self._last_stamp_ns is not None and pair.rgb_stamp_ns < self._last_stamp_ns:
            self.stats.drop("out_of_order")  # older than a pair already tracked (reordered, or caught up)
            return
        started = time.monotonic()
        settings = self._settings()
        try:
            decoded = self._decode(pair, settings)
            decoded.timings["queue"] = (started - pair.paired_at) * 1e3
            decoded.timings["sync_wait"] = pair.sync_wait_s * 1e3
            outcome = self._track(decoded)
        except PairError as exc:
            self.stats.drop(exc.stage)
            self.stats.error(exc.stage)
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
                          f"cached RGB stamps {fmt_stamp(span[0])} .. {fmt_stamp(span[1])}")
                raise TargetError(f"stamp {fmt_stamp(req.stamp_ns)} not in the frame cache ({cached}; "
                                  "tracking.init_cache_s sets how far back; ~/pin_frame keeps a frozen frame); "
                                  "use stamp 0 for the newest frame")
        try:
            decoded = self._decode(pair, settings)
        except PairError as exc:
            raise TargetError(f"the frame at {fmt_stamp(pair.rgb_stamp_ns)} cannot be used: {exc}") from None
        rgb_info = FrameInfo(decoded.rgb.shape[1], decoded.rgb.shape[0], pair.rgb.header.frame_id)
        tir_info = FrameInfo(decoded.tir8.shape[1], decoded.tir8.shape[0], pair.thermal.header.frame_id)
        box, frame = box_to_rgb(req, rgb_info, tir_info, settings.registration)
        try:
            self.tracker.initialize(decoded.rgb, decoded.tir8, box)
        except (ValueError, BoxError) as exc:
            raise TargetError(f"tracker rejected the box: {exc}") from None
        except RuntimeError as exc:
            raise BackendError(f"the network failed on the template: {exc}") from None
        self._track_count += 1
        newer = self.cache.newer_than(pair.rgb_stamp_ns)
        steps = pick_catchup(newer, CATCHUP_MAX)
        last: Optional[Outcome] = None
        done, deadline = 0, time.monotonic() + CATCHUP_BUDGET_S
        for p in steps:
            if time.monotonic() > deadline and p is not steps[-1]:
                continue  # out of time: jump to the newest pair
            try:
                last = self._track(self._decode(p, settings))
                done += 1
            except PairError as exc:
                self.stats.error(exc.stage)
                self.reporter.report(exc.key, str(exc))
        if last is None:
            last = Outcome(decoded, self.tracker.state, box, 1.0, self.track_id, dict(decoded.timings),
                           time.monotonic())
        last.live = False
        self._last_stamp_ns = max(self._last_stamp_ns or 0, last.decoded.pair.rgb_stamp_ns)
        self._emit(last)
        box_txt = ", ".join(f"{v:.1f}" for v in box)
        stamp = fmt_stamp(pair.rgb_stamp_ns)  # `how`: which stamp matched; `frame`: the image the box is in
        where = f"the newest frame {stamp}" if how == "newest" else f"the frame {stamp} ({how} stamp match)"
        return (f"tracking target {self.track_id} from {where}: {frame} box -> RGB box [{box_txt}]; caught up "
                f"through {done} of {len(newer)} newer frames (state {self.tracker.state.value})")


def _answer(future: concurrent.futures.Future, result) -> None:
    if future.set_running_or_notify_cancel():
        future.set_result(result)
