"""Run our tracker over a benchmark and write result files in the common CKD/pytracking format.

`<seq>.txt`: one `x<TAB>y<TAB>w<TAB>h` row per image frame, truncated to int (`astype(int)`), row 0 =
the initial box; `<seq>_time.txt`: seconds per frame (image reading excluded, as pytracking times it).
Frames go through the one offline loop (`ckd_ros.tracking.loop.track_frames`, the one `ckd track` uses)
with the same frame reading and thermal policy, so both give the same boxes.

`provenance.json` in the results folder records the model (sha256), backend, precision, tracker
parameters, thermal conversion and ckd_ros version, and the run's status (running / partial /
complete). A sequence whose two files exist is finished and skipped, so an interrupted run resumes;
resuming into a folder written by another model or setting is refused (or, with `overwrite`, the old
results are removed first). SIGINT/SIGTERM keep the finished sequences and mark the run partial.
The tracker and backends are imported inside functions: importing this module never needs torch.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.fileio import atomic_path
from ckd_ros.frames.datasets import Dataset, SequenceFrames
from ckd_ros.frames.reader import read_rgb, read_thermal_raw

PROVENANCE = "provenance.json"


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
    thermal_norm: str = "auto"  # the `ckd track` policy: 'none' for 8-bit thermal, else 'percentile'
    threads: Optional[int] = None  # ONNX Runtime intra-op threads

    def build(self):
        try:
            from ckd_ros.runtime import open_backend
            from ckd_ros.tracking import Tracker, TrackerParams
        except ImportError as exc:
            raise CKDError(f"the tracker or its runtime is not available in this build ({exc}); install "
                           "ckd_ros with its runtime dependencies") from None
        backend = open_backend(kind=self.backend, checkpoint=self.checkpoint, onnx=self.onnx,
                               preset=self.preset, precision=self.precision, device=self.device,
                               threads=self.threads)
        return Tracker(backend, TrackerParams(**dict(self.params)))

    def _resolved(self) -> Tuple[str, str]:
        """(backend, precision) that `open_backend` will pick (its 'auto' rule: `choose_auto` over
        `tensorrt_problems`), without opening one: checked before any engine is built."""
        kind, precision = self.backend, self.precision
        if kind != "auto":
            return kind, precision
        import importlib.util

        from ckd_ros.runtime.factory import choose_auto
        from ckd_ros.runtime.gpu import probe_gpu, tensorrt_problems

        gpu = probe_gpu()
        try:
            kind, _ = choose_auto(gpu, tensorrt_problems(gpu), importlib.util.find_spec("onnxruntime") is not None,
                                  self.checkpoint is not None)
        except CKDError:
            return "auto", precision
        if precision == "fp16" and kind != "tensorrt" and self.device in (None, "auto", "cpu"):
            precision = "fp32"  # as open_backend does
        return kind, precision

    def thermal(self):
        from ckd_ros.frames.thermal import ThermalConverter

        return ThermalConverter(self.thermal_norm)

    def provenance(self, tracker=None) -> Dict:
        """The provenance record of results made with this spec (`tracker`: a built one, whose backend
        tells what 'auto' resolved to; None: resolved as `open_backend` will, without opening one)."""
        from ckd_ros.tracking import TrackerParams
        from ckd_ros.tracking.provenance import make_provenance, model_record, tracker_record

        if tracker is not None:
            backend = getattr(tracker.backend, "name", self.backend)
            precision = getattr(tracker.backend, "precision", self.precision)
        else:
            backend, precision = self._resolved()
        return make_provenance(model_record(self.checkpoint, self.onnx, self.preset), backend, precision,
                               tracker_record(TrackerParams(**dict(self.params))),
                               {"method": self.thermal_norm}, device=self.device)


@dataclass
class SequenceRun:
    name: str
    frames: int
    seconds: float  # sum of per-frame tracking times
    skipped: bool = False  # finished by an earlier run

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def sequence_frames(frames: SequenceFrames):
    """(rgb, thermal as stored) pairs of a dataset sequence, read by the frame layer exactly as `ckd
    track --sequence` reads them (`read_rgb`: HxWx3 uint8 RGB; `read_thermal_raw`: 16-bit stays 16-bit);
    the thermal conversion happens in the loop."""
    return ((read_rgb(r), read_thermal_raw(t)) for r, t in zip(frames.rgb, frames.tir))


def track_sequence(tracker, frames: SequenceFrames, init_box: np.ndarray, thermal=None,
                   on_frame: Optional[Callable[[], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 4) boxes and (N,) seconds; frame 0 is initialised and reported as the initial box."""
    from ckd_ros.tracking.loop import track_frames

    boxes = np.zeros((len(frames.rgb), 4))
    times = np.zeros(len(frames.rgb))
    n = 0
    for r in track_frames(tracker, sequence_frames(frames), init_box, thermal, where=f"sequence {frames.name!r} "):
        boxes[r.index], times[r.index] = r.box_xywh, r.seconds
        n = r.index + 1
        if on_frame is not None:
            on_frame()
    if n != len(frames.rgb):
        raise CKDError(f"sequence {frames.name!r}: read {n} of {len(frames.rgb)} frames")
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


