"""The one way frames enter ckd_ros (architecture.md, "frames/").

Image folders (natural sort), videos, the five benchmark dataset layouts, rosbag2 files, ROS image
messages (duck-typed: no rclpy needed) and in-memory arrays all become the same thing here:
RGB frames as HxWx3 uint8 (RGB order) and thermal frames converted to 8 bit by the one thermal
conversion (`ckd_ros.frames.thermal`). `ckd track`, `ckd benchmark`, training, the demo evaluation
and the node all read through this package, so a model sees the same inputs everywhere.

Entry points (call these instead of cv2.imread / sorted(glob) / own conversions):

* `reader`: `list_images(folder)`, `natural_key(name)`, `natural_sorted(items)`, `read_rgb(path)`,
  `read_thermal_raw(path)`, `read_thermal(path, normalizer=None)`, `read_pair(rgb, tir, normalizer=None)`,
  `ImageConversionError` (a `FrameError`);
* `thermal`: `ThermalNormalizer(...)` (default = `DEFAULT_THERMAL`), `default_normalizer()`;
* `folders`: `FrameSource(path, unchanged=False, normalizer=None)`, `ArraySource(frames, fps, normalizer)`,
  `detect_layout(seq_dir)`, `read_first_box(gt_file)`;
* `datasets`: the five benchmark readers, `SequenceFrames.read(i, normalizer=None)`;
* `ros_image`: `image_msg_to_rgb8(msg)`, `image_msg_to_thermal(msg, normalizer=None)`, `decode_rgb`,
  `decode_thermal`, `decode_*_compressed`, `array_to_image_msg`.

Imports numpy and OpenCV only (rosbags lazily); nothing here imports torch or rclpy.
"""
