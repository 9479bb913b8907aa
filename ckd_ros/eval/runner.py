"""Run our tracker over a benchmark and write result files in the common CKD/pytracking format.

`<seq>.txt`: one `x<TAB>y<TAB>w<TAB>h` row per image frame, truncated to int (`astype(int)`), row 0 =
the initial box; `<seq>_time.txt`: seconds per frame (image reading excluded, as pytracking times it).
A sequence whose two files exist is finished and skipped, so an interrupted run resumes. The tracker
and backends are imported inside functions: importing this module (and the metrics) never needs torch.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.fileio import atomic_path
from ckd_ros.frames.datasets import Dataset, SequenceFrames
from ckd_ros.frames.reader import read_pair, read_rgb


@dataclass(frozen=True)
class TrackerSpec:
    """Picklable recipe for our tracker; each worker process builds its own backend from it."""

    backend: str = "auto"
    checkpoint: Optional[str] = None
    onnx: Optional[str] = None
    preset: Optional[str] = None
    precision: str = "fp32"
    device: Optional[str] = None
    params: Tuple[Tuple[str, object], ...] = field(default_factory=tuple)  # TrackerParams overrides

    def build(self):
        try:
            from ckd_ros.runtime import open_backend
            from ckd_ros.tracking import Tracker, TrackerParams
        except ImportError as exc:
            raise CKDError(f"the tracker or its runtime is not available in this build ({exc}); install "
                           "ckd_ros with its runtime dependencies") from None
        backend = open_backend(kind=self.backend, checkpoint=self.checkpoint, onnx=self.onnx,
                               preset=self.preset, precision=self.precision, device=self.device)
        return Tracker(backend, TrackerParams(**dict(self.params)))


@dataclass
class SequenceRun:
    name: str
    frames: int
    seconds: float  # sum of per-frame tracking times
    skipped: bool = False  # finished by an earlier run

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def read_image(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB of an RGB frame file (`ckd_ros.frames.reader.read_rgb`)."""
    return read_rgb(path)


