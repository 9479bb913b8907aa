"""ament_python package ckd_ros: CKD RGB-thermal single-object tracking for ROS 2.

Also a plain pip-installable Python package: model, export, runtime, tracking, eval and train import
nothing from ROS.
"""
from glob import glob

from setuptools import find_packages, setup

package_name = "ckd_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
        ("share/" + package_name + "/engines", glob("engines/*.json") + glob("engines/*.safetensors")
         + glob("engines/*.onnx")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ckd_ros maintainers",
    maintainer_email="ckd-ros@example.org",
    description="CKD RGB-thermal single-object tracker for ROS 2 (TensorRT / ONNX Runtime / PyTorch)",
    license="Apache-2.0",
    python_requires=">=3.8",  # runtime (node, tracking, backends, eval); offline torch tools: 3.10+
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "ckd = ckd_ros.cli:main",
            "ckd_tracker = ckd_ros.node.tracker_node:main",
            "select_target = ckd_ros.node.select_target:main",
            "synthetic_camera = ckd_ros.demo.camera:main",
        ],
    },
)
