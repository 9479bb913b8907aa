"""The training loop: build everything from a config, run epochs, log, checkpoint, resume.

`train(config, overrides)` is the Python entry (`ckd train` calls it). One process per GPU under
torchrun; a plain call trains on one device (CPU included).

SIGINT/SIGTERM (Ctrl-C, `docker stop`, a scheduler's pre-emption) do not kill the run: the current
iteration finishes, the work done so far is written atomically as a resumable checkpoint (see
`checkpointing`), and `train()` raises `TrainingInterrupted` naming it. A second Ctrl-C stops at once.
"""
from __future__ import annotations

import contextlib
import math
import pathlib
import resource
import signal
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Union

import torch
from torch.utils.data import DataLoader

from ckd_ros.errors import CKDError
from ckd_ros.train import checkpointing, distributed
from ckd_ros.train.config import load_config, model_config
from ckd_ros.train.dataset import PairDataset, UnreadableFrames, build_augment, build_specs
from ckd_ros.train.masking import search_keep_mask, step_generator
from ckd_ros.train.model import CKDTrainingModel
from ckd_ros.train.objective import ckd_objective, needs_block_outputs
from ckd_ros.train.optim import build_optimizer, trainable_count
from ckd_ros.train.sources import build_sources
from ckd_ros.train.weights import initialise

INPUT_KEYS = ("template_rgb", "template_tir", "search_rgb", "search_tir")
HISTORY_LIMIT = 10_000
STOP_SIGNALS = ("SIGINT", "SIGTERM")


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT/SIGTERM after saving its finished work; `checkpoint` is the file to resume
    from (None when nothing was done yet). The message is one line (the `ckd` command prints it)."""

    def __init__(self, message: str, checkpoint: Optional[pathlib.Path]):
        super().__init__(message)
        self.checkpoint = checkpoint


def _ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C/SIGTERM to the main process, which stops them after saving."""
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)


class _StopRequest:
    """Installs SIGINT/SIGTERM handlers for the duration of a run (main thread only): the first signal
    asks the loop to stop at the next iteration boundary, a second SIGINT raises KeyboardInterrupt."""

    def __init__(self):
        self.signal_name: Optional[str] = None
        self._previous = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                signum = getattr(signal, name)
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now, without saving
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


