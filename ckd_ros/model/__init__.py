"""The CKD student network in PyTorch, checkpoint loading and conversion."""
from ckd_ros.hashing import file_sha256
from ckd_ros.model.checkpoint import convert, load_checkpoint, load_config_for, save_converted
from ckd_ros.model.config import CKDConfig
from ckd_ros.model.student import CKDStudent

__all__ = ["CKDConfig", "CKDStudent", "load_checkpoint", "load_config_for", "convert", "save_converted",
           "file_sha256"]