def track_sequence(tracker, frames: SequenceFrames, init_box: np.ndarray,
                   on_frame: Optional[Callable[[], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 4) boxes and (N,) seconds; frame 0 is initialised and reported as the initial box."""
    boxes = np.zeros((len(frames.rgb), 4))
    times = np.zeros(len(frames.rgb))
    for i, (rgb_path, tir_path) in enumerate(zip(frames.rgb, frames.tir)):
        rgb, tir = read_pair(rgb_path, tir_path)  # thermal: the one conversion (16-bit stays 16-bit)
        start = time.perf_counter()
        try:
            if i == 0:
                tracker.initialize(rgb, tir, [float(v) for v in init_box])
                box = init_box
            else:
                box = tracker.track(rgb, tir).box_xywh
        except ValueError as exc:  # the tracker's input checks (bad init box, image shapes)
            raise CKDError(f"sequence {frames.name!r} frame {i} ({rgb_path.name}): {exc}") from None
        times[i] = time.perf_counter() - start
        boxes[i] = np.asarray(box, dtype=np.float64).reshape(4)
        if on_frame is not None:
            on_frame()
    return boxes, times


def result_paths(results_dir: Path, name: str) -> Tuple[Path, Path]:
    return Path(results_dir) / f"{name}.txt", Path(results_dir) / f"{name}_time.txt"


def is_finished(results_dir: Path, name: str) -> bool:
    box_path, time_path = result_paths(results_dir, name)
    return box_path.is_file() and time_path.is_file()


def write_sequence(results_dir: Path, name: str, boxes: np.ndarray, times: np.ndarray) -> None:
    """Write both files atomically; the time file goes last, so its presence marks a finished sequence."""
    box_path, time_path = result_paths(results_dir, name)
    for path, data, fmt in ((box_path, boxes.astype(int), "%d"), (time_path, times, "%f")):
        with atomic_path(path, fsync=False) as tmp:
            np.savetxt(tmp, data, delimiter="\t", fmt=fmt)


def recorded_run(results_dir: Path, name: str) -> SequenceRun:
    """A finished sequence's frame count and time, read back from its `_time.txt`."""
    times = np.loadtxt(result_paths(results_dir, name)[1], ndmin=1)
    return SequenceRun(name, len(times), float(times.sum()), skipped=True)


# ---- worker processes ----------------------------------------------------------------------
_WORKER_TRACKER = None
_WORKER_ERROR = None  # why this worker could not build its tracker


class _BuildError(CKDError):
    """The tracker could not be built in a worker: every sequence would fail the same way."""


def _worker_init(spec) -> None:
    global _WORKER_TRACKER, _WORKER_ERROR
    try:
        _WORKER_TRACKER = spec.build()
    except Exception as exc:  # reported by the first job: initializer errors would only break the pool
        _WORKER_ERROR = str(exc) if isinstance(exc, CKDError) else f"{type(exc).__name__}: {exc}"


def _worker_run(job) -> SequenceRun:
    if _WORKER_ERROR is not None:
        raise _BuildError(f"a worker process could not build the tracker: {_WORKER_ERROR}")
    frames, init_box, results_dir = job
    boxes, times = track_sequence(_WORKER_TRACKER, frames, init_box)
    write_sequence(results_dir, frames.name, boxes, times)
    return SequenceRun(frames.name, len(times), float(times.sum()))


def run_benchmark(dataset: Dataset, results_dir: Path, spec, workers: int = 1, progress: bool = True,
                  log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> List[SequenceRun]:
    """Track every unfinished sequence of `dataset` into `results_dir`; return one record per sequence
    (dataset order). `spec.build()` must return an object with `initialize`/`track` (our Tracker)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    todo = [n for n in dataset.names if not is_finished(results_dir, n)]
    done = len(dataset.names) - len(todo)
    if done:
        log(f"{done} of {len(dataset.names)} sequences already finished in {results_dir}; skipping them")
    jobs = [(dataset.frames(n), dataset.ground_truth(n).init_box, results_dir) for n in todo]
    runs = {}
    failures = []
    if jobs:
        from tqdm import tqdm

        total = sum(len(j[0].rgb) for j in jobs)
        tracker = spec.build() if workers <= 1 else None  # before the bar, so build errors print cleanly
        with tqdm(total=total, unit="frame", desc=dataset.protocol, disable=not progress, file=sys.stderr) as bar:
            if tracker is not None:
                for job in jobs:
                    frames, init_box, _ = job
                    try:
                        boxes, times = track_sequence(tracker, frames, init_box, on_frame=lambda: bar.update(1))
                    except CKDError as exc:
                        failures.append(str(exc))
                        continue
                    write_sequence(results_dir, frames.name, boxes, times)
                    runs[frames.name] = SequenceRun(frames.name, len(times), float(times.sum()))
                    bar.set_postfix(seq=frames.name, fps=f"{runs[frames.name].fps:.1f}")
            else:
                _run_pool(jobs, spec, workers, bar, runs, failures)
    if failures:
        shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
        raise CKDError(f"{len(failures)} sequence(s) failed: {shown}")
    return [runs[n] if n in runs else recorded_run(results_dir, n) for n in dataset.names]


def _run_pool(jobs: Sequence, spec, workers: int, bar, runs: dict, failures: list) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: CUDA and TensorRT contexts do not survive fork; longest sequences first balances the load
    ctx = multiprocessing.get_context("spawn")
    ordered = sorted(jobs, key=lambda j: -len(j[0].rgb))
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(spec,)) as pool:
        futures = {pool.submit(_worker_run, job): job for job in ordered}
        for fut in as_completed(futures):
            frames = futures[fut][0]
            try:
                run = fut.result()
            except _BuildError:
                for other in futures:  # shutdown(cancel_futures=True) is Python 3.9+ (JetPack 5 has 3.8)
                    other.cancel()
                raise
            except CKDError as exc:
                failures.append(str(exc))
                bar.update(len(frames.rgb))
                continue
            runs[run.name] = run
            bar.update(run.frames)
            bar.set_postfix(seq=run.name, fps=f"{run.fps:.1f}")