class Trainer:
    def __init__(self, cfg: Dict[str, Any]):
        self.cfg = cfg
        self.writer = None
        self.dist = distributed.setup(cfg["device"])
        self.device = self.dist.device
        self._threads_before = torch.get_num_threads()
        if int(cfg["threads"]) > 0:
            torch.set_num_threads(int(cfg["threads"]))
        try:
            self._build(cfg)
        except BaseException:
            self.close()  # a bad config must not leave the caller's process changed
            raise

    def _build(self, cfg: Dict[str, Any]) -> None:
        self.out_dir = pathlib.Path(cfg["output"]["dir"])
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.deploy_config = model_config(cfg)
        self.model_config = model_config(cfg, for_training=True)
        self.parts = ("teachers",) if cfg["stage"] == "teachers" else ("teachers", "students")
        self.block_outputs = needs_block_outputs(cfg["loss"], self.parts)
        self.history: List[Dict[str, float]] = []  # the last HISTORY_LIMIT steps' values (tests, callers)
        self._bar = None
        self.stop = _StopRequest()

        seed = int(cfg["seed"])
        resume = cfg["resume"]
        if resume == "auto":  # the latest checkpoint of this run, or a fresh start when there is none
            resume = checkpointing.latest_checkpoint(self.ckpt_dir, include_partial=True)
        torch.manual_seed(seed)  # identical construction on every rank and every run
        self.model = CKDTrainingModel(self.model_config)
        # resuming overwrites every weight: the init file is not needed (nor read) then
        init_msg = "" if resume else initialise(self.model, cfg["init"], seed)
        self.model.to(self.device)
        optim_cfg = cfg["optim"]
        self.optimizer = build_optimizer(self.model, optim_cfg["param_groups"], float(optim_cfg["weight_decay"]))
        amp = optim_cfg["amp"] or None
        if amp == "fp16" and self.device.type != "cuda":
            raise CKDError("optim.amp fp16 needs a CUDA device (use bf16 or false on CPU)")
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        torch.manual_seed(seed + self.dist.rank + 1)  # drop path; the authors' seed + rank + 1

        self.start_epoch, self.global_step, self.skip_steps = 1, 0, 0
        if resume:
            self._resume(resume)
            init_msg = f"resumed from {resume} (epoch {self.start_epoch - 1} done" + (
                f", {self.skip_steps} iterations of epoch {self.start_epoch})" if self.skip_steps else ")")
        self.net = distributed.wrap(self.model, self.dist)

        data = cfg["data"]
        specs = build_specs(data, self.model_config.template_size, self.model_config.search_size)
        aug = build_augment(data)
        world, batch = self.dist.world_size, int(optim_cfg["batch_size"])
        self.batch_size = batch
        self.iters_per_epoch = max(1, int(data["samples_per_epoch"]) // (world * batch))
        self.dataset = PairDataset(build_sources(data["datasets"]), self.iters_per_epoch * batch, specs, aug,
                                   self.model_config.patch_size, seed, self.dist.rank,
                                   int(data["max_sample_interval"]), int(data["min_sequence_length"]))
        self.loader = self._loader(self.dataset, batch)
        self.unreadable = UnreadableFrames(self.dataset, float(data["max_unreadable_fraction"]), self.log)
        self.val = self._build_val(data.get("val"), specs, batch)
        self.log(f"[ckd train] stage {cfg['stage']}, model {self.deploy_config.name} "
                 f"(embed {self.model_config.embed_dim}, depth {self.model_config.depth}, "
                 f"CE {list(self.model_config.ce_loc) or 'off'}), {init_msg}; "
                 f"{trainable_count(self.model) / 1e6:.2f} M trainable parameters; device {self.device}, "
                 f"world {world}, batch {batch}/process, {self.iters_per_epoch} iterations/epoch")
        if self.dist.is_main and cfg["output"]["tensorboard"]:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    # ---- set-up helpers ------------------------------------------------------------------------
    def _loader(self, dataset, batch: int, start_batch: int = 0) -> DataLoader:
        """Batches of `dataset` in index order from batch `start_batch` (an interrupted epoch resumes)."""
        workers = int(self.cfg["data"]["num_workers"])
        # A private generator: the loader's per-epoch base seed must not consume the global RNG
        # (which drop path uses), or resuming would not continue bit-exactly.
        sampler = range(start_batch * batch, len(dataset)) if start_batch else None
        return DataLoader(dataset, batch_size=batch, shuffle=False, sampler=sampler, num_workers=workers,
                          drop_last=True, pin_memory=self.device.type == "cuda", generator=torch.Generator(),
                          persistent_workers=False, worker_init_fn=_ignore_stop_signals if workers else None)

    def _build_val(self, val_cfg, specs, batch: int):
        if not val_cfg:
            return None
        unknown = set(val_cfg) - {"datasets", "samples", "every"}
        if unknown:
            raise CKDError(f"unknown data.val keys {sorted(unknown)}; known: datasets, samples, every")
        samples = max(batch, int(val_cfg.get("samples", 1000)) // self.dist.world_size)
        dataset = PairDataset(build_sources(val_cfg["datasets"]), samples // batch * batch, specs,
                              build_augment(self.cfg["data"]), self.model_config.patch_size,
                              int(self.cfg["seed"]) + 7_777, self.dist.rank,
                              int(self.cfg["data"]["max_sample_interval"]),
                              int(self.cfg["data"]["min_sequence_length"]))
        return {"loader": self._loader(dataset, batch), "every": int(val_cfg.get("every", 5))}

    def _resume(self, path) -> None:
        obj = checkpointing.load_training_checkpoint(path)
        try:
            self.model.load_state_dict(obj["net"], strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise CKDError(f"cannot resume from {path}: it holds another model ({first}); "
                           "resume with the config it was trained with") from None
        try:
            self.optimizer.load_state_dict(obj["optimizer"])
        except ValueError as exc:
            raise CKDError(f"cannot resume from {path}: the optimizer groups differ ({exc}); "
                           "resume with the same optim.param_groups or start a new run with init.type: ckd") from None
        if self.scaler is not None and obj.get("scaler"):
            self.scaler.load_state_dict(obj["scaler"])
        per_rank = obj.get("rng_per_rank") or []
        same_world = len(per_rank) == self.dist.world_size
        checkpointing.set_rng_state(per_rank[self.dist.rank] if same_world else obj["rng"])
        self.start_epoch = int(obj["epoch"]) + 1
        self.global_step = int(obj["global_step"])
        self.skip_steps = int(obj.get("epoch_steps", 0))

    # ---- logging -------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if not self.dist.is_main:
            return
        if self._bar is not None:
            self._bar.write(msg)
        else:
            print(msg, flush=True)

    def _scalars(self, stats: Dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is not None:
            for k, v in stats.items():
                self.writer.add_scalar(prefix + k, v, step)

    # ---- one step ------------------------------------------------------------------------------
    def _inputs(self, batch: Dict[str, torch.Tensor]):
        nb = self.device.type == "cuda"
        return [batch[k].to(self.device, non_blocking=nb) for k in INPUT_KEYS], \
            batch["search_anno"].to(self.device, non_blocking=nb)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        (z_rgb, z_tir, x_rgb, x_tir), anno = self._inputs(batch)
        keep_x = None
        if "students" in self.parts:
            keep_x = search_keep_mask(z_rgb.shape[0], self.model_config.num_search_tokens,
                                      float(self.cfg["mask"]["ratio"]),
                                      step_generator(int(self.cfg["seed"]), self.dist.rank, self.global_step))
            keep_x = keep_x.to(self.device) if keep_x is not None else None
        with self._autocast():
            out = self.net(z_rgb, z_tir, x_rgb, x_tir, keep_x=keep_x, parts=self.parts,
                           block_outputs=self.block_outputs)
        loss, terms = ckd_objective(out, anno, self.cfg["loss"], self.model_config.feat_size)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, float(self.cfg["optim"]["grad_clip"])) \
            if params else torch.zeros(())
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.global_step += 1
        stats = {k: float(v) for k, v in terms.items()}
        stats["grad_norm"] = float(grad_norm)
        return stats

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        self.model.eval()
        sums: Dict[str, float] = {}
        count = 0
        for batch in self.val["loader"]:
            inputs, anno = self._inputs(batch)
            with self._autocast():
                out = self.model(*inputs, parts=self.parts, block_outputs=self.block_outputs)
            _, terms = ckd_objective(out, anno, self.cfg["loss"], self.model_config.feat_size)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
        self.model.train()
        return distributed.mean_over_ranks({k: v / max(count, 1) for k, v in sums.items()}, self.dist)

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> pathlib.Path:
        """Train the remaining epochs; returns the last checkpoint. Raises TrainingInterrupted (after
        saving the finished work) when SIGINT/SIGTERM arrives."""
        with self.stop:
            return self._run()

    def _run(self) -> pathlib.Path:
        cfg_out = self.cfg["output"]
        epochs = int(self.cfg["optim"]["epochs"])
        last = checkpointing.latest_checkpoint(self.ckpt_dir) if self.start_epoch > 1 else None
        if self.start_epoch > epochs:
            self.log(f"[ckd train] nothing to do: epoch {self.start_epoch - 1} of {epochs} already done")
        log_every = max(1, int(cfg_out["log_every"]))
        try:
            for epoch in range(self.start_epoch, epochs + 1):
                self.dataset.set_epoch(epoch)
                self.model.train()
                skip = self.skip_steps if epoch == self.start_epoch else 0
                loader = self._loader(self.dataset, self.batch_size, skip) if skip else self.loader
                self._bar = self._progress(epoch, epochs, skip)
                t_last, sums, n = time.perf_counter(), {}, 0
                try:
                    for batch in loader:
                        self.unreadable.update(batch)  # skipped damaged frames: logged once, abort above the limit
                        stats = self.train_step(batch)
                        now = time.perf_counter()
                        stats["time/iter_s"], t_last = now - t_last, now
                        stats["epoch"] = float(epoch)
                        self.history.append(stats)
                        if len(self.history) > HISTORY_LIMIT:
                            del self.history[:-HISTORY_LIMIT]
                        for k, v in stats.items():
                            sums[k] = sums.get(k, 0.0) + v
                        n += 1
                        if self._bar is not None:
                            self._bar.update(1)
                            self._bar.set_postfix(loss=f"{stats['loss/total']:.4f}", refresh=False)
                        if self.global_step % log_every == 0:
                            lrs = {f"lr/{g['name']}": g["lr"] for g in self.optimizer.param_groups}
                            self._scalars({**stats, **lrs}, self.global_step, "train/")
                        if skip + n < self.iters_per_epoch and self._stop_requested():  # else: epoch end
                            raise self._interrupted(epoch, skip + n)
                except RuntimeError:  # a loader worker hit by the same Ctrl-C (the run stops anyway)
                    if self.stop.signal_name is None:
                        raise
                    raise self._interrupted(epoch, skip + n) from None
                means = distributed.mean_over_ranks({k: v / max(n, 1) for k, v in sums.items()}, self.dist)
                summary = ", ".join(f"{k} {means[k]:.4f}" for k in ("loss/total", "loss/student", "loss/style",
                                                                      "loss/content", "iou/student") if k in means)
                skipped = self.unreadable.summary()
                self.log(f"[ckd train] epoch {epoch}/{epochs}: {summary}; {means.get('time/iter_s', 0):.3f} s/iter, "
                         f"peak RSS {_peak_rss_mb():.0f} MB" + (f"; {skipped}" if skipped else ""))
                self._close_bar()
                if self.val is not None and epoch % self.val["every"] == 0:
                    val = self.validate()
                    self._scalars(val, epoch, "val/")
                    self.log(f"[ckd train] validation epoch {epoch}: loss {val.get('loss/total', math.nan):.4f}")
                stopping = self._stop_requested()
                if stopping or epoch % max(1, int(cfg_out["save_every"])) == 0 or epoch == epochs:
                    last = self._save(epoch)
                if stopping and epoch < epochs:
                    raise self._interrupted(epoch + 1, 0)
        finally:
            self._close_bar()
            if self.writer is not None:
                self.writer.flush()
        return last if last is not None else checkpointing.checkpoint_path(self.ckpt_dir, epochs)

    def _stop_requested(self) -> bool:
        """A stop signal arrived on any rank (all ranks must stop at the same iteration)."""
        flag = float(self.stop.signal_name is not None)
        if self.dist.enabled:
            flag = distributed.mean_over_ranks({"stop": flag}, self.dist)["stop"]
        return flag > 0

    def _interrupted(self, epoch: int, steps_done: int) -> TrainingInterrupted:
        """Save what epoch `epoch` has done so far (epochs before it are done) and describe the stop."""
        self._close_bar()
        why = f"stopped by {self.stop.signal_name or 'a signal on another rank'}"
        if steps_done:
            path = self._save(epoch - 1, epoch_steps=steps_done)
            where = f"after {steps_done}/{self.iters_per_epoch} iterations of epoch {epoch}"
        else:
            path = checkpointing.latest_checkpoint(self.ckpt_dir, include_partial=True)
            where = f"after epoch {epoch - 1}"
        if path is None:
            return TrainingInterrupted(f"{why} before the first iteration finished; nothing to save", None)
        return TrainingInterrupted(f"{why} {where}; the finished work is saved in {path}", path)

    def _save(self, epoch: int, epoch_steps: int = 0) -> pathlib.Path:
        """Checkpoint `epoch` finished epochs (+ `epoch_steps` iterations of the next: a partial file)."""
        partial = epoch_steps > 0
        path = checkpointing.checkpoint_path(self.ckpt_dir, epoch + 1 if partial else epoch, partial=partial)
        rng_states = distributed.gather_objects(checkpointing.rng_state(), self.dist)  # drop path differs per rank
        if self.dist.is_main:
            checkpointing.save_checkpoint(path, self.model, self.optimizer, epoch, self.global_step,
                                          self.deploy_config, self.cfg, self.scaler, rng_per_rank=rng_states,
                                          epoch_steps=epoch_steps)
            if not partial:
                checkpointing.prune_checkpoints(self.ckpt_dir, int(self.cfg["output"]["keep_last"]))
                checkpointing.remove_partials(self.ckpt_dir, epoch)
            self.log(f"[ckd train] saved {path}")
        distributed.barrier(self.dist)
        return path

    def _progress(self, epoch: int, epochs: int, initial: int = 0):
        if not (self.dist.is_main and self.cfg["output"]["progress"]):
            return None
        from tqdm import tqdm
        return tqdm(total=self.iters_per_epoch, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="it",
                    leave=False, dynamic_ncols=True)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        torch.set_num_threads(self._threads_before)  # train() is also a library call: leave no trace
        distributed.teardown(self.dist)


def train(config: Union[str, pathlib.Path, Dict[str, Any]],
          overrides: Optional[Iterable[Union[str, Dict[str, Any]]]] = None) -> pathlib.Path:
    """Train from a YAML path or dict (+ 'a.b=value' overrides); returns the last checkpoint's path."""
    trainer = Trainer(load_config(config, overrides))
    try:
        return trainer.run()
    finally:
        trainer.close()
