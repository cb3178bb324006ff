"""DDP: the trainer's entry point under 2 CPU processes (gloo) trains and both ranks end identical."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from _train_helpers import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str, run: str, out: str) -> None:
    # the environment torchrun would set
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from mace_core import models
    from mace_core.engine.train import train

    keep: dict = {}
    build = models.build_model

    def build_and_record(*args, **kwargs):  # the initial weights, to prove that training moved them
        model = build(*args, **kwargs)
        keep["init"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model

    models.build_model = build_and_record  # the trainer imports it from here when it runs
    # log_every=1: the loss sums are reduced over the ranks after every step as well as per epoch
    results = train(tiny_config(root, ["train.steps_per_epoch=4", "train.epochs=2", "train.log_every=1"]), run,
                    progress=False, keep=keep)
    state = {k: v.detach().clone() for k, v in keep["model"].state_dict().items()}
    torch.save({"state": state, "init": keep["init"], "results": results}, os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch built without gloo")
def test_two_gloo_ranks_train_and_agree(tiny_root, tmp_path):
    run = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_root), str(run), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["results"]["world_size"] == 2 and r1["results"] == {}  # only rank 0 reports and writes
    assert r0["results"]["steps"] == 4  # 4 batches per epoch shared by 2 ranks: 2 steps each, 2 epochs
    assert (run / "results.json").is_file()
    assert r0["state"].keys() == r1["state"].keys()
    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    initial = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(initial[k], r0["state"][k]) for k in initial)  # the checkpoint is the shared model
    # it trained: every rank started from the same weights, and the weights moved (by the same update)
    for key in r0["init"]:
        assert torch.equal(r0["init"][key], r1["init"][key]), key
    moved = [k for k in r0["init"] if r0["init"][k].is_floating_point() and not torch.equal(r0["init"][k], r0["state"][k])]
    for part in ("specific.rgb.stem", "specific.ir.stem", "trunk", "phi_s", "cls_v", "cls_i", "cls_s"):
        assert any(k.startswith(part) for k in moved), part


def _diverging_worker(rank: int, world: int, port: int, root: str, run: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from mace_core import losses
    from mace_core.engine.train import train
    from mace_core.errors import MaceError

    forward = losses.MaceLoss.forward

    def nan_on_rank1(self, *args, **kwargs):  # rank 1's loss is NaN from its second batch on
        total, terms = forward(self, *args, **kwargs)
        self.calls = getattr(self, "calls", 0) + 1
        if rank == 1 and self.calls >= 2:
            terms = {**terms, "total": terms["total"] * float("nan")}
        return total, terms

    losses.MaceLoss.forward = nan_on_rank1
    try:
        train(tiny_config(root, ["train.steps_per_epoch=8", "train.epochs=1", "train.log_every=2"]), run,
              progress=False)
        message = "no error"
    except MaceError as exc:
        message = str(exc)
    with open(os.path.join(out, f"rank{rank}.txt"), "w") as f:
        f.write(message)
    torch.distributed.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch built without gloo")
def test_a_rank_whose_loss_diverges_stops_every_rank_at_the_same_read(tiny_root, tmp_path):
    mp.spawn(_diverging_worker, args=(2, _free_port(), str(tiny_root), str(tmp_path / "run"), str(tmp_path)),
             nprocs=2, join=True)
    rank0, rank1 = ((tmp_path / f"rank{r}.txt").read_text() for r in (0, 1))
    assert "batch 2 of the epoch" in rank1 and "non-finite" in rank1  # the rank that diverged names its batch
    assert "another rank" in rank0 and "by batch 2 of the epoch" in rank0  # the healthy one stops at that read
