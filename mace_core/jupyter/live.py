"""Live training progress in a notebook run by hand (JupyterLab, Run All): a progress bar (epoch and
step, running loss, images/s, ETA) and, every ``redraw_every`` steps, the training curves redrawn in
place. Nowhere else: a terminal has tqdm's own bars, and a notebook executed in batch (the study
runner, a user's papermill call, the book) shows neither, so executed pages stay as they are.

Batch execution is recognised by either of two signs, both robust to how papermill starts kernels:

* ``MACE_BATCH`` in the kernel's environment: the study runner sets it for every notebook it executes;
* papermill's injected ``# Parameters`` cell in the kernel's input history (``In``): papermill writes it
  whenever parameters are passed, which the runner and ``papermill -p ...`` always do.

A kernel without a front end that can show widgets is not told apart by anything the kernel sees, so
a bare ``papermill in.ipynb out.ipynb`` (no parameters) gets the bar's widget state in its output.
"""
from __future__ import annotations

import io
import os
import time
from typing import Any

BATCH_ENV = "MACE_BATCH"
_PAPERMILL_HEADER = "# Parameters"
REDRAW_EVERY = 50     # steps between two redraws of the curves


def interactive_notebook() -> bool:
    """True in a Jupyter kernel a person drives; False in a terminal, under papermill or the study."""
    if os.environ.get(BATCH_ENV):
        return False
    try:
        from IPython import get_ipython
    except ImportError:   # pragma: no cover - IPython comes with ipykernel
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    history = shell.user_ns.get("In") or []
    return not any(isinstance(s, str) and s.lstrip().startswith(_PAPERMILL_HEADER) for s in history)


class LiveProgress:
    """The trainer's ``monitor`` (see :func:`mace_core.engine.train.train`) for a notebook: a tqdm
    widget bar and an in-place figure of the loss per step and the metrics per epoch."""

    def __init__(self, name: str, images_per_step: int, redraw_every: int = REDRAW_EVERY, display: bool = True):
        self.name, self.images_per_step, self.redraw_every = name, int(images_per_step), int(redraw_every)
        self.display = display
        self.bar = None
        self.handle = None
        self.steps = 0
        self.last_draw = 0
        self.start = None
        self.losses: list[tuple[int, float]] = []      # (step, running loss of its epoch)
        self.epochs: list[dict[str, Any]] = []          # the trainer's log rows
        self.draws = 0

    # -- the trainer's calls
    def __call__(self, event: str, **data: Any) -> None:
        if event == "step":
            self._step(**data)
        elif event == "epoch":
            self._epoch(data["record"])

    def _step(self, epoch: int, epochs: int, batch: int, batches: int, loss: float | None) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm
            self.start = time.perf_counter()
            self.bar = tqdm(total=epochs * batches, desc=self.name, unit="step", dynamic_ncols=True,
                            disable=not self.display)
        self.steps += 1
        self.bar.update(1)
        elapsed = time.perf_counter() - self.start
        post = {"epoch": f"{epoch}/{epochs}", "step": f"{batch}/{batches}",
                "img/s": f"{self.images_per_step * self.steps / elapsed:.0f}" if elapsed > 0 else "-"}
        if loss is not None:
            self.losses.append((self.steps, float(loss)))
            post["loss"] = f"{loss:.3f}"
        self.bar.set_postfix(post, refresh=False)
        if self.steps - self.last_draw >= self.redraw_every:
            self.redraw()

    def _epoch(self, record: dict[str, Any]) -> None:
        self.epochs.append(dict(record))
        self.losses.append((self.steps, float(record["loss"])))
        self.redraw()
        if self.bar is not None and self.bar.n >= (self.bar.total or 0):
            self.bar.close()   # the last epoch: the bar stays, full, with its final figures

    # -- the figure
    def figure_png(self) -> bytes:
        from matplotlib.figure import Figure   # not pyplot: nothing is shown twice at the cell's end

        fig = Figure(figsize=(9, 3), dpi=80)
        ax_loss, ax_metric = fig.subplots(1, 2)
        if self.losses:
            steps, values = zip(*self.losses)
            ax_loss.plot(steps, values, marker=".", lw=1)
        ax_loss.set(xlabel="step", ylabel="loss (running mean of its epoch)", title=f"{self.name}: loss")
        if self.epochs:
            ep = [r["epoch"] for r in self.epochs]
            if all("train_acc" in r for r in self.epochs):
                ax_metric.plot(ep, [100 * r["train_acc"] for r in self.epochs], marker="o", label="train accuracy")
            evals = [(r["epoch"], r["eval"]) for r in self.epochs if isinstance(r.get("eval"), dict)]
            if evals:
                from mace_core.engine.train import headline
                ax_metric.plot([e for e, _ in evals], [100 * headline(m) for _, m in evals], marker="s",
                               label="test Rank-1")
            ax_metric.legend(loc="best", fontsize=8)
        ax_metric.set(xlabel="epoch", ylabel="%", title="per epoch")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def redraw(self) -> None:
        self.last_draw = self.steps
        self.draws += 1
        if not self.display:
            return
        from IPython.display import Image, display

        image = Image(data=self.figure_png(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def monitor_for(cfg) -> LiveProgress | None:
    """A live monitor for ``cfg``'s training when this is a notebook a person drives, else None."""
    if not interactive_notebook():
        return None
    # one call per batch: both modalities' P x K images
    return LiveProgress(cfg.name, 2 * cfg.data.ids_per_batch * cfg.data.images_per_id)
