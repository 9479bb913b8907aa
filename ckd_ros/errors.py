"""The one exception family of ckd_ros: every failure a user can cause or fix is a `CKDError`.

Each message says what was wrong and what to do, in one line. Library code raises a subclass at its
package boundary (errors of torch, onnx, ONNX Runtime, TensorRT, OpenCV, safetensors, rosbags are
translated there); the `ckd` command prints `ckd <command>: error: <message>` and exits non-zero;
the node logs one line, answers the service with the message and keeps serving. Each subclass names
the `stage` it belongs to, so per-frame error counters can say where a frame was lost.
"""


class CKDError(Exception):
    """A failure caused by input or environment (bad checkpoint, missing GPU, wrong path...).

    CLIs print it as one line and exit non-zero; the node logs it and keeps serving.
    """

    stage = "other"


class InputError(CKDError):
    """Bad user input: a path, a box, a file's contents, a command-line value."""

    stage = "input"


class ParameterError(InputError):
    """A configuration or ROS parameter value of the wrong type or out of range."""

    stage = "parameters"


class FrameError(InputError):
    """A frame could not be read, decoded or converted (bad encoding, truncated file, wrong size)."""

    stage = "conversion"


class BoxError(InputError, ValueError):
    """A target box that is not finite, not positive, outside the frame or absurdly large.

    Also a `ValueError`, so callers that caught the tracker's older ValueError keep working.
    """

    stage = "target"


class GeometryError(InputError):
    """Calibration or registration that cannot be trusted (degenerate points, singular homography)."""

    stage = "registration"


class CheckpointError(InputError):
    """A model file (checkpoint, ONNX, engine, sidecar) that cannot be read or is refused."""

    stage = "model"


class DependencyError(CKDError):
    """A missing or incompatible dependency (torch, TensorRT, cuda-python, rosbags...); names the install line."""

    stage = "environment"


class BackendError(CKDError):
    """A backend that could not be opened or built, or an inference that failed."""

    stage = "inference"


class CacheError(CKDError):
    """The artifact cache cannot be created, read or written (says where it is and how to move it)."""

    stage = "cache"


def unreadable_onnx(path, detail: str = "") -> CheckpointError:
    """The one message for an ONNX file that onnx/ONNX Runtime cannot parse (both boundaries use it)."""
    why = f" ({detail})" if detail else ""
    return CheckpointError(f"{path} is truncated or not an ONNX file (interrupted copy?){why}: copy it again "
                           "or re-export with `ckd export`")
