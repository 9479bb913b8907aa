"""Launch the CKD RGB-thermal tracker (and optionally rviz).

  ros2 launch ckd_ros ckd_tracker.launch.py rgb_topic:=/cam/color/image_raw \
      thermal_topic:=/cam/thermal/image_raw params_file:=my.yaml namespace:=front \
      backend:=tensorrt use_sim_time:=false rviz:=true autostart:=true   # each one optional

`backend`, `use_sim_time` and `autostart` override the params file only when given on the command
line: left out, the params file (and the node's defaults after it) decide. Inputs are remapped for
both transports: `<topic>` (raw) and `<topic>/compressed`. Each camera's `camera_info` (target ray,
`registration.mode: camera_info`) is the image topic's sibling, as camera drivers publish it
(`/cam/color/image_raw` -> `/cam/color/camera_info`); `rgb_info_topic` / `thermal_info_topic` override.
Image topics in one namespace (`/cam/rgb`, `/cam/tir`) would share one camera_info: then nothing is
remapped (the node's `rgb/camera_info`, `thermal/camera_info`) and the launch says so.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

TRUE = ("true", "1", "yes", "on")


def camera_info_topic(image_topic: str) -> str:
    """The camera_info topic beside an image topic (image_transport's convention: same namespace):
    `/cam/color/image_raw` -> `/cam/color/camera_info`, `/image` -> `/camera_info`, `image` -> `camera_info`."""
    head, _, _ = image_topic.rstrip("/").rpartition("/")
    return f"{head}/camera_info" if head or image_topic.startswith("/") else "camera_info"


def _tracker(context, *args, **kwargs):
    cfg = {name: LaunchConfiguration(name).perform(context) for name in (
        "rgb_topic", "thermal_topic", "params_file", "namespace", "backend", "use_sim_time", "autostart",
        "node_name", "log_level", "rgb_info_topic", "thermal_info_topic")}
    overrides = {}  # only what was given: an empty argument leaves the params file in charge
    for name in ("use_sim_time", "autostart"):
        if cfg[name]:
            overrides[name] = cfg[name].lower() in TRUE
    if cfg["backend"]:
        overrides["backend"] = cfg["backend"]
    parameters = ([cfg["params_file"]] if cfg["params_file"] else []) + ([overrides] if overrides else [])
    rgb, tir = cfg["rgb_topic"], cfg["thermal_topic"]
    rgb_info = cfg["rgb_info_topic"] or camera_info_topic(rgb)
    tir_info = cfg["thermal_info_topic"] or camera_info_topic(tir)
    nodes, info_remaps = [], [("rgb/camera_info", rgb_info), ("thermal/camera_info", tir_info)]
    if rgb_info == tir_info:  # sibling image topics (/cam/rgb, /cam/tir): one camera_info cannot serve both
        info_remaps = []
        nodes.append(LogInfo(msg=f"ckd_tracker: {rgb} and {tir} would share {rgb_info}; camera_info stays on the "
                                 "node's rgb/camera_info and thermal/camera_info: set rgb_info_topic and "
                                 "thermal_info_topic to the cameras' own camera_info topics"))
    if LaunchConfiguration("rviz").perform(context).lower() in TRUE:
        share = get_package_share_directory("ckd_ros")
        rviz_params = [{"use_sim_time": overrides["use_sim_time"]}] if "use_sim_time" in overrides else []
        nodes.append(Node(package="rviz2", executable="rviz2", name="ckd_rviz", namespace=cfg["namespace"],
                          arguments=["-d", os.path.join(share, "config", "ckd_tracker.rviz")],
                          parameters=rviz_params, output="screen"))
    return nodes + [Node(
        package="ckd_ros", executable="ckd_tracker", name=cfg["node_name"], namespace=cfg["namespace"],
        parameters=parameters,
        remappings=[("rgb/image", rgb), ("thermal/image", tir),
                    ("rgb/image/compressed", rgb + "/compressed"), ("thermal/image/compressed", tir + "/compressed")]
        + info_remaps,
        arguments=["--ros-args", "--log-level", cfg["log_level"]],
        output="screen", emulate_tty=True,
    )]


def generate_launch_description():
    share = get_package_share_directory("ckd_ros")
    return LaunchDescription([
        DeclareLaunchArgument("rgb_topic", default_value="/camera/rgb/image_raw", description="RGB image topic"),
        DeclareLaunchArgument("thermal_topic", default_value="/camera/thermal/image_raw",
                              description="thermal image topic"),
        DeclareLaunchArgument("rgb_info_topic", default_value="",
                              description="RGB camera_info topic; empty: <rgb_topic's namespace>/camera_info"),
        DeclareLaunchArgument("thermal_info_topic", default_value="",
                              description="thermal camera_info topic; empty: <thermal_topic's namespace>/camera_info"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "ckd_tracker.yaml"),
                              description="parameter file (see config/ckd_tracker.yaml)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the tracker (and rviz)"),
        DeclareLaunchArgument("node_name", default_value="ckd_tracker", description="tracker node name"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto|tensorrt|onnxruntime|torch; empty: from params_file"),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="true: use /clock (bag replay); empty: from params_file (default false)"),
        DeclareLaunchArgument("autostart", default_value="",
                              description="configure + activate on start; false: drive the lifecycle yourself; "
                                          "empty: from params_file (default true)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2 with both overlays"),
        DeclareLaunchArgument("log_level", default_value="info", description="tracker log level"),
        OpaqueFunction(function=_tracker),
    ])
