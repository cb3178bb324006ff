"""`mace bench`'s parts: input pipeline alone, model step alone, both together, one-time costs apart.

The timings run on a fake clock that only the injected costs advance (a slow start-up, a slow first
step, a fixed model step, a fixed load per batch), so every figure is known exactly by hand."""
from __future__ import annotations

import time

import pytest
import torch
import torch.utils.deterministic
from _train_helpers import tiny_config

from mace_core.engine import bench as bench_mod
from mace_core.engine.batches import PREFETCH_FACTOR, SeededBatches
from mace_core.engine.prepare import configure_determinism
from mace_core.errors import MaceError

START, FIRST, STEP = 50.0, 30.0, 0.25   # fake seconds: building data/model, first step, every later step


class FakeClock:
    """``time`` for the module under test: perf_counter moves only when a test advances it."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def inject(monkeypatch, modules, load: float = 0.0) -> FakeClock:
    """Slow start-up and first step in each of ``modules`` (those that import build_training_set and
    forward_backward), STEP per later step, ``load`` per batch built."""
    clock, fresh = FakeClock(), [False]
    for module in modules:
        build, fb = module.build_training_set, module.forward_backward

        def slow_build(*args, _build=build, **kwargs):
            clock.now += START
            fresh[0] = True
            return _build(*args, **kwargs)

        def timed_step(*args, _fb=fb, **kwargs):
            clock.now += FIRST if fresh[0] else STEP
            fresh[0] = False
            return _fb(*args, **kwargs)

        monkeypatch.setattr(module, "time", clock)
        monkeypatch.setattr(module, "build_training_set", slow_build)
        monkeypatch.setattr(module, "forward_backward", timed_step)
    getitem = SeededBatches.__getitem__

    def loading(self, key):
        clock.now += load
        return getitem(self, key)

    monkeypatch.setattr(SeededBatches, "__getitem__", loading)
    return clock


@pytest.mark.parametrize("load, limit, workers", [(0.1, "model step", 1), (1.0, "input pipeline", 4)])
def test_parts_are_steady_state_and_name_the_bottleneck(tiny_root, monkeypatch, load, limit, workers):
    inject(monkeypatch, [bench_mod], load)
    r = bench_mod.bench(tiny_config(tiny_root), steps=4, warmup=2)
    # the slow start-up and first step land in the one-time row only
    assert r["one_time"]["setup_s"] == START
    assert r["one_time"]["warmup_s"] == pytest.approx(FIRST + STEP + 2 * load)
    assert r["model_step"]["step_time_ms_mean"] == pytest.approx(1000 * STEP)
    assert r["input_pipeline"]["batches_per_s"] == pytest.approx(1 / load)
    # no workers: the batch is built in the training process, in series with the step
    assert r["together"]["step_time_ms_mean"] == pytest.approx(1000 * (STEP + load))
    assert r["together"]["queued_ahead"] == 0 and r["steps"] == 4
    assert r["images_per_s"] == pytest.approx(16 / (STEP + load))  # 2 x P x K = 16 images a step
    # model 4 steps/s against 1/load batches/s from one loader process
    assert r["bottleneck"] == limit and r["workers_to_keep_up"] == workers


def test_together_drains_the_loader_queue_with_workers(tiny_root):
    cfg = tiny_config(tiny_root, data={"workers": 2})
    r = bench_mod.bench(cfg, steps=3, warmup=1, parts=("together", "input"))
    queue = 2 * PREFETCH_FACTOR
    assert r["together"]["queued_ahead"] == queue
    assert r["together"]["steps"] == bench_mod.DRAIN_FACTOR * queue > queue  # not the 3 asked for
    assert r["input_pipeline"]["batches"] == bench_mod.DRAIN_FACTOR * queue and r["input_pipeline"]["workers"] == 2
    assert r["input_pipeline"]["batches_per_s_per_worker"] == pytest.approx(r["input_pipeline"]["batches_per_s"] / 2)
    assert f"queues {queue} batches ahead" in r["together"]["note"]
    assert "model_step" not in r and "bottleneck" not in r


def test_bench_parts_are_checked(tiny_root):
    with pytest.raises(MaceError, match="bench parts"):
        bench_mod.bench(tiny_config(tiny_root), steps=1, warmup=0, parts=("loader",))


def test_determinism_modes_and_their_restore():
    cpu = torch.device("cpu")
    before = torch.are_deterministic_algorithms_enabled()
    try:
        configure_determinism(True, cpu)
        # reproducible kernels, without NaN-filling every new tensor
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        with bench_mod.determinism_mode(False, cpu):
            assert not torch.are_deterministic_algorithms_enabled()
        assert torch.are_deterministic_algorithms_enabled()
        configure_determinism(False, cpu)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before, warn_only=True)
