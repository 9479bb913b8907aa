"""The trainer on the tiny config: loss goes down, bit-exact resume, export of the student, stages, CLI."""
import pathlib

import pytest
import torch

from ckd_ros.cli import main as ckd_main
from ckd_ros.errors import CKDError
from ckd_ros.model import convert, load_checkpoint
from ckd_ros.train import train
from ckd_ros.train.checkpointing import list_checkpoints
from ckd_ros.train.config import load_config, model_config
from ckd_ros.train.trainer import Trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "train_tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trainer(tmp_path, *overrides):
    return Trainer(load_config(TINY, [f"output.dir={tmp_path}", *overrides]))


def _run(tmp_path, *overrides):
    trainer = _trainer(tmp_path, *overrides)
    try:
        path = trainer.run()
    finally:
        trainer.close()
    return trainer, path


def test_a_few_steps_lower_the_total_loss(tmp_path):
    # one batch, no patch mask: with a zero learning rate the loss would stay constant
    trainer = _trainer(tmp_path, "mask.ratio=0")
    batch = next(iter(trainer.loader))
    losses = [trainer.train_step(batch)["loss/total"] for _ in range(10)]
    trainer.close()
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses
    assert losses[-1] < 0.85 * losses[0], losses
    assert trainer.global_step == 10


def test_resume_continues_bit_exactly(tmp_path):
    full, _ = _run(tmp_path / "a", "optim.epochs=3")
    part, first = _run(tmp_path / "b", "optim.epochs=1")
    assert first.name == "CKD_ep0001.pth.tar"
    resumed, last = _run(tmp_path / "b", "optim.epochs=3", "resume=auto")
    assert resumed.start_epoch == 2 and last.name == "CKD_ep0003.pth.tar"
    keys = ("loss/total", "loss/student", "loss/style", "loss/content", "grad_norm")
    expected = [[s[k] for k in keys] for s in full.history[2:]]
    got = [[s[k] for k in keys] for s in resumed.history]
    assert got == expected  # bitwise: same floats, not approximately
    assert [s["loss/total"] for s in part.history] == [s["loss/total"] for s in full.history[:2]]
    final_a = torch.load(tmp_path / "a" / "checkpoints" / "CKD_ep0003.pth.tar", weights_only=True)["net"]
    final_b = torch.load(last, weights_only=True)["net"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_checkpoint_layout_and_student_export(tmp_path):
    # stage 1 (no CE), then stage 2 (MCE on, heads only) from it; the student must load for deployment
    _, stage1 = _run(tmp_path / "s1", "optim.epochs=1")
    obj = torch.load(stage1, weights_only=True)  # no pickled classes
    assert obj["epoch"] == 1 and obj["net_type"] == "OSTrack_CKD" and len(obj["net"]) == 7 * 0 + len(obj["net"])
    assert {k.split(".")[0] for k in obj["net"]} == {"rgb_branch", "tir_branch", "box_head", "teacher_rgb",
                                                     "teacher_tir", "box_head_v", "box_head_i"}
    trainer, stage2 = _run(tmp_path / "s2", "stage=mce", "optim.epochs=1", "mask.ratio=0",
                           "optim.param_groups=[[head, 1.0e-3]]", f"init={{type: ckd, path: {stage1}}}")
    before = torch.load(stage1, weights_only=True)["net"]
    after = torch.load(stage2, weights_only=True)["net"]
    assert torch.equal(before["rgb_branch.blocks.0.attn.qkv.weight"], after["rgb_branch.blocks.0.attn.qkv.weight"])
    assert torch.equal(before["teacher_tir.pos_embed_x"], after["teacher_tir.pos_embed_x"])
    for head in ("box_head", "box_head_v", "box_head_i"):
        assert not torch.equal(before[f"{head}.conv5_ctr.weight"], after[f"{head}.conv5_ctr.weight"])

    config = model_config(trainer.cfg)  # the deployable config (CE on)
    student = load_checkpoint(stage2, config)
    assert student.config.ce_loc == (1,)
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 64, generator=g),
              torch.randn(2, 3, 128, 128, generator=g), torch.randn(2, 3, 128, 128, generator=g)]
    model = trainer.model.eval()
    with torch.no_grad():
        train_maps = model(*inputs)["student"]
        deployed = student(*inputs)
        converted_path = tmp_path / "student.safetensors"
        convert(stage2, converted_path, config)
        converted = load_checkpoint(converted_path)(*inputs)
    for key in ("score_map", "size_map", "offset_map"):
        assert torch.equal(train_maps[key], deployed[key])
        assert torch.equal(train_maps[key], converted[key])


def test_teacher_pretraining_then_students_from_teachers(tmp_path):
    trainer, teachers = _run(tmp_path / "t", "stage=teachers", "optim.epochs=1",
                             "optim.param_groups=[[box_head_, 1.0e-3], [teacher_, 1.0e-3]]")
    assert "loss/student" not in trainer.history[0] and "loss/teacher_rgb" in trainer.history[0]
    sd = torch.load(teachers, weights_only=True)["net"]
    assert not torch.equal(sd["teacher_rgb.blocks.0.mlp.fc1.weight"], sd["rgb_branch.blocks.0.mlp.fc1.weight"])
    student_run = _trainer(tmp_path / "d", f"init={{type: teachers, path: {teachers}}}")
    m = student_run.model
    assert torch.equal(m.rgb_branch.blocks[0].mlp.fc1.weight, sd["teacher_rgb.blocks.0.mlp.fc1.weight"])
    assert torch.equal(m.tir_branch.norm.weight, sd["teacher_tir.norm.weight"])
    student_run.close()