# ---- provenance ------------------------------------------------------------------------------
def _spec_provenance(spec, tracker=None) -> Dict:
    make = getattr(spec, "provenance", None)
    if make is not None:
        return make(tracker)
    from ckd_ros.tracking.provenance import make_provenance

    name = repr(spec)
    if " at 0x" in name:  # a repr with an address differs every run: name the type only
        name = type(spec).__name__
    return make_provenance({"in_memory": name}, "custom", "", {}, {})


def _check_resume(results_dir: Path, names: Sequence[str], record: Dict, overwrite: bool,
                  log: Callable[[str], None]) -> None:
    """Refuse (or with `overwrite` clear) a results folder whose results came from elsewhere."""
    from ckd_ros.tracking.provenance import differences, read_provenance

    path = results_dir / PROVENANCE
    old = None if overwrite else read_provenance(path)
    finished = [n for n in names if is_finished(results_dir, n)]
    if old is None and (not finished or overwrite):
        if overwrite:
            for n in names:
                for p in result_paths(results_dir, n):
                    if p.is_file():
                        p.unlink()
            if finished:
                log(f"--overwrite: removed the results of {len(finished)} sequences in {results_dir}")
        return
    if old is None:
        raise CKDError(f"{results_dir} holds results of {len(finished)} sequences but no {PROVENANCE} (an older "
                       "ckd_ros or another tool wrote them); use a new --results folder or --overwrite")
    diff = differences(old, record)
    if diff:
        shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
        raise CKDError(f"{results_dir} holds results of another run ({shown}); use a new --results folder "
                       "or --overwrite")


def run_benchmark(dataset: Dataset, results_dir: Path, spec, workers: int = 1, progress: bool = True,
                  log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                  overwrite: bool = False) -> List[SequenceRun]:
    """Track every unfinished sequence of `dataset` into `results_dir`; return one record per sequence
    (dataset order). `spec.build()` must return an object with `initialize`/`track` (our Tracker);
    `spec.thermal()` (optional) the thermal conversion, `spec.provenance(tracker)` (optional) the record.

    Raises CKDError when the folder holds results of another model/setting (unless `overwrite`), or when
    sequences failed; on SIGINT/SIGTERM (`KeyboardInterrupt`, re-raised) the finished sequences stay and
    provenance.json says `partial`.
    """
    from ckd_ros.tracking.loop import interruptible, signal_name
    from ckd_ros.tracking.provenance import write_provenance

    results_dir = Path(results_dir)
    record = _spec_provenance(spec)  # checked before a backend is opened (a TensorRT build takes minutes)
    _check_resume(results_dir, dataset.names, record, overwrite, log)
    tracker = spec.build() if workers <= 1 else None  # before the bar, so build errors print cleanly
    results_dir.mkdir(parents=True, exist_ok=True)
    todo = [n for n in dataset.names if not is_finished(results_dir, n)]
    done = len(dataset.names) - len(todo)
    if done:
        log(f"{done} of {len(dataset.names)} sequences already finished in {results_dir}; skipping them")
    record.update(command="ckd benchmark", dataset=dataset.protocol, root=str(dataset.root),
                  sequences_total=len(dataset.names))

    def save(status: str, note: Optional[str] = None) -> None:
        finished = sum(is_finished(results_dir, n) for n in dataset.names)
        record.update(status=status, sequences_finished=finished, note=note)
        write_provenance(results_dir / PROVENANCE, record)

    save("running")
    jobs = [(dataset.frames(n), dataset.ground_truth(n).init_box, results_dir) for n in todo]
    runs: Dict[str, SequenceRun] = {}
    failures: List[str] = []
    if jobs:
        from tqdm import tqdm

        total = sum(len(j[0].rgb) for j in jobs)
        try:
            with interruptible(), tqdm(total=total, unit="frame", desc=dataset.protocol, disable=not progress,
                                       file=sys.stderr) as bar:
                if tracker is not None:
                    _run_here(jobs, tracker, spec, bar, runs, failures)
                else:
                    _run_pool(jobs, spec, workers, bar, runs, failures)
        except KeyboardInterrupt as exc:
            finished = sum(is_finished(results_dir, n) for n in dataset.names)
            note = (f"interrupted by {signal_name(exc)}: {finished} of {len(dataset.names)} sequences finished; "
                    "rerun the same command to resume")
            save("partial", note)
            log(f"ckd benchmark: {note} ({results_dir})")
            raise
    if failures:
        save("partial", f"{len(failures)} sequence(s) failed")
        shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
        raise CKDError(f"{len(failures)} sequence(s) failed: {shown}")
    save("complete")
    return [runs[n] if n in runs else recorded_run(results_dir, n) for n in dataset.names]


