"""Synthetic RGB-thermal sequences with ground truth: the demo's camera and training data.

No downloads, no GPU: seeded numpy/OpenCV rendering of textured backgrounds and targets with
an RGB appearance and a thermal signature, with the hard cases RGB-T tracking exists for.
"""
from ckd_ros.synthetic.scene import EFFECTS, SCENARIOS, SyntheticScene
from ckd_ros.synthetic.sequence import SyntheticSequence, make_sequence, thermal_to_gray8, write_sequence

__all__ = ["EFFECTS", "SCENARIOS", "SyntheticScene", "SyntheticSequence", "make_sequence", "thermal_to_gray8",
           "write_sequence"]