def test_python_entry_returns_the_last_checkpoint(tmp_path):
    path = train(str(TINY), [f"output.dir={tmp_path}", "optim.epochs=2", "output.save_every=5",
                             "output.tensorboard=true"])
    assert path == tmp_path / "checkpoints" / "CKD_ep0002.pth.tar" and path.is_file()
    assert list(list_checkpoints(tmp_path / "checkpoints")) == [2]
    assert any((tmp_path / "tensorboard").iterdir())
    with pytest.raises(CKDError, match="holds another model"):
        _trainer(tmp_path, "resume=auto", "model.embed_dim=32", "model.num_heads=4")


def test_config_errors_are_one_line_ckd_errors(tmp_path, capsys):
    with pytest.raises(CKDError, match="unknown training config key 'optim.epoch'"):
        load_config(TINY, ["optim.epoch=3"])
    with pytest.raises(CKDError, match="matches no parameter"):
        _trainer(tmp_path, "optim.param_groups=[[backbone, 1.0e-4]]", "threads=2")
    assert torch.get_num_threads() == 1  # the failed construction restored the caller's setting
    with pytest.raises(CKDError, match="no ce_loc"):
        load_config(TINY, ["stage=mce", "model.ce_loc=[]", "model.ce_keep_ratio=[]"])
    assert ckd_main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert ckd_main(["train", "--config", str(TINY), "optim.batch_size=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("ckd train: error:") for line in err)


@pytest.mark.slow
def test_torchrun_two_processes_with_gloo(tmp_path):
    """DDP end to end on CPU: env:// init, find_unused_parameters, per-rank data, rank-0 checkpoint."""
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ckd_ros.cli", "train", "--config", str(TINY), "--output", str(tmp_path), "optim.epochs=1",
           "stage=mce", "mask.ratio=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "world 2" in proc.stdout and proc.stdout.count("last checkpoint:") == 1
    obj = torch.load(tmp_path / "checkpoints" / "CKD_ep0001.pth.tar", weights_only=True)
    assert obj["epoch"] == 1 and obj["global_step"] == 1  # 8 samples / (2 ranks x 4)


@pytest.mark.parametrize("name", ["train_stage1.yaml", "train_stage2_mce.yaml"])
def test_paper_configs_validate(name):
    cfg = load_config(REPO / "config" / name)
    train_config = model_config(cfg, for_training=True)
    assert train_config.embed_dim == 768 and train_config.depth == 12
    assert bool(train_config.ce_loc) == (cfg["stage"] == "mce")
    assert model_config(cfg).ce_loc == (3, 6, 9)  # the deployable student keeps its MCE blocks
    if cfg["stage"] == "mce":
        assert cfg["optim"]["param_groups"] == [["head", 5e-5]] and cfg["mask"]["ratio"] == 0


def test_bf16_autocast_step(tmp_path):
    trainer = _trainer(tmp_path, "optim.amp=bf16")
    before = trainer.model.box_head.conv5_ctr.weight.detach().clone()
    stats = trainer.train_step(next(iter(trainer.loader)))
    trainer.close()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert not torch.equal(before, trainer.model.box_head.conv5_ctr.weight)


def test_sequence_provider_with_a_dict_config(tmp_path):
    """In-memory (rgb_frames, tir_frames, boxes) sequences plug in through `type: arrays`."""
    import numpy as np
    import yaml
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 80, (24, 96, 128, 3), dtype=np.uint8)
    boxes = np.array([[20 + t, 30, 24, 16] for t in range(24)], np.float32)
    for t, (x, y, w, h) in enumerate(boxes.astype(int)):
        rgb[t, y:y + h, x:x + w] = (240, 180, 30)
    tir = rgb[..., :1].copy()  # H x W x 1 thermal
    cfg = yaml.safe_load(TINY.read_text())
    cfg["data"]["datasets"] = [{"type": "arrays", "sequences": [(rgb, tir, boxes)]}]
    cfg["output"]["dir"] = str(tmp_path)
    path = train(cfg, ["optim.epochs=1"])
    obj = torch.load(path, weights_only=True)
    assert "<ndarray>" in obj["train_config"] and obj["ckd_config"]["embed_dim"] == 16


def test_cli_end_message_is_true_for_a_custom_size_model(tmp_path, capsys):
    """`ckd train` ends by naming the `ckd convert` line; that line works for a custom-size model too
    (training checkpoints carry their config), with no preset and no Python recipe."""
    assert ckd_main(["train", "--config", str(TINY), "--output", str(tmp_path), "optim.epochs=1"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("export the student:"))
    assert "python -c" not in out and "--preset" not in line
    ckpt = tmp_path / "checkpoints" / "CKD_ep0001.pth.tar"
    assert f"ckd convert {ckpt} student.safetensors" in line
    assert ckd_main(["convert", str(ckpt), str(tmp_path / "student.safetensors")]) == 0
    student = load_checkpoint(tmp_path / "student.safetensors")
    assert student.config.embed_dim == 16 and student.config.depth == 2
