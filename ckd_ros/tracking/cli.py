"""`ckd track` (offline tracking of an RGB-T sequence) and `ckd calibrate` (thermal -> RGB homography)."""
from __future__ import annotations

import json
import pathlib
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ckd_ros.errors import BoxError, CKDError, FrameError, InputError, ParameterError
from ckd_ros.frames.pairing import fmt_stamp
from ckd_ros.frames.thermal import ThermalConverter
from ckd_ros.runtime.options import KINDS, PRECISIONS, PRESETS

THERMAL_CHOICES = ("auto", "minmax", "percentile", "fixed", "none")


def add_input_arguments(parser) -> None:
    """The input options of every command that tracks frames (`ckd track`, `ckd quantize`'s calibration):
    --sequence | --rgb/--thermal | --bag (+ topics, --init-stamp, --slop, --max-delay, --thermal-offset), --init.
    `open_input(args)` turns them into a `TrackInput`."""
    src = parser.add_argument_group("input")
    src.add_argument("--sequence", type=pathlib.Path, metavar="DIR",
                     help="dataset sequence folder (visible/+infrared/, v/+i/, rgb/+ir/ ...; "
                          "first GT row of init.txt / rgb.txt / groundTruth_v.txt = initial box)")
    src.add_argument("--rgb", type=pathlib.Path, metavar="PATH", help="RGB image folder or video")
    src.add_argument("--thermal", type=pathlib.Path, metavar="PATH", help="thermal image folder or video")
    src.add_argument("--bag", type=pathlib.Path, metavar="PATH",
                     help="rosbag2 folder or file (sqlite3 or MCAP); pairs RGB and thermal by header stamp "
                          "like the node (sync.slop)")
    src.add_argument("--rgb-topic", default="/rgb/image", metavar="T",
                     help="--bag: RGB topic (sensor_msgs/Image or CompressedImage; default /rgb/image)")
    src.add_argument("--thermal-topic", default="/thermal/image", metavar="T",
                     help="--bag: thermal topic (default /thermal/image)")
    src.add_argument("--gt-topic", default="/ground_truth", metavar="T",
                     help="--bag: vision_msgs/Detection2DArray ground truth giving the initial box when "
                          "--init is not given (default /ground_truth, what `ckd bag write` records)")
    src.add_argument("--init-stamp", default=None, metavar="SEC",
                     help="--bag: start at the pair whose RGB stamp is the first at or after SEC "
                          "(header stamp in seconds, e.g. 1700000000.25)")
    src.add_argument("--slop", type=float, default=0.03, metavar="S",
                     help="--bag: largest RGB/thermal stamp difference paired, in s (the node's sync.slop)")
    src.add_argument("--max-delay", type=float, default=0.5, metavar="S",
                     help="--bag: how long (s of recording time) a message waits for its partner "
                          "(the node's sync.max_delay)")
    src.add_argument("--thermal-offset", type=float, default=0.0, metavar="S",
                     help="--bag: seconds added to thermal stamps before pairing (the node's sync.thermal_offset)")
    src.add_argument("--init", nargs="+", metavar="BOX",
                     help="initial box in RGB pixels: 'x,y,w,h' or four numbers (default: first GT row)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "track", help="track one RGB-T sequence offline and write a result file",
        description="Run a CKD backend over a pair of image folders or videos, a dataset sequence or a rosbag2 "
                    "file from an initial box. Writes one 'x y w h' row per frame (row 1 = initial box; bag "
                    "inputs: 'stamp x y w h'), a provenance file beside it, optionally an overlay video. "
                    "Ctrl-C/SIGTERM keeps the rows tracked so far, marked PARTIAL.")
    add_input_arguments(p)
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=pathlib.Path, default=None,
                     help="result file (default: <sequence name>.txt in the current folder)")
    out.add_argument("--int", dest="as_int", action="store_true",
                     help="truncate boxes to integers like the official CKD result writer")
    out.add_argument("--video", type=pathlib.Path, default=None, metavar="OUT.mp4",
                     help="also write an RGB | thermal overlay video (mp4v)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    be = p.add_argument_group("backend")
    be.add_argument("--backend", default="auto", choices=KINDS)
    be.add_argument("--checkpoint", type=pathlib.Path, default=None,
                    help="official .pth.tar or converted file")
    be.add_argument("--onnx", type=pathlib.Path, default=None, help="exported ONNX model")
    be.add_argument("--preset", default=None, help=f"model preset ({', '.join(PRESETS)})")
    be.add_argument("--precision", default="fp32", choices=PRECISIONS)
    be.add_argument("--device", default=None, help="e.g. cuda:0 or cpu")
    be.add_argument("--threads", type=int, default=None, metavar="N",
                    help="ONNX Runtime intra-op threads (default: the runtime's choice)")
    th = p.add_argument_group("thermal")
    th.add_argument("--thermal-norm", default="auto", choices=THERMAL_CHOICES,
                    help="auto (the shared default of training, benchmark and node): 8-bit thermal as is "
                         "(official behaviour), 'percentile' with the AGC floor otherwise")
    th.add_argument("--percentiles", nargs=2, type=float, default=(1.0, 99.0), metavar=("LO", "HI"))
    th.add_argument("--thermal-range", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                    help="for --thermal-norm fixed, in the input's units (raw counts, degrees)")
    th.add_argument("--invert", action="store_true", help="invert thermal polarity (hot = black)")
    th.add_argument("--homography", default=None, metavar="FILE|9 FLOATS",
                    help="thermal -> RGB homography: the file `ckd calibrate --out` wrote, or 9 comma-"
                         "separated floats (default: frames already registered)")
    tr = p.add_argument_group("tracker")
    tr.add_argument("--lost-threshold", type=float, default=None,
                    help="score below which frames count as unconfident (default: off, official loop)")
    tr.add_argument("--lost-frames", type=int, default=5)
    p.set_defaults(func=run_track)

    b = subparsers.add_parser(
        "bag", help="rosbag2 tools: record a sequence as an MCAP bag (ckd bag write)",
        description="rosbag2 files for the node and `ckd track --bag` (see docs/tracking.md).")
    bsub = b.add_subparsers(dest="bag_command", metavar="ACTION")
    bsub.required = True
    w = bsub.add_parser(
        "write", help="record an image-folder pair, a dataset sequence or a synthetic scene as an MCAP bag",
        description="Writes sensor_msgs/Image rgb8 RGB and mono8/mono16 thermal (as stored) with header stamps "
                    "at --fps, frame ids, and the ground truth as vision_msgs/Detection2DArray on --gt-topic.")
    w.add_argument("out", type=pathlib.Path, metavar="OUT_BAG", help="new rosbag2 folder to create")
    wsrc = w.add_argument_group("input (one of)")
    wsrc.add_argument("--sequence", type=pathlib.Path, metavar="DIR",
                      help="dataset sequence folder (LasHeR/RGBT234/RGBT210/GTOT/VTUAV layouts; its GT file)")
    wsrc.add_argument("--rgb", type=pathlib.Path, metavar="PATH", help="RGB image folder or video")
    wsrc.add_argument("--thermal", type=pathlib.Path, metavar="PATH", help="thermal image folder or video")
    wsrc.add_argument("--gt", type=pathlib.Path, default=None, metavar="FILE",
                      help="with --rgb/--thermal: ground-truth file, one x,y,w,h row per frame")
    wsrc.add_argument("--synthetic", type=int, default=None, metavar="SEED",
                      help="a synthetic scene (ckd_ros.synthetic) with this seed: 16-bit thermal")
    wsrc.add_argument("--scenario", default=None, help="--synthetic: scenario (default: from the seed)")
    wsrc.add_argument("--size", default="320x256", metavar="WxH", help="--synthetic: frame size (default 320x256)")
    w.add_argument("--frames", type=int, default=None, metavar="N",
                   help="at most N frames (--synthetic: exactly N, default 60)")
    w.add_argument("--fps", type=float, default=30.0, help="frame rate of the header stamps (default 30)")
    w.add_argument("--start", default="1700000000", metavar="SEC", help="stamp of frame 0 in seconds")
    w.add_argument("--rgb-topic", default="/rgb/image")
    w.add_argument("--thermal-topic", default="/thermal/image")
    w.add_argument("--gt-topic", default="/ground_truth")
    w.add_argument("--rgb-frame-id", default="camera_rgb")
    w.add_argument("--thermal-frame-id", default="camera_thermal")
    w.set_defaults(func=run_bag_write)

    c = subparsers.add_parser(
        "calibrate", help="thermal -> RGB homography from point pairs or from camera_info + extrinsics",
        description="Either reads >= 4 rows 'thermal_x thermal_y rgb_x rgb_y' (CSV/text as spreadsheets save "
                    "it, or YAML) and fits a homography with RANSAC, or computes it from two camera_info YAML "
                    "files (camera_calibration_parsers format) and the transform thermal optical frame -> RGB "
                    "optical frame (with a points file too: its reprojection error on them). Degenerate "
                    "points and untrustworthy results are refused. Prints the error, the thermal coverage of "
                    "the RGB frame and the 9 floats for registration.homography.")
    c.add_argument("points", type=pathlib.Path, metavar="POINTS_FILE", nargs="?", default=None)
    c.add_argument("--out", type=pathlib.Path, default=None, help="also write the result as YAML")
    c.add_argument("--ransac-threshold", type=float, default=3.0, metavar="PX",
                   help="max reprojection error of an inlier (default 3 px)")
    c.add_argument("--rgb-info", type=pathlib.Path, default=None, metavar="YAML",
                   help="RGB camera_info YAML (image_width, camera_matrix, distortion_model, ...)")
    c.add_argument("--thermal-info", type=pathlib.Path, default=None, metavar="YAML", help="thermal camera_info YAML")
    c.add_argument("--extrinsic", nargs="+", default=None, metavar="V",
                   help="thermal optical frame -> RGB optical frame: 'x y z qx qy qz qw' (what "
                        "`ros2 run tf2_ros tf2_echo <rgb_optical> <thermal_optical>` prints) or 16 numbers (4x4)")
    c.add_argument("--depth", type=float, default=0.0, metavar="M",
                   help="distance of the registered plane from the thermal camera (m); 0 = infinity")
    c.add_argument("--thermal-size", default=None, metavar="WxH", help="thermal image size (for the coverage)")
    c.add_argument("--rgb-size", default=None, metavar="WxH", help="RGB image size (for the coverage)")
    c.set_defaults(func=run_calibrate)


# ---- helpers ---------------------------------------------------------------------------------
def parse_box(values: List[str]) -> List[float]:
    """--init text -> 4 floats (parsing only: `ckd_ros.boxes.check_box` validates the box against the
    first frame in `Tracker.initialize`)."""
    fields = [f for f in re.split(r"[,\s]+", " ".join(values).strip()) if f]
    try:
        box = [float(f) for f in fields]
    except ValueError:
        box = []
    if len(box) != 4:
        raise BoxError(f"--init needs 4 numbers x,y,w,h (RGB pixels), got {' '.join(values)!r}")
    return box


def load_homography(spec: str):
    """A calibrate output file (YAML/JSON) or 9 comma-separated floats -> Registration."""
    from ckd_ros.tracking.registration import Registration

    path = pathlib.Path(spec)
    if path.is_file():
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CKDError(f"--homography: cannot read {path}: {exc}") from None
        if isinstance(data, dict):
            data = data.get("registration", data)
            data = data.get("homography") if isinstance(data, dict) else data
        values = data
    else:
        try:
            values = [float(v) for v in re.split(r"[,\s]+", spec.strip("[] ")) if v]
        except ValueError:
            raise CKDError(f"--homography {spec!r} is neither a file nor 9 comma-separated numbers") from None
    try:
        return Registration(values)
    except ValueError as exc:
        raise CKDError(f"--homography: {exc}") from None


def _open_backend(args):
    """The backend factory, imported only now (torch / TensorRT are heavy)."""
    if args.checkpoint is None and args.onnx is None:
        raise CKDError("no model: give --checkpoint FILE (official .pth.tar or converted) or --onnx FILE")
    for flag, path in (("--checkpoint", args.checkpoint), ("--onnx", args.onnx)):
        if path is not None and not path.exists():
            raise CKDError(f"{flag} {path} does not exist")
    try:
        from ckd_ros.runtime import open_backend
    except ImportError as exc:
        raise CKDError(f"the inference runtime is not available in this build ({exc}); "
                       "install ckd_ros with its runtime dependencies") from None
    return open_backend(args.backend, checkpoint=args.checkpoint, onnx=args.onnx, preset=args.preset,
                        precision=args.precision, device=args.device, threads=args.threads)


@dataclass
class TrackInput:
    """What `ckd track` tracks: name, frame pairs (rgb, thermal as stored[, stamp]), expected count
    (progress only: video metadata can be wrong), frame rate, initial box, and whether rows carry stamps."""

    name: str
    frames: Iterable
    total: Optional[int]
    fps: float
    box: List[float]
    stamped: bool = False
    description: Dict[str, str] = field(default_factory=dict)


def open_input(args) -> TrackInput:
    """The frames, initial box and name of the input options (`add_input_arguments`); InputError/BoxError
    for a missing, ambiguous or unreadable input."""
    from ckd_ros.frames.folders import FrameSource, detect_layout, read_first_box

    given = [flag for flag, v in (("--sequence", args.sequence), ("--bag", args.bag)) if v is not None]
    if args.rgb is not None or args.thermal is not None:
        given.append("--rgb/--thermal")
    if len(given) > 1:
        raise InputError(f"give one input: --sequence DIR, --bag PATH, or --rgb PATH --thermal PATH (got "
                         f"{' and '.join(given)})")
    if args.bag is not None:
        return _bag_input(args)
    if args.init_stamp is not None:
        raise InputError("--init-stamp needs --bag (image folders and videos have no stamps)")
    gt = None
    if args.sequence is not None:
        rgb_path, tir_path, gt = detect_layout(args.sequence)
        name = args.sequence.resolve().name
    elif args.rgb is not None and args.thermal is not None:
        rgb_path, tir_path = args.rgb, args.thermal
        name = args.rgb.resolve().stem if args.rgb.is_file() else args.rgb.resolve().parent.name
    else:
        raise InputError("no input: give --sequence DIR, --bag PATH, or both --rgb PATH and --thermal PATH")
    if args.init is not None:
        box = parse_box(args.init)
    elif gt is not None:
        box = read_first_box(gt)
    else:
        raise InputError("no initial box: give --init X,Y,W,H "
                         "(no init.txt / rgb.txt / groundTruth_v.txt found)")
    rgb_src, tir_src = FrameSource(rgb_path), FrameSource(tir_path, unchanged=True)
    if len(rgb_src) != len(tir_src):
        print(f"ckd track: warning: {len(rgb_src)} RGB but {len(tir_src)} thermal frames; "
              "pairing by index up to the shorter one", file=sys.stderr)
    return TrackInput(name, zip(rgb_src, tir_src), min(len(rgb_src), len(tir_src)), rgb_src.fps, box,
                      description={"rgb": str(rgb_path), "thermal": str(tir_path)})


def _bag_input(args) -> TrackInput:
    from ckd_ros.frames.rosbag import BagPairs

    pairs = BagPairs(args.bag, args.rgb_topic, args.thermal_topic, slop_s=args.slop,
                     max_delay_s=args.max_delay, start_ns=_stamp_ns(args.init_stamp),
                     thermal_offset_s=args.thermal_offset)
    if args.init is not None:
        box = parse_box(args.init)
    else:
        box = pairs.ground_truth_box(args.gt_topic)
        if box is None:
            raise InputError(f"no initial box: give --init X,Y,W,H (the bag has no ground truth on {args.gt_topic} "
                             "at the first tracked frame)")
    name = pathlib.Path(args.bag).resolve().name
    name = name[:-5] if name.endswith(".mcap") else name
    return TrackInput(name, pairs, pairs.rgb_count, pairs.fps, box, stamped=True,
                      description={"bag": str(args.bag), "rgb_topic": args.rgb_topic,
                                   "thermal_topic": args.thermal_topic, "slop_s": str(args.slop)})


def _stamp_ns(value: Optional[str]) -> Optional[int]:
    """'1700000000.25' or '1700000000.250000000' (seconds) -> int nanoseconds, exactly."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)(?:\.(\d{0,9}))?\s*", str(value))
    if m is None:
        raise InputError(f"stamp {value!r} must be seconds like 1700000000.25 (a header stamp)")
    return int(m.group(1)) * 10**9 + int((m.group(2) or "").ljust(9, "0") or 0)


def result_lines(results: Sequence, as_int: bool, stamped: bool) -> List[str]:
    """Result rows: 'x y w h' (4 decimals, or truncated ints like the official writer with `as_int`),
    preceded by the RGB header stamp 'sec.nanosec' for stamped (bag) inputs."""
    lines = []
    for r in results:
        if as_int:  # official writer: astype(int) truncates toward zero
            row = " ".join(str(int(v)) for v in r.box_xywh)
        else:
            row = " ".join(f"{v:.4f}" for v in r.box_xywh)
        if stamped:
            row = f"{fmt_stamp(int(r.stamp[0]))} {row}"
        lines.append(row)
    return lines


def provenance_path(out_path: pathlib.Path) -> pathlib.Path:
    """`flight.txt` -> `flight.provenance.json` (beside the result file)."""
    return out_path.with_name(out_path.stem + ".provenance.json")


class _ResultFile:
    """The result file and its provenance, rewritten atomically: after frame 0 and every FLUSH_S
    seconds as PARTIAL (first line '# PARTIAL: ...'), and at the end as complete (rows only). So an
    older result file never outlives the first frame of a new run, and a killed run leaves its
    finished rows marked partial."""

    FLUSH_S = 5.0

    def __init__(self, path: pathlib.Path, as_int: bool, stamped: bool, provenance: dict, total) -> None:
        self.path, self.as_int, self.stamped, self.provenance, self.total = path, as_int, stamped, provenance, total
        self._last_flush = None

    def write(self, results: Sequence, status: str, note: str = "") -> None:
        from ckd_ros.tracking.provenance import write_atomic, write_provenance

        lines = result_lines(results, self.as_int, self.stamped)
        if status != "complete":
            of = f" of {self.total}" if self.total else ""
            why = note or "run in progress, or stopped before its end"
            lines.insert(0, f"# PARTIAL: {len(results)}{of} frames ({why}); see {provenance_path(self.path).name}")
        self.provenance.update(status=status, frames_written=len(results), note=note or None,
                               updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        write_provenance(provenance_path(self.path), self.provenance)
        write_atomic(self.path, "\n".join(lines) + "\n")
        self._last_flush = time.monotonic()

    def maybe_flush(self, results: Sequence) -> None:
        if self._last_flush is None or time.monotonic() - self._last_flush >= self.FLUSH_S:
            self.write(results, "running")


def _provenance(args, backend, tracker, converter: ThermalConverter, source: TrackInput) -> dict:
    from ckd_ros.tracking.provenance import make_provenance, model_record, tracker_record

    return make_provenance(
        model_record(args.checkpoint, args.onnx, args.preset),
        getattr(backend, "name", str(args.backend)), getattr(backend, "precision", args.precision),
        tracker_record(tracker.params, tracker.template_size, tracker.search_size), converter.describe(),
        command="ckd track", input=source.description, device=args.device, frames_total=source.total,
        homography=args.homography)


def _coverage_summary(registration, rgb_shape, tir_shape, box) -> dict:
    """Thermal coverage of the RGB frame and of the initial box (`registration.thermal_overlap`) from
    the first frame's sizes; warns on stderr below `registration.MIN_COVERAGE`."""
    from ckd_ros.tracking.registration import thermal_overlap

    if registration.is_identity:
        return {}
    (rh, rw), (th, tw) = rgb_shape[:2], tir_shape[:2]
    overlap = thermal_overlap(registration, (tw, th), (rw, rh), box)
    warning = overlap.warning()
    if warning:
        print(f"ckd track: warning: {warning}", file=sys.stderr)
    return overlap.as_dict()


# ---- commands --------------------------------------------------------------------------------
def run_track(args) -> int:
    from tqdm import tqdm

    from ckd_ros.tracking.loop import interruptible, signal_name, track_frames
    from ckd_ros.tracking.overlay import OverlayWriter, compose
    from ckd_ros.tracking.registration import Registration
    from ckd_ros.tracking.tracker import Tracker, TrackerParams

    source = open_input(args)
    registration = load_homography(args.homography) if args.homography else Registration.identity()
    coverage: dict = {}
    try:
        params = TrackerParams(lost_threshold=args.lost_threshold, lost_frames=args.lost_frames)
        params.validate()
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    out_path = args.out if args.out is not None else pathlib.Path(f"{source.name}.txt")
    total = source.total
    if args.max_frames is not None:
        total = args.max_frames if total is None else min(total, args.max_frames)
    converter = ThermalConverter(args.thermal_norm, args.percentiles, args.thermal_range, args.invert)

    backend = _open_backend(args)
    tracker = Tracker(backend, params, registration)
    results: List = []
    out = _ResultFile(out_path, args.as_int, source.stamped, {}, total)
    writer = OverlayWriter(str(args.video), source.fps) if args.video else None
    if writer is not None:
        args.video.parent.mkdir(parents=True, exist_ok=True)
    interrupted = None
    t_start = time.perf_counter()
    try:
        with interruptible():
            bar = tqdm(total=total, unit="frame", desc=f"ckd track {source.name}", disable=args.quiet,
                       file=sys.stderr)
            for r in track_frames(tracker, source.frames, source.box, converter, args.max_frames):
                if not results:
                    out.provenance = _provenance(args, backend, tracker, converter, source)
                    coverage = _coverage_summary(registration, r.rgb.shape, r.tir8.shape, source.box)
                results.append(r)
                if writer is not None:
                    shown = registration.warp_thermal(r.tir8, r.rgb.shape)
                    writer.write(compose(r.rgb, shown, r.box_xywh, r.score, r.state, r.index))
                r.rgb = r.tir8 = None  # keep boxes, not frames
                out.maybe_flush(results)
                bar.update(1)
            bar.close()
    except KeyboardInterrupt as exc:
        interrupted = exc
    except CKDError as exc:  # a bad frame mid-run: keep what was tracked, marked partial, then report
        if results:
            out.write(results, "partial", f"stopped after {len(results)} frames by an error: {exc}")
        raise
    finally:
        if writer is not None:
            writer.close()
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - t_start
    if interrupted is not None:
        name = signal_name(interrupted)
        if not results:
            print(f"ckd track: interrupted by {name} before the first frame; nothing written", file=sys.stderr)
            return getattr(interrupted, "exit_code", 130)
        of = f" of {total}" if total else ""
        out.write(results, "partial", f"interrupted by {name} after {len(results)}{of} frames")
        print(f"ckd track: interrupted by {name}: {len(results)}{of} frames tracked; their rows are in "
              f"{out_path}, marked PARTIAL (see {provenance_path(out_path).name})", file=sys.stderr)
        return getattr(interrupted, "exit_code", 130)
    if not results:
        raise FrameError("no frames were read")
    out.write(results, "complete")
    summary = {"frames": len(results), "fps": round(len(results) / elapsed, 2), "result": str(out_path),
               "lost_frames": sum(r.state.name == "LOST" for r in results),
               "nonfinite_frames": tracker.nonfinite_frames}
    for stage in ("preprocess", "inference", "postprocess"):
        vals = [r.timing_ms[stage] for r in results[1:] if stage in r.timing_ms]
        if vals:
            summary[f"{stage}_ms"] = round(float(np.mean(vals)), 3)
    if args.video:
        summary["video"] = str(args.video)
    summary["provenance"] = str(provenance_path(out_path))
    summary.update(coverage)
    if converter.nonfinite_frames:
        print(f"ckd track: warning: {converter.nonfinite_frames} thermal frames had NaN/inf pixels "
              "(shown as the cold end)", file=sys.stderr)
    if tracker.nonfinite_frames:
        print(f"ckd track: warning: the network returned NaN/inf maps on {tracker.nonfinite_frames} frames "
              "(the track was held at the last good box; an FP16 engine that overflows does this: try fp32)",
              file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _bag_write_input(args):
    """(frames iterable, GT boxes or None, frame count or None) for `ckd bag write`."""
    from ckd_ros.frames.datasets import read_gt_file
    from ckd_ros.frames.folders import FrameSource, detect_layout

    chosen = [f for f, v in (("--sequence", args.sequence), ("--rgb/--thermal", args.rgb or args.thermal),
                             ("--synthetic", args.synthetic is not None)) if v]
    if len(chosen) != 1:
        raise InputError("give one input: --sequence DIR, --rgb PATH --thermal PATH, or --synthetic SEED")
    if args.frames is not None and args.frames < 1:
        raise ParameterError(f"--frames must be at least 1, got {args.frames}")
    if not args.fps > 0:
        raise ParameterError(f"--fps must be > 0, got {args.fps}")
    if args.synthetic is not None:
        from ckd_ros.synthetic import make_sequence

        m = re.fullmatch(r"(\d+)x(\d+)", args.size)
        if m is None:
            raise ParameterError(f"--size {args.size!r} must be WxH, e.g. 320x256")
        try:
            n = 60 if args.frames is None else args.frames
            seq = make_sequence(args.synthetic, n, (int(m.group(1)), int(m.group(2))), args.scenario)
        except ValueError as exc:
            raise ParameterError(f"--synthetic: {exc}") from None
        return zip(seq.rgb, seq.thermal16), [list(map(float, b)) for b in seq.boxes], len(seq)
    gt_file = args.gt
    if args.sequence is not None:
        rgb_path, tir_path, found = detect_layout(args.sequence)
        gt_file = gt_file or found
    elif args.rgb is not None and args.thermal is not None:
        rgb_path, tir_path = args.rgb, args.thermal
    else:
        raise InputError("--rgb needs --thermal (and the other way round)")
    rgb_src, tir_src = FrameSource(rgb_path), FrameSource(tir_path, unchanged=True)
    n = min(len(rgb_src), len(tir_src))
    if args.frames is not None:
        n = min(n, args.frames)
    boxes = None
    if gt_file is not None:
        rows = read_gt_file(gt_file, corners=gt_file.name.startswith("groundTruth_"))
        stride = 10 if len(rows) < len(rgb_src) and len(rows) == -(-len(rgb_src) // 10) else 1  # VTUAV: every 10th
        boxes = [None] * n
        for i, row in enumerate(rows):
            if i * stride < n:
                boxes[i * stride] = [float(v) for v in row]
    frames = ((rgb, tir) for i, (rgb, tir) in enumerate(zip(rgb_src, tir_src)) if i < n)
    return frames, boxes, n


def run_bag_write(args) -> int:
    from ckd_ros.frames.rosbag import write_bag

    frames, boxes, n = _bag_write_input(args)
    stamps = write_bag(args.out, frames, args.fps, boxes, rgb_topic=args.rgb_topic, thermal_topic=args.thermal_topic,
                       gt_topic=args.gt_topic, rgb_frame_id=args.rgb_frame_id,
                       thermal_frame_id=args.thermal_frame_id, start_ns=_stamp_ns(args.start))
    if not stamps:
        raise FrameError("no frames were read; nothing recorded")
    print(json.dumps({"bag": str(args.out), "frames": len(stamps), "first_stamp": fmt_stamp(stamps[0]),
                      "last_stamp": fmt_stamp(stamps[-1]), "topics": [args.rgb_topic, args.thermal_topic]
                      + ([args.gt_topic] if boxes is not None else [])}))
    return 0


def _size(text, flag: str):
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX, ]\s*(\d+)\s*", text)
    if m is None or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise CKDError(f"{flag} {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 640x512")
    return int(m.group(1)), int(m.group(2))


def run_calibrate(args) -> int:
    from ckd_ros.tracking.calibration import calibrate, calibrate_from_camera_info, load_correspondences

    infos = (args.rgb_info, args.thermal_info, args.extrinsic)
    if any(v is not None for v in infos) and not all(v is not None for v in infos):
        raise CKDError("camera_info mode needs all of --rgb-info, --thermal-info and --extrinsic")
    if args.points is None and args.rgb_info is None:
        raise CKDError("give a POINTS_FILE, or --rgb-info --thermal-info --extrinsic (camera_info mode)")
    points = load_correspondences(args.points) if args.points is not None else None
    if args.rgb_info is not None:
        result = calibrate_from_camera_info(args.rgb_info, args.thermal_info, " ".join(args.extrinsic),
                                            args.depth or None, points)
    else:
        result = calibrate(points, args.ransac_threshold, _size(args.thermal_size, "--thermal-size"),
                           _size(args.rgb_size, "--rgb-size"))
    print(result.report())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        header = f"# ckd calibrate: homography from {result.source}"
        if len(result.errors):
            err_in = result.errors[result.inliers]
            header += (f"; {int(result.inliers.sum())}/{len(result.errors)} inliers, "
                       f"reprojection error mean {err_in.mean():.3f} px, max {err_in.max():.3f} px")
        args.out.write_text(header + "\n" + result.yaml_snippet() + "\n", encoding="utf-8")
        print(f"written: {args.out}")
    return 0
