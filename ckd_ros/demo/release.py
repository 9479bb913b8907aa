"""Turn a finished `ckd train` run into the shipped demo model files.

  python -m ckd_ros.demo.release out/demo_train/runs/rgbt [--epoch N] [--out engines --name demo_small]

Writes <out>/<name>.safetensors (student weights + CKDConfig, no pickle, via save_converted) and
<name>.onnx (+ its JSON sidecar, via the runtime's exporter), then checks that ONNX Runtime
reproduces the PyTorch outputs. The deployable configuration comes from the checkpoint itself
(`ckd_config`, written by the trainer), never from guessing the shapes.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Optional

from ckd_ros.errors import CKDError

MAX_MB = 20.0  # the repository carries these files: keep them small


def release(run_dir, out_dir="engines", name: str = "demo_small", epoch: Optional[int] = None, log=print):
    from ckd_ros.model import CKDConfig, file_sha256, load_checkpoint, save_converted
    from ckd_ros.model.export import export_onnx, verify_onnx
    from ckd_ros.train.checkpointing import latest_checkpoint, list_checkpoints, load_training_checkpoint

    ckpt_dir = pathlib.Path(run_dir) / "checkpoints"
    if epoch is None:
        ckpt = latest_checkpoint(ckpt_dir)
    else:
        ckpt = list_checkpoints(ckpt_dir).get(int(epoch))
    if ckpt is None:
        raise CKDError(f"no checkpoint{'' if epoch is None else f' for epoch {epoch}'} in {ckpt_dir}")
    obj = load_training_checkpoint(ckpt)
    config = CKDConfig.from_dict(obj["ckd_config"])
    model = load_checkpoint(ckpt, config).eval()
    out_dir = pathlib.Path(out_dir)
    weights, onnx = out_dir / f"{name}.safetensors", out_dir / f"{name}.onnx"
    sha = file_sha256(ckpt)
    save_converted(model, weights, source_sha256=sha,
                   extra={"trained_by": "ckd_ros ckd train (config/train_demo.yaml), synthetic data only",
                          "epoch": obj.get("epoch", ""), "global_step": obj.get("global_step", "")})
    export_onnx(model, onnx, checkpoint=str(weights), checkpoint_sha256=file_sha256(weights), log=log)
    diffs = verify_onnx(model, onnx)
    for path in (weights, onnx):
        size = path.stat().st_size / 2**20
        if size > MAX_MB:
            raise CKDError(f"{path} is {size:.1f} MB, over the {MAX_MB:g} MB the repository may carry")
    log(f"released {ckpt} (epoch {obj.get('epoch')}) -> {weights} ({weights.stat().st_size / 2**20:.1f} MB), "
        f"{onnx} ({onnx.stat().st_size / 2**20:.1f} MB); ONNX vs torch max abs diff {diffs}")
    return weights, onnx


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ckd_ros.demo.release", description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=pathlib.Path, help="output.dir of the training run")
    ap.add_argument("--epoch", type=int, default=None, help="default: the latest checkpoint")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("engines"))
    ap.add_argument("--name", default="demo_small")
    args = ap.parse_args(argv)
    try:
        release(args.run_dir, args.out, args.name, args.epoch)
    except CKDError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
