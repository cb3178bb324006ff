"""Device choice without a GPU: torch.cuda's answers and the launcher's environment are stand-ins."""
from __future__ import annotations

import pytest
import torch

from mace_core.engine.device import resolve_device, under_torchrun
from mace_core.errors import MaceError

LAUNCHER = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def gpus(monkeypatch):
    """A machine with 4 CUDA devices, whose set_device calls are recorded."""
    for key in LAUNCHER:
        monkeypatch.delenv(key, raising=False)
    current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(torch.device(d)))
    return current


def test_single_process_cuda_index_becomes_the_current_device(gpus):
    assert resolve_device("cuda:2") == torch.device("cuda", 2)
    assert gpus == [torch.device("cuda", 2)]
    assert resolve_device("cuda") == torch.device("cuda", 0) and gpus[-1] == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu") and len(gpus) == 2  # cpu: the CUDA device is untouched


def test_under_torchrun_each_rank_takes_its_local_rank(gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 3)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 3)
    assert gpus == [torch.device("cuda", 3)] * 2


@pytest.mark.parametrize("env", [{"WORLD_SIZE": "2", "LOCAL_RANK": "1", "RANK": "1"}, {"LOCAL_RANK": "0"}])
def test_fixed_gpu_index_under_torchrun_is_refused(gpus, monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert under_torchrun()
    with pytest.raises(MaceError, match=r"train.device='cuda:0' under torchrun would put every rank on GPU 0"
                                        r".*use train.device=cuda \(or auto\)"):
        resolve_device("cuda:0", local_rank=int(env["LOCAL_RANK"]))
    assert gpus == []  # refused before any device was chosen


def test_gpu_index_beyond_the_visible_ones_and_no_cuda_are_errors(gpus, monkeypatch):
    with pytest.raises(MaceError, match="only 4 GPU"):
        resolve_device("cuda:4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MaceError, match="CUDA is not available"):
        resolve_device("cuda:1")
    assert resolve_device("auto") == torch.device("cpu") and gpus == []


def test_plain_process_is_not_a_torchrun_rank():
    assert not under_torchrun({}) and not under_torchrun({"WORLD_SIZE": "1"})
    assert under_torchrun({"WORLD_SIZE": "2"}) and under_torchrun({"LOCAL_RANK": "0"})
