"""Distributed data-parallel training with 2 CPU processes (gloo)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from posecast import config as cfgmod
from posecast.data.synth import write_synthetic_dataset
from posecast.io.checkpoint import load_checkpoint
from posecast.training.trainer import Trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg() -> cfgmod.Config:
    return cfgmod.override(cfgmod.preset("tiny"), num_epoch=2, batch_size=4, seed=3)


def _worker(rank: int, world: int, port: int, data: str, run: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = Trainer(_cfg(), data, run, progress=False, log=lambda _m: None)
    trainer.fit()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        torch.save(torch.stack(gathered), out)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("ddp") / "data", train_sequences=1,
                                   train_len=48, val_len=16, test_len=16)


@pytest.mark.slow
def test_two_cpu_processes_keep_identical_weights_and_match_single_process(data, tmp_path):
    run, out = tmp_path / "ddp_run", tmp_path / "weights.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(run), str(out)), nprocs=2, join=True)
    weights = torch.load(out)
    assert torch.equal(weights[0], weights[1]), "ranks diverged"

    # validation and checkpoints happen once, on rank 0: one metrics row per epoch
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2
    ddp_state = load_checkpoint(run / "checkpoints" / "last.ckpt")
    ddp_flat = torch.cat([v.flatten() for k, v in ddp_state["model"].items()])

    single = Trainer(_cfg(), data, tmp_path / "single", progress=False, log=lambda _m: None)
    single.fit()
    single_flat = torch.cat([v.flatten() for v in single.model.state_dict().values()])
    # the same global batches: DDP averages the two halves' gradients, single process sees the whole
    # batch; only the noise eps (drawn per rank) and float summation order differ
    rel = (ddp_flat - single_flat).norm() / single_flat.norm()
    assert rel < 0.05, f"DDP weights differ from single-process by {rel:.3f} (relative)"
    ddp_psnr = float(rows[-1].split(",")[12])
    single_psnr = float((tmp_path / "single" / "metrics.csv").read_text().strip().splitlines()[-1].split(",")[12])
    print(f"relative weight difference {rel:.4f}; val PSNR DDP {ddp_psnr:.3f} vs single {single_psnr:.3f}")
    assert abs(ddp_psnr - single_psnr) < 1.0, (ddp_psnr, single_psnr)
