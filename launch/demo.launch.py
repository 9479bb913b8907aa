"""The CKD demo: synthetic RGB-T camera -> ckd_tracker (demo model, CPU) -> scripted set_target + scoring.

  ros2 launch ckd_ros demo.launch.py [duration:=20] [rviz:=true] [scenario:=night] [seed:=3]
  bash scripts/demo.sh [same arguments]      # = `make demo`; no `ros2 launch` verb needed

Nodes run as `python -m <module>` so the same file works from a source checkout and an install.
The launch ends when demo_monitor has finished (after `duration` seconds of tracking); its summary
is printed and written to `<out_dir>/demo_summary.json`, the overlay video to `<out_dir>/demo.mp4`.
"""
import pathlib
import shutil
import sys

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

TRUE = ("true", "1", "yes", "on")
ARGS = {  # name: (default, description)
    "duration": ("20.0", "seconds of tracking after set_target"),
    "rviz": ("false", "open rviz2 with config/ckd_tracker.rviz (needs a ROS 2 install with rviz2)"),
    "scenario": ("", "synthetic scenario (clean, night, crossover, occlusion, distractors, scale, "
                     "camera_motion, mixed); empty: from config/demo.yaml"),
    "seed": ("", "scene seed; empty: from config/demo.yaml"),
    "rate_hz": ("", "camera rate; empty: from config/demo.yaml"),
    "start_frame": ("", "first scene frame the camera shows; empty: from config/demo.yaml"),
    "onnx": ("", "ONNX model; empty: engines/demo_small_int8.onnx (INT8, same accuracy; docs/deployment.md), "
                 "else engines/demo_small.onnx"),
    "checkpoint": ("", "converted checkpoint instead of the ONNX (e.g. with backend:=torch)"),
    "backend": ("onnxruntime", "tracker backend (onnxruntime | torch | auto | tensorrt)"),
    "threads": ("1", "CPU threads of the tracker's network (OMP_NUM_THREADS): 1 leaves the second core to "
                     "the camera, the node's I/O and the monitor; empty: all cores"),
    "params_file": ("", "parameter file for all demo nodes; empty: config/demo.yaml"),
    "out_dir": ("out", "where demo.mp4 and demo_summary.json go"),
    "video": ("true", "write the overlay video"),
    "check": ("false", "exit non-zero when below the acceptance (IoU > 0.5 on 80% of frames, >= 15 fps)"),
    "thermal_offset": ("", "thermal camera offset 'dx,dy' in pixels; empty: from config/demo.yaml"),
}


def _package_root() -> pathlib.Path:
    """The source checkout when run from it, else the installed share directory."""
    here = pathlib.Path(__file__).resolve().parents[1]
    if (here / "config" / "demo.yaml").is_file():
        return here
    from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415

    return pathlib.Path(get_package_share_directory("ckd_ros"))


def _default_model(root: pathlib.Path) -> pathlib.Path:
    """The INT8 demo model when it ships (measured to keep the FP32 accuracy), else the FP32 one."""
    int8 = root / "engines" / "demo_small_int8.onnx"
    return int8 if int8.is_file() else root / "engines" / "demo_small.onnx"


def _yaml_params(path: pathlib.Path, node: str) -> dict:
    import yaml  # noqa: PLC0415

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict((data.get(node) or {}).get("ros__parameters") or {})


def _ros_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_ros_value(v) for v in value) + "]"
    return str(value)


def _node(module: str, params_file: pathlib.Path, overrides: dict, name: str, env=None) -> ExecuteProcess:
    cmd = [sys.executable, "-m", module, "--ros-args", "--params-file", str(params_file)]
    for key, value in overrides.items():
        cmd += ["-p", f"{key}:={_ros_value(value)}"]
    return ExecuteProcess(cmd=cmd, name=name, output="screen", emulate_tty=False, additional_env=env)


def _demo(context, *args, **kwargs):
    from ckd_ros.synthetic.rig import rig_homography  # noqa: PLC0415 - numpy/OpenCV only

    a = {name: LaunchConfiguration(name).perform(context) for name in ARGS}
    root = _package_root()
    params_file = pathlib.Path(a["params_file"]) if a["params_file"] else root / "config" / "demo.yaml"
    cam_file = _yaml_params(params_file, "synthetic_camera")

    cam = {}
    for arg, key, cast in (("seed", "seed", int), ("scenario", "scenario", str), ("rate_hz", "rate_hz", float),
                           ("start_frame", "start_frame", int)):
        if a[arg]:
            cam[key] = cast(a[arg])
    offset, matrix = cam_file.get("thermal.offset", [0.0, 0.0]), cam_file.get("thermal.homography")
    if a["thermal_offset"]:
        offset, matrix = [float(v) for v in a["thermal_offset"].split(",")], None
        cam["thermal.offset"], cam["thermal.homography"] = offset, [0.0]
    # the tracker gets the true rig homography (what `ckd calibrate` would estimate on a real rig)
    homography = [float(v) for v in rig_homography(offset, matrix).ravel()]

    tracker = {"backend": a["backend"], "registration.homography": homography}
    if a["checkpoint"]:
        tracker["model.checkpoint"] = str(pathlib.Path(a["checkpoint"]).resolve())
        tracker["model.onnx"] = str(pathlib.Path(a["onnx"]).resolve()) if a["onnx"] else ""
    else:
        onnx = pathlib.Path(a["onnx"]) if a["onnx"] else _default_model(root)
        if not onnx.is_file():
            return [LogInfo(msg=f"demo: model {onnx} not found (run `make demo-model` or pass onnx:=PATH)"),
                    EmitEvent(event=Shutdown(reason="no demo model"))]
        tracker["model.onnx"] = str(onnx.resolve())
        if not a["onnx"] and onnx.name.endswith("_int8.onnx"):
            tracker["precision"] = "int8"  # the shipped INT8 demo model (node checks it is a QDQ file)
    monitor = {"duration_s": float(a["duration"]), "out_dir": str(pathlib.Path(a["out_dir"]).resolve()),
               "video": a["video"].lower() in TRUE, "check": a["check"].lower() in TRUE,
               "thermal.homography": homography}

    camera = _node("ckd_ros.demo.camera", params_file, cam, "synthetic_camera")
    threads = {"OMP_NUM_THREADS": a["threads"]} if a["threads"] else None
    track = _node("ckd_ros.node.tracker_node", params_file, tracker, "ckd_tracker", threads)
    mon = _node("ckd_ros.demo.monitor", params_file, monitor, "demo_monitor")
    actions = [camera, track, mon,
               RegisterEventHandler(OnProcessExit(target_action=mon, on_exit=[
                   EmitEvent(event=Shutdown(reason="demo finished"))]))]
    if a["rviz"].lower() in TRUE:
        rviz = shutil.which("rviz2")
        if rviz:
            actions.append(ExecuteProcess(cmd=[rviz, "-d", str(root / "config" / "ckd_tracker.rviz"),
                                               "-f", "rgb_camera"],  # the synthetic camera's RGB frame
                                          name="rviz2", output="screen"))
        else:
            actions.append(LogInfo(msg="demo: rviz:=true but rviz2 is not installed (the ROS 2 runtime wheel "
                                       "has no GUI tools). Install ROS 2 with rviz2 (e.g. apt install "
                                       f"ros-jazzy-rviz2) and source it, or watch {a['out_dir']}/demo.mp4. "
                                       "Continuing headless."))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=d, description=desc) for name, (d, desc) in ARGS.items()]
        + [OpaqueFunction(function=_demo)])