def _thermal_of(spec):
    """The spec's thermal conversion; by default the `ckd track` policy ('auto')."""
    make = getattr(spec, "thermal", None)
    if make is not None:
        return make()
    from ckd_ros.frames.thermal import ThermalConverter

    return ThermalConverter("auto")


def _run_here(jobs: Sequence, tracker, spec, bar, runs: dict, failures: list) -> None:
    for frames, init_box, results_dir in jobs:
        try:
            boxes, times = track_sequence(tracker, frames, init_box, _thermal_of(spec), on_frame=lambda: bar.update(1))
        except CKDError as exc:
            failures.append(str(exc))
            continue
        write_sequence(results_dir, frames.name, boxes, times)
        runs[frames.name] = SequenceRun(frames.name, len(times), float(times.sum()))
        bar.set_postfix(seq=frames.name, fps=f"{runs[frames.name].fps:.1f}")


# ---- worker processes ----------------------------------------------------------------------
_WORKER = {"tracker": None, "spec": None, "error": None}


def _worker_init(spec) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it stops the pool)
    _WORKER["spec"] = spec
    try:
        _WORKER["tracker"] = spec.build()
    except Exception as exc:  # reported by the first job: initializer errors would only break the pool
        _WORKER["error"] = str(exc) if isinstance(exc, CKDError) else f"{type(exc).__name__}: {exc}"


def _worker_run(job) -> Tuple[str, object]:
    """('ok', SequenceRun) | ('failed', message) | ('build', message): plain values, nothing to unpickle."""
    if _WORKER["error"] is not None:
        return "build", _WORKER["error"]
    frames, init_box, results_dir = job
    try:
        boxes, times = track_sequence(_WORKER["tracker"], frames, init_box, _thermal_of(_WORKER["spec"]))
    except CKDError as exc:
        return "failed", str(exc)
    write_sequence(results_dir, frames.name, boxes, times)
    return "ok", SequenceRun(frames.name, len(times), float(times.sum()))


def _run_pool(jobs: Sequence, spec, workers: int, bar, runs: dict, failures: list) -> None:
    import multiprocessing

    # spawn: CUDA and TensorRT contexts do not survive fork; longest sequences first balances the load
    ctx = multiprocessing.get_context("spawn")
    ordered = sorted(jobs, key=lambda j: -len(j[0].rgb))
    pool = ctx.Pool(processes=workers, initializer=_worker_init, initargs=(spec,))
    try:
        for (kind, value), job in zip(pool.imap(_worker_run, ordered), ordered):
            if kind == "build":
                raise CKDError(f"a worker process could not build the tracker: {value}")
            if kind == "failed":
                failures.append(str(value))
                bar.update(len(job[0].rgb))
                continue
            runs[value.name] = value
            bar.update(value.frames)
            bar.set_postfix(seq=value.name, fps=f"{value.fps:.1f}")
        pool.close()
    finally:
        pool.terminate()  # also on Ctrl-C: running sequences are dropped, finished ones are on disk
        pool.join()
