"""Issue 22, point 1: live progress in a notebook run by hand, none under papermill or the study.

The trainer calls its monitor once per batch and once per epoch; the notebook monitor draws a bar and
redraws the curves every N steps; a real kernel (started as JupyterLab starts it) shows the bar as a
widget and the curves as one display updated in place, and stops showing both once papermill's
parameters cell or the study's environment variable says it runs in batch.
"""
from __future__ import annotations

import json
import queue

import pytest
from _train_helpers import tiny_config

from mace_core.engine.train import train
from mace_core.jupyter import live


def test_trainer_calls_the_monitor_every_batch_and_epoch(tiny_root, tmp_path):
    events = []
    train(tiny_config(tiny_root), tmp_path / "run", progress=False, monitor=lambda e, **d: events.append((e, d)))
    steps = [d for e, d in events if e == "step"]
    epochs = [d["record"] for e, d in events if e == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3] and len(steps) == 9       # 3 epochs x 3 batches
    assert [(d["epoch"], d["batch"], d["batches"], d["epochs"]) for d in steps[:4]] == [
        (1, 1, 3, 3), (1, 2, 3, 3), (1, 3, 3, 3), (2, 1, 3, 3)]
    # each "epoch" call comes after its last batch
    assert [i for i, (e, _) in enumerate(events) if e == "epoch"] == [3, 7, 11]


def test_monitor_redraws_every_n_steps_and_after_each_epoch():
    mon = live.LiveProgress("baseline", images_per_step=32, redraw_every=4, display=False)
    for epoch in (1, 2):
        for b in range(1, 6):
            mon("step", epoch=epoch, epochs=2, batch=b, batches=5, loss=3.0 - b / 10 if b % 2 == 0 else None)
        mon("epoch", record={"epoch": epoch, "loss": 2.5, "train_acc": 0.1 * epoch,
                             "eval": {"rank1": 0.2} if epoch == 2 else None})
    # steps 4 and 9 (every 4 steps since the last draw, counting the draws after epochs 1 and 2)
    assert mon.steps == 10 and mon.draws == 2 + 2
    assert [s for s, _ in mon.losses] == [2, 4, 5, 7, 9, 10]
    png = mon.figure_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_no_live_progress_outside_a_kernel(monkeypatch):
    monkeypatch.delenv(live.BATCH_ENV, raising=False)
    assert live.interactive_notebook() is False            # pytest: no IPython kernel


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_kernel_shows_bar_and_curves_only_when_run_by_hand(monkeypatch):
    from jupyter_client.manager import start_new_kernel

    monkeypatch.delenv(live.BATCH_ENV, raising=False)

    def run(kc, code):
        msg_id = kc.execute(code)
        out = []
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=120)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            out.append((kind, msg["content"]))
        return out

    drive = ("from mace_core.jupyter import live\nmon = live.monitor_for(cfg)\nprint('monitor', mon is not None)\n"
             "if mon is not None:\n    mon.redraw_every = 2\n"
             "    for b in range(1, 5): mon('step', epoch=1, epochs=1, batch=b, batches=4, loss=1.0)\n"
             "    mon('epoch', record={'epoch': 1, 'loss': 1.0, 'train_acc': 0.5})\n")
    setup = ("from types import SimpleNamespace as N\n"
             "cfg = N(name='x', data=N(ids_per_batch=2, images_per_id=2), train=N())\n")
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        out = run(kc, setup + drive)
        text = "".join(c.get("text", "") for k, c in out if k == "stream")
        assert "monitor True" in text, out
        assert "IProgress not found" not in text                     # ipywidgets is installed
        widgets = [c for k, c in out if k == "display_data"
                   and "application/vnd.jupyter.widget-view+json" in c.get("data", {})]
        images = [c for k, c in out if k == "display_data" and "image/png" in c.get("data", {})]
        updates = [c for k, c in out if k == "update_display_data" and "image/png" in c.get("data", {})]
        assert len(widgets) == 1, "one progress bar widget"
        assert len(images) == 1 and len(updates) >= 2, "the curves: one display, redrawn in place"
        assert images[0]["transient"]["display_id"] == updates[0]["transient"]["display_id"]
        # papermill's injected parameters cell: batch from here on
        run(kc, "# Parameters\nprofile = 'ci'\n")
        out = run(kc, drive)
        assert "monitor False" in "".join(c.get("text", "") for k, c in out if k == "stream")
        assert not [k for k, _ in out if k in ("display_data", "update_display_data")]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    monkeypatch.setenv(live.BATCH_ENV, "1")    # what the study runner sets for its kernels
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        out = run(kc, setup + drive)
        assert "monitor False" in "".join(c.get("text", "") for k, c in out if k == "stream"), json.dumps(out)[:500]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
