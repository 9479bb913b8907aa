"""`ckd track` (offline tracking of an RGB-T sequence) and `ckd calibrate` (thermal -> RGB homography)."""
from __future__ import annotations

import json
import pathlib
import re
import sys
import time
from typing import List

import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.runtime.options import KINDS, PRECISIONS, PRESETS

THERMAL_CHOICES = ("auto", "minmax", "percentile", "fixed", "none")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "track", help="track one RGB-T sequence offline and write a result file",
        description="Run a CKD backend over a pair of image folders or videos from an initial box. Writes "
                    "one 'x y w h' row per frame (row 1 = initial box), optionally an overlay video.")
    src = p.add_argument_group("input")
    src.add_argument("--sequence", type=pathlib.Path, metavar="DIR",
                     help="dataset sequence folder (visible/+infrared/, v/+i/, rgb/+ir/ ...; "
                          "first GT row of init.txt / rgb.txt / groundTruth_v.txt = initial box)")
    src.add_argument("--rgb", type=pathlib.Path, metavar="PATH", help="RGB image folder or video")
    src.add_argument("--thermal", type=pathlib.Path, metavar="PATH", help="thermal image folder or video")
    src.add_argument("--init", nargs="+", metavar="BOX",
                     help="initial box in RGB pixels: 'x,y,w,h' or four numbers (default: first GT row)")
    src.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
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
    fields = [f for f in re.split(r"[,\s]+", " ".join(values).strip()) if f]
    try:
        box = [float(f) for f in fields]
    except ValueError:
        box = []
    if len(box) != 4:
        raise CKDError(f"--init needs 4 numbers x,y,w,h (RGB pixels), got {' '.join(values)!r}")
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


def _thermal_normalizer(args, sample: np.ndarray):
    from ckd_ros.frames.thermal import ThermalNormalizer

    try:
        return ThermalNormalizer(args.thermal_norm, percentiles=args.percentiles, value_range=args.thermal_range,
                                 invert=args.invert)
    except ValueError as exc:
        raise CKDError(f"thermal options: {exc}") from None


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
                        precision=args.precision, device=args.device)


def _inputs(args):
    from ckd_ros.frames.folders import FrameSource, detect_layout, read_first_box

    gt = None
    if args.sequence is not None:
        if args.rgb or args.thermal:
            raise CKDError("give either --sequence DIR or --rgb PATH --thermal PATH, not both")
        rgb_path, tir_path, gt = detect_layout(args.sequence)
        name = args.sequence.resolve().name
    elif args.rgb is not None and args.thermal is not None:
        rgb_path, tir_path = args.rgb, args.thermal
        name = args.rgb.resolve().stem if args.rgb.is_file() else args.rgb.resolve().parent.name
    else:
        raise CKDError("no input: give --sequence DIR, or both --rgb PATH and --thermal PATH")
    if args.init is not None:
        box = parse_box(args.init)
    elif gt is not None:
        box = read_first_box(gt)
    else:
        raise CKDError("no initial box: give --init X,Y,W,H "
                       "(no init.txt / rgb.txt / groundTruth_v.txt found)")
    rgb_src, tir_src = FrameSource(rgb_path), FrameSource(tir_path, unchanged=True)
    return name, rgb_src, tir_src, box


