"""Checkpoint save/load: atomicity, weights_only, RNG capture, architecture mismatch errors."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mace_core.engine import checkpoint as ck
from mace_core.errors import MaceError


class _Net(torch.nn.Module):
    def __init__(self, out: int = 3):
        super().__init__()
        self.fc = torch.nn.Linear(4, out)
        self.bn = torch.nn.BatchNorm1d(out)


class _NotATensor:  # pickling this needs code execution: weights_only must refuse it
    pass


def test_roundtrip_is_exact_and_leaves_no_temp_files(tmp_path):
    torch.manual_seed(0)
    net = _Net()
    path = tmp_path / "ck" / "last.pt"
    ck.save_checkpoint(path, {"model": net.state_dict(), "epoch": 3, "history": [{"loss": 1.5}]})
    loaded = ck.load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["history"] == [{"loss": 1.5}]
    other = _Net()
    ck.load_model_state(other, loaded["model"])
    for key, value in net.state_dict().items():
        assert torch.equal(value, other.state_dict()[key])
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, {"epoch": 1})

    def broken_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        ck.save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": ck.FORMAT, "payload": _NotATensor()}, path)
    with pytest.raises(MaceError, match="cannot be read"):
        ck.load_checkpoint(path)


def test_garbage_missing_and_foreign_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(MaceError, match="cannot be read"):
        ck.load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(MaceError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(MaceError, match="not a mace-checkpoint"):
        ck.load_checkpoint(tmp_path / "foreign.pt")


def test_other_architecture_lists_the_mismatch():
    state = _Net(out=3).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["bn.running_var"]
    with pytest.raises(MaceError) as err:
        ck.load_model_state(_Net(out=2), state)
    text = str(err.value)
    assert "missing keys: bn.running_var" in text
    assert "unexpected keys: extra.weight" in text
    assert "fc.weight checkpoint (3, 4) vs model (2, 4)" in text


def test_rng_capture_restores_every_generator(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's state
    state = ck.capture_rng()
    path = tmp_path / "rng.pt"
    ck.save_checkpoint(path, {"rng": state})
    first = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3))
    ck.restore_rng(ck.load_checkpoint(path)["rng"])
    second = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_unwrap_finds_the_plain_module():
    net = _Net()

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert ck.unwrap(Wrapper(net)) is net
