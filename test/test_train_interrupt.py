"""Ctrl-C / SIGTERM during training keeps the finished work as a resumable checkpoint (issue 18, kind 4).

The signal is delivered to the process itself in the middle of an epoch (from inside a training step,
so the test does not depend on timing). The run must stop at the next iteration boundary, write
`CKD_epNNNN.partial.pth.tar` atomically, say in one line how to resume, and the resumed run must
continue exactly where the uninterrupted run would have been (same losses, same final weights).
"""
import os
import pathlib
import signal

import pytest
import torch

from ckd_ros.cli import main as ckd_main
from ckd_ros.train import checkpointing
from ckd_ros.train.config import load_config
from ckd_ros.train.trainer import Trainer, TrainingInterrupted

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "train_tiny.yaml"
FOUR_ITERS = ["optim.epochs=2", "data.samples_per_epoch=16"]  # batch 4: 4 iterations per epoch
KEYS = ("loss/total", "loss/student", "loss/style", "loss/content", "grad_norm")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trainer(out, *overrides):
    return Trainer(load_config(TINY, [f"output.dir={out}", *FOUR_ITERS, *overrides]))


def _signal_at(trainer, step: int, signum=signal.SIGINT):
    """Send `signum` to this process during global step `step` (1-based)."""
    original = trainer.train_step

    def step_then_signal(batch):
        stats = original(batch)
        if trainer.global_step == step:
            os.kill(os.getpid(), signum)
        return stats

    trainer.train_step = step_then_signal


def _run(trainer):
    try:
        return trainer.run()
    finally:
        trainer.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_epoch_is_saved_and_resumes_exactly(tmp_path, signum):
    full = _trainer(tmp_path / "full")
    _run(full)

    first = _trainer(tmp_path / "run")
    _signal_at(first, 6, signum)  # epoch 2, its 2nd of 4 iterations
    previous = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted) as info:
        _run(first)
    assert signal.getsignal(signum) is previous  # handlers restored
    partial = tmp_path / "run" / "checkpoints" / "CKD_ep0002.partial.pth.tar"
    assert info.value.checkpoint == partial and partial.is_file()
    assert f"stopped by {signal.Signals(signum).name} after 2/4 iterations of epoch 2" in str(info.value)
    assert "\n" not in str(info.value)
    obj = torch.load(partial, weights_only=True)
    assert (obj["epoch"], obj["epoch_steps"], obj["global_step"]) == (1, 2, 6)
    assert not list(partial.parent.glob(".*.tmp"))  # written atomically, nothing left behind
    # a partial file is not a finished epoch: release/prune never see it
    assert list(checkpointing.list_checkpoints(partial.parent)) == [1]

    resumed = _trainer(tmp_path / "run", "resume=auto")
    assert (resumed.start_epoch, resumed.skip_steps, resumed.global_step) == (2, 2, 6)
    last = _run(resumed)
    assert last.name == "CKD_ep0002.pth.tar" and not partial.exists()
    expected = [[s[k] for k in KEYS] for s in full.history[6:]]
    assert [[s[k] for k in KEYS] for s in resumed.history] == expected  # bitwise
    a = torch.load(tmp_path / "full" / "checkpoints" / "CKD_ep0002.pth.tar", weights_only=True)["net"]
    b = torch.load(last, weights_only=True)["net"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_signal_at_the_end_of_an_epoch_saves_that_epoch(tmp_path):
    trainer = _trainer(tmp_path, "output.save_every=5", "optim.epochs=3")
    _signal_at(trainer, 4)  # the last iteration of epoch 1: no periodic save would happen
    with pytest.raises(TrainingInterrupted, match="after epoch 1; the finished work is saved in") as info:
        _run(trainer)
    assert info.value.checkpoint.name == "CKD_ep0001.pth.tar"
    assert torch.load(info.value.checkpoint, weights_only=True)["epoch"] == 1


def test_ckd_train_says_in_one_line_how_to_resume(tmp_path, capsys, monkeypatch):
    original = Trainer.train_step

    def step_then_sigterm(self, batch):
        stats = original(self, batch)
        if self.global_step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return stats

    monkeypatch.setattr(Trainer, "train_step", step_then_sigterm)
    out = tmp_path / "run"
    assert ckd_main(["train", "--config", str(TINY), "--output", str(out), *FOUR_ITERS]) == 130
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    partial = out / "checkpoints" / "CKD_ep0001.partial.pth.tar"
    assert len(err) == 1 and err[0].startswith("ckd train: interrupted: stopped by SIGTERM after 3/4 iterations")
    assert err[0].endswith(f"continue with: ckd train --config {TINY} --output {out} --resume {partial} "
                           + " ".join(FOUR_ITERS))
    monkeypatch.setattr(Trainer, "train_step", original)
    assert ckd_main(["train", "--config", str(TINY), "--output", str(out), "--resume", str(partial),
                     *FOUR_ITERS]) == 0
    assert (out / "checkpoints" / "CKD_ep0002.pth.tar").is_file() and not partial.exists()
