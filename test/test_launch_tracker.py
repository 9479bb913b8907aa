"""launch/ckd_tracker.launch.py through launch.LaunchService in its own process (what `ros2 launch`
does; the wheel has no `launch` verb), against a colcon-like install prefix made in a temp dir.

Two tracker instances from the same file: one autostarting with remapped topics in a namespace,
one with autostart:=false driven through its lifecycle services. Both must track, and SIGINT must
end the launch cleanly.
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_node_support import MovingTarget, domain_id, make_context, shutdown_context, wait_for

pytestmark = pytest.mark.ros

REPO = pathlib.Path(__file__).resolve().parents[1]

# the body of `ros2 launch`: include the file with name:=value arguments and run until SIGINT
LAUNCH = """
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
ld = LaunchDescription()
for group in sys.argv[1:]:
    path, *args = group.split(' ')
    ld.add_action(IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                           launch_arguments=[a.split(':=', 1) for a in args]))
ls = LaunchService(argv=[])
ls.include_launch_description(ld)
sys.exit(ls.run())
"""


def make_prefix(root: pathlib.Path) -> pathlib.Path:
    """share/ament_index + share/ckd_ros/{launch,config} + lib/ckd_ros/ckd_tracker, as colcon installs them."""
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "ckd_ros").write_text("")
    share = root / "share" / "ckd_ros"
    for sub in ("launch", "config"):
        (share / sub).mkdir(parents=True)
        for f in (REPO / sub).iterdir():
            if f.is_file():
                (share / sub / f.name).symlink_to(f)
    (share / "package.xml").symlink_to(REPO / "package.xml")
    lib = root / "lib" / "ckd_ros"
    lib.mkdir(parents=True)
    exe = lib / "ckd_tracker"
    exe.write_text(f"#!{sys.executable}\nimport sys\nfrom ckd_ros.node.tracker_node import main\nsys.exit(main())\n")
    exe.chmod(0o755)
    return root


def tiny_checkpoint(path: pathlib.Path) -> pathlib.Path:
    import torch

    from ckd_ros.model import CKDConfig, CKDStudent, save_converted

    torch.manual_seed(0)
    cfg = CKDConfig(embed_dim=16, depth=2, num_heads=2, head_channels=8, template_size=64, search_size=128,
                    name="tiny_test")
    save_converted(CKDStudent(cfg).eval(), path)
    return path


class Launched:
    """The launch file run with `includes` (one 'name:=value ...' string per included instance) in its own
    process group, and a client node spun in a thread. `close()` sends SIGINT and returns the exit code."""

    def __init__(self, tmp_path, includes, client_name: str) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.tmp_path = tmp_path
        prefix = make_prefix(tmp_path / "install")
        launch_file = prefix / "share" / "ckd_ros" / "launch" / "ckd_tracker.launch.py"
        env = dict(os.environ, AMENT_PREFIX_PATH=f"{prefix}:{os.environ.get('AMENT_PREFIX_PATH', '')}",
                   ROS_DOMAIN_ID=str(domain_id()), PYTHONUNBUFFERED="1")
        self.log = open(tmp_path / "launch.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH] + [f"{launch_file} {args}" for args in includes],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.ctx = make_context()
        self.node = rclpy.create_node(client_name, context=self.ctx)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.ctx)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def call(self, srv_type, name: str, req, timeout: float = 30.0):
        cli = self.node.create_client(srv_type, name)
        assert cli.wait_for_service(timeout_sec=60.0), f"{name} never appeared: {_tail(self.tmp_path)}"
        fut = cli.call_async(req)
        assert wait_for(fut.done, timeout), f"{name} did not answer"
        return fut.result()

    def state(self, node: str) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label

    def close(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(10)
        self.executor.shutdown()
        self.node.destroy_node()
        shutdown_context(self.ctx)
        self.log.close()
        return code

    def assert_clean(self, code: int) -> None:
        assert code == 0, f"launch did not shut down cleanly (exit {code}): {_tail(self.tmp_path)}"
        text = (self.tmp_path / "launch.log").read_text()
        assert "Traceback" not in text, text[-3000:]


def test_launch_file_remaps_namespaces_and_drives_lifecycle(tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from sensor_msgs.srv import SetCameraInfo
    from vision_msgs.msg import Detection2DArray

    from ckd_ros.frames.ros_image import array_to_image_msg

    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors")
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n"
                      f"    model.checkpoint: \"{ckpt}\"\n    device: cpu\n    tracking.lost_threshold: 0.0\n")
    common = f"rgb_topic:=/cam/rgb thermal_topic:=/cam/tir params_file:={params} backend:=torch namespace:=robot"
    run = Launched(tmp_path, [f"{common} node_name:=auto",
                              f"{common} node_name:=manual autostart:=false thermal_info_topic:=/cam/tir_info"],
                   "launch_test_client")
    node = run.node
    try:
        assert wait_for(lambda: run.proc.poll() is None and run.state("/robot/auto") == "active", 60.0), \
            _tail(tmp_path)
        assert run.state("/robot/manual") == "unconfigured", "autostart:=false must leave the node unconfigured"
        for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            req = ChangeState.Request()
            req.transition.id = tid
            assert run.call(ChangeState, "/robot/manual/change_state", req, 60.0).success, _tail(tmp_path)
        assert run.state("/robot/manual") == "active"
        # remapped inputs: both trackers subscribe to /cam/rgb and /cam/tir
        assert wait_for(lambda: node.count_subscribers("/cam/rgb") == 2 and node.count_subscribers("/cam/tir") == 2,
                        10.0)
        # camera_info: the image topics' sibling, as drivers publish it. /cam/rgb and /cam/tir would share
        # /cam/camera_info, so the first tracker keeps its own names (and the launch says why); on the
        # second, thermal_info_topic takes the thermal one elsewhere and RGB gets the sibling
        assert wait_for(lambda: node.count_subscribers("/cam/camera_info") == 1
                        and node.count_subscribers("/cam/tir_info") == 1
                        and node.count_subscribers("/robot/rgb/camera_info") == 1
                        and node.count_subscribers("/robot/thermal/camera_info") == 1, 10.0), \
            {t: node.count_subscribers(t) for t in ("/cam/camera_info", "/cam/tir_info", "/robot/rgb/camera_info",
                                                    "/robot/thermal/camera_info")}
        assert "would share /cam/camera_info" in (tmp_path / "launch.log").read_text()
        dets = {"auto": [], "manual": []}
        for name in dets:
            node.create_subscription(Detection2DArray, f"/robot/{name}/detections", dets[name].append, 10)
        rgb_pub = node.create_publisher(Image, "/cam/rgb", qos_profile_sensor_data)
        tir_pub = node.create_publisher(Image, "/cam/tir", qos_profile_sensor_data)
        scene = MovingTarget()
        k = 0

        def publish():
            nonlocal k
            k += 1
            rgb, tir = scene.frame(k)
            stamp = time.time_ns()
            rgb_pub.publish(array_to_image_msg(rgb, "rgb8", stamp_ns=stamp, frame_id="cam_rgb"))
            tir_pub.publish(array_to_image_msg(tir, "mono16", stamp_ns=stamp, frame_id="cam_tir"))
            return False

        wait_for(publish, 1.0, 0.05)
        for name in dets:
            req = SetCameraInfo.Request()
            x, y, w, h = scene.box(k)
            req.camera_info.roi.x_offset, req.camera_info.roi.y_offset = int(x), int(y)
            req.camera_info.roi.width, req.camera_info.roi.height = int(w), int(h)
            res = run.call(SetCameraInfo, f"/robot/{name}/set_target", req)
            assert res.success, res.status_message
        assert wait_for(lambda: publish() or all(len(v) >= 3 for v in dets.values()), 20.0), \
            {n: len(v) for n, v in dets.items()}
        assert all(d.header.frame_id == "cam_rgb" for v in dets.values() for d in v)
    finally:
        code = run.close()
    run.assert_clean(code)


def test_params_file_decides_unless_a_launch_argument_is_given(tmp_path):
    """autostart / use_sim_time from the params file when not given on the command line; given ones win.
    Integers written for doubles in the file are accepted and stored as doubles."""
    from rcl_interfaces.srv import GetParameters

    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors")
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n    autostart: false\n"
                      f"    model.checkpoint: \"{ckpt}\"\n    device: cpu\n    backend: torch\n"
                      "    tracking.lost_threshold: 0\n    thermal.range: [7000, 9000]\n")
    common = f"params_file:={params} namespace:=pf"
    run = Launched(tmp_path, [f"{common} node_name:=fromfile",
                              f"{common} node_name:=given autostart:=true use_sim_time:=false"], "launch_params_client")

    def param_values(node, names):
        req = GetParameters.Request()
        req.names = names
        return run.call(GetParameters, f"{node}/get_parameters", req).values

    try:
        assert wait_for(lambda: run.proc.poll() is None and run.state("/pf/given") == "active", 60.0), \
            _tail(tmp_path)
        time.sleep(1.0)
        assert run.state("/pf/fromfile") == "unconfigured", "the params file's autostart: false must decide"
        sim, auto, thr, rng = param_values("/pf/fromfile", ["use_sim_time", "autostart", "tracking.lost_threshold",
                                                            "thermal.range"])
        assert sim.bool_value is True and auto.bool_value is False
        assert thr.type == 3 and thr.double_value == 0.0, "an integer for a double is stored as a double"
        assert list(rng.double_array_value) == [7000.0, 9000.0]
        sim, auto = param_values("/pf/given", ["use_sim_time", "autostart"])
        assert sim.bool_value is False and auto.bool_value is True, "given launch arguments win"
    finally:
        code = run.close()
    run.assert_clean(code)


def _tail(tmp_path) -> str:
    try:
        return "\n--- launch log ---\n" + (tmp_path / "launch.log").read_text()[-3000:]
    except OSError:
        return ""
