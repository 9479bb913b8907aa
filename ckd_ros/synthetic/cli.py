"""`ckd synth OUT --sequences N | --per-scenario K`: write synthetic RGB-T sequences (LasHeR layout).

The generator's command line (`ckd_ros.synthetic.dataset`) as a `ckd` subcommand; its options are
defined once, in that module.
"""
from __future__ import annotations

import argparse


def _synth(args) -> int:
    from ckd_ros.synthetic.dataset import run

    return run(args)


def register(sub: argparse._SubParsersAction) -> None:
    from ckd_ros.synthetic.dataset import add_arguments

    p = sub.add_parser("synth", help="write synthetic RGB-T sequences with ground truth (LasHeR layout)",
                       description="Write procedural RGB-T sequences (training data, held-out test sets) in "
                                   "the LasHeR layout, with init.txt ground truth and sequences.txt.")
    add_arguments(p)
    p.set_defaults(func=_synth)
