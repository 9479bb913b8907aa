"""Turning a sampled RGB-T frame pair into network inputs and labels (ckd-spec §4.1).

OSTrack/STARK processing with one twist of CKD: every random decision is shared by the RGB and the
thermal image, so the two modalities stay registered. Per pair:
1. full-frame joint transform, one roll for template and search: grayscale (p 0.05), flip (p 0.5);
2. per split: jittered box (size x exp(N(0,1) * scale_jitter), centre + (U - 0.5) * sqrt(area) *
   center_jitter), then the tracker's exact `sample_target` crop (zero padding);
3. per split: brightness x U(0.8, 1.2) (/255, clamp to [0, 1]), crop flip (p 0.5), ImageNet normalisation.
Samples whose crop is all padding (also at feature resolution) are rejected, as OSTrack does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.tracking.preprocess import IMAGENET_MEAN, IMAGENET_STD, crop_window, pads, sample_target


@dataclass(frozen=True)
class CropSpec:
    factor: float
    size: int
    center_jitter: float = 0.0
    scale_jitter: float = 0.0


@dataclass(frozen=True)
class AugmentSpec:
    grayscale: float = 0.05
    flip: float = 0.5
    brightness: float = 0.2
    crop_flip: float = 0.5


def jitter_box(box: np.ndarray, spec: CropSpec, rng: np.random.Generator) -> np.ndarray:
    """STARK `_get_jittered_box`: the offset scales with the jittered size."""
    size = box[2:4] * np.exp(rng.standard_normal(2) * spec.scale_jitter)
    max_offset = np.sqrt(np.prod(size)) * spec.center_jitter
    center = box[0:2] + 0.5 * box[2:4] + max_offset * (rng.random(2) - 0.5)
    return np.concatenate([center - 0.5 * size, size])


def fully_padded(image_hw: Tuple[int, int], box: np.ndarray, spec: CropSpec, stride: int) -> bool:
    """True when the crop's padding mask is all ones, at crop resolution or at the feature grid
    (OSTrack's att-mask checks; the mask is resized bilinearly, then any non-zero counts as padding)."""
    height, width = image_hw
    x1, y1, crop_sz = crop_window(box, spec.factor)
    top, bottom, left, right = pads(x1, y1, crop_sz, height, width)
    if not (top or bottom or left or right):
        return False
    valid_h = crop_sz - top - bottom
    valid_w = crop_sz - left - right
    if valid_h <= 0 or valid_w <= 0:
        return True
    att = np.ones((crop_sz, crop_sz))
    att[top:crop_sz - bottom, left:crop_sz - right] = 0
    att = cv2.resize(att, (spec.size, spec.size)).astype(bool)
    if att.all():
        return True
    feat = spec.size // stride
    idx = np.floor(np.arange(feat) * (spec.size / feat)).astype(np.int64)  # F.interpolate 'nearest'
    return bool(att[np.ix_(idx, idx)].all())


def box_in_crop(gt: np.ndarray, extract: np.ndarray, resize_factor: float, out_size: int) -> np.ndarray:
    """`transform_image_to_crop(normalize=True)`: the crop is taken as centred exactly on `extract`."""
    center = (out_size - 1) / 2 + (gt[0:2] + 0.5 * gt[2:4] - extract[0:2] - 0.5 * extract[2:4]) * resize_factor
    wh = gt[2:4] * resize_factor
    return np.concatenate([center - 0.5 * wh, wh]) / out_size


def _gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return np.stack([g, g, g], axis=2)


def _to_input(crop: np.ndarray, brightness: float, flip: bool) -> np.ndarray:
    """uint8 crop (HxWx3 or HxW gray) -> normalised float32 (3, H, W)."""
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    img = np.clip(crop.astype(np.float32) * np.float32(brightness / 255.0), 0.0, 1.0)
    img = (img - IMAGENET_MEAN) / IMAGENET_STD
    if flip:
        img = img[:, ::-1]
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def _flip_frame(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img[:, ::-1])


def process_pair(template: Tuple[np.ndarray, np.ndarray], template_box: np.ndarray,
                 search: Tuple[np.ndarray, np.ndarray], search_box: np.ndarray,
                 specs: Dict[str, CropSpec], aug: AugmentSpec, stride: int,
                 rng: np.random.Generator) -> Optional[Dict[str, np.ndarray]]:
    """One training sample {template_rgb, template_tir, search_rgb, search_tir (3,S,S) float32,
    template_anno, search_anno (4,) normalised x, y, w, h}, or None when it must be re-drawn."""
    do_gray = rng.random() < aug.grayscale
    do_flip = rng.random() < aug.flip
    frames = {"template": (template, np.asarray(template_box, np.float64)),
              "search": (search, np.asarray(search_box, np.float64))}
    out: Dict[str, np.ndarray] = {}
    for split in ("template", "search"):
        (rgb, tir), box = frames[split]
        if rgb.shape[:2] != tir.shape[:2]:
            raise CKDError(f"RGB {rgb.shape[:2]} and thermal {tir.shape[:2]} frames differ in size; "
                           "training needs registered, equal-size pairs")
        if do_gray:
            rgb, tir = _gray(rgb), _gray(tir)
        if do_flip:  # pytracking box flip: x' = (W - 1) - (x + w)
            rgb, tir = _flip_frame(rgb), _flip_frame(tir)
            box = np.array([rgb.shape[1] - 1 - box[0] - box[2], box[1], box[2], box[3]])
        spec = specs[split]
        jittered = jitter_box(box, spec, rng)
        if np.ceil(np.sqrt(jittered[2] * jittered[3]) * spec.factor) < 1 or not np.isfinite(jittered).all():
            return None
        if fully_padded(rgb.shape[:2], jittered, spec, stride):
            return None
        crop_rgb, resize_factor = sample_target(rgb, jittered.tolist(), spec.factor, spec.size)
        crop_tir, _ = sample_target(tir, jittered.tolist(), spec.factor, spec.size)
        anno = box_in_crop(box, jittered, resize_factor, spec.size)
        brightness = rng.uniform(max(0.0, 1 - aug.brightness), 1 + aug.brightness)
        crop_flip = rng.random() < aug.crop_flip
        if crop_flip:
            anno = np.array([1 - anno[0] - anno[2], anno[1], anno[2], anno[3]])
        out[f"{split}_rgb"] = _to_input(crop_rgb, brightness, crop_flip)
        out[f"{split}_tir"] = _to_input(crop_tir, brightness, crop_flip)
        out[f"{split}_anno"] = anno.astype(np.float32)
    return out