def _write_results(path: pathlib.Path, boxes: List[np.ndarray], as_int: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for b in boxes:
            if as_int:  # official writer: astype(int) truncates toward zero
                fh.write(" ".join(str(int(v)) for v in b) + "\n")
            else:
                fh.write(" ".join(f"{v:.4f}" for v in b) + "\n")


def _coverage_summary(registration, rgb_src, tir_src, box) -> dict:
    """Thermal coverage of the RGB frame and of the initial box (`registration.thermal_overlap`); warns
    on stderr below `registration.MIN_COVERAGE`."""
    from ckd_ros.tracking.registration import thermal_overlap

    if registration.is_identity:
        return {}
    first = [next(iter(src), None) for src in (rgb_src, tir_src)]  # one frame each, read again later
    if first[0] is None or first[1] is None:
        return {}
    (rh, rw), (th, tw) = first[0].shape[:2], first[1].shape[:2]
    overlap = thermal_overlap(registration, (tw, th), (rw, rh), box)
    warning = overlap.warning()
    if warning:
        print(f"ckd track: warning: {warning}", file=sys.stderr)
    return overlap.as_dict()


# ---- commands --------------------------------------------------------------------------------
def run_track(args) -> int:
    from tqdm import tqdm

    from ckd_ros.tracking.overlay import OverlayWriter, compose
    from ckd_ros.tracking.registration import Registration
    from ckd_ros.tracking.tracker import Tracker, TrackerParams

    name, rgb_src, tir_src, box = _inputs(args)
    if len(rgb_src) != len(tir_src):
        print(f"ckd track: warning: {len(rgb_src)} RGB but {len(tir_src)} thermal frames; "
              "pairing by index up to the shorter one", file=sys.stderr)
    registration = load_homography(args.homography) if args.homography else Registration.identity()
    coverage = _coverage_summary(registration, rgb_src, tir_src, box)  # warns before the run
    try:
        params = TrackerParams(lost_threshold=args.lost_threshold, lost_frames=args.lost_frames)
        params.validate()
    except ValueError as exc:
        raise CKDError(str(exc)) from None
    out_path = args.out if args.out is not None else pathlib.Path(f"{name}.txt")
    total = min(len(rgb_src), len(tir_src))
    if args.max_frames is not None:
        total = min(total, args.max_frames)

    backend = _open_backend(args)
    tracker = Tracker(backend, params, registration)
    writer = OverlayWriter(str(args.video), rgb_src.fps) if args.video else None
    if writer is not None:
        args.video.parent.mkdir(parents=True, exist_ok=True)
    boxes, states, stage_ms = [], [], []
    nonfinite_frames = 0
    normalizer = None
    t_start = time.perf_counter()
    try:
        bar = tqdm(total=total, unit="frame", desc=f"ckd track {name}", disable=args.quiet, file=sys.stderr)
        for idx, (rgb, tir_raw) in enumerate(zip(rgb_src, tir_src)):
            if idx >= total:
                break
            if normalizer is None:
                normalizer = _thermal_normalizer(args, tir_raw)
            try:
                tir = normalizer(tir_raw)
                nonfinite_frames += normalizer.last_nonfinite > 0
                result = tracker.initialize(rgb, tir, box) if idx == 0 else tracker.track(rgb, tir)
            except ValueError as exc:
                raise CKDError(f"frame {idx}: {exc}") from None
            if idx > 0:
                stage_ms.append(result.timing_ms)
            boxes.append(result.box_xywh)
            states.append(result.state.name)
            if writer is not None:
                shown = registration.warp_thermal(tir, rgb.shape)
                writer.write(compose(rgb, shown, result.box_xywh, result.score, result.state, idx))
            bar.update(1)
        bar.close()
    finally:
        if writer is not None:
            writer.close()
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - t_start
    if not boxes:
        raise CKDError("no frames were read")
    _write_results(out_path, boxes, args.as_int)
    summary = {"frames": len(boxes), "fps": round(len(boxes) / elapsed, 2), "result": str(out_path),
               "lost_frames": states.count("LOST")}
    for stage in ("preprocess", "inference", "postprocess"):
        vals = [t[stage] for t in stage_ms if stage in t]
        if vals:
            summary[f"{stage}_ms"] = round(float(np.mean(vals)), 3)
    if args.video:
        summary["video"] = str(args.video)
    summary.update(coverage)
    if nonfinite_frames:
        print(f"ckd track: warning: {nonfinite_frames} thermal frames had NaN/inf pixels "
              "(shown as the cold end)", file=sys.stderr)
    print(json.dumps(summary))
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
