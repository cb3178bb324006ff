"""The trainer's run directory, labels, guards and error paths on a seconds-long CPU config."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml
from _train_helpers import tiny_config

from mace_core.engine.checkpoint import BEST_ON_TEST, FINAL_EPOCH, load_checkpoint, load_for_eval
from mace_core.engine.train import train, train_config_summary
from mace_core.errors import MaceError


def test_run_directory_is_complete_and_labelled(tiny_root, tmp_path):
    run = tmp_path / "run"
    keep: dict = {}
    results = train(tiny_config(tiny_root), run, progress=False, keep=keep)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "env.json", "log.csv",
                                                     "results.json"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]  # no best.pt without select_on_test
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 3
    env = json.loads((run / "env.json").read_text())
    assert env["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert {"commit", "dirty"} <= set(env["git"]) and env["hardware"]["torch_threads"] >= 1

    log = pd.read_csv(run / "log.csv")
    assert list(log["epoch"]) == [1, 2, 3] and list(log["step"]) == [3, 6, 9]
    for col in ("loss", "loss.id", "loss.kd", "loss.triplet", "loss.kd_v2i", "lr", "lr_backbone", "lambda2",
                "train_acc", "epoch_time_s", "images_per_s", "peak_gpu_mem_mb"):
        assert col in log.columns, col
    # milestone at epoch 2: the lr drops tenfold; the backbone runs at 0.1 x the head lr
    assert log["lr"].tolist()[:2] == pytest.approx([0.05, 0.005])
    assert log["lr_backbone"].tolist()[0] == pytest.approx(0.005)
    assert log["lambda2"].iloc[0] < log["lambda2"].iloc[-1] == pytest.approx(1.0)
    # the weight applied to loss.kd is lambda_2 x T^2 (T = 3, kd_t2_scaling on by default)
    assert log["kd_weight_effective"].tolist() == pytest.approx((9 * log["lambda2"]).tolist())
    assert "loss.kd_ens" not in log.columns and "ens_weight_effective" not in log.columns  # ensemble term off
    assert log["eval.rank1.mean"].notna().tolist() == [False, False, True]  # eval_every 0: after the last only

    saved = json.loads((run / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert results["model_selection"] == FINAL_EPOCH and results["selected_epoch"] == 3
    assert results["data_source"] == "synthetic" and results["steps"] == 9 and results["parameters"] > 0
    assert results["metrics"] == results["final_epoch_metrics"]
    assert FINAL_EPOCH in train_config_summary(results) and "synthetic" in train_config_summary(results)
    assert results["pretrained_weights"] == "none" and results["kd_weight_effective"] == pytest.approx(9.0)
    assert "weights: none" in train_config_summary(results)
    assert "KD weight λ₂·T² = 1 × 9 = 9" in train_config_summary(results)

    # the checkpoint alone rebuilds the model: same retrieval features as the trained one in memory
    model, cfg = load_for_eval(run / "checkpoints" / "last.pt")
    trained = keep["model"].eval()
    x = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        assert torch.equal(model.extract(x, "ir"), trained.extract(x, "ir"))
    assert cfg.name == "tiny"


def test_select_on_test_is_labelled_and_keeps_best(tiny_root, tmp_path):
    run = tmp_path / "run"
    results = train(tiny_config(tiny_root, ["train.select_on_test=true", "train.eval_every=1"]), run,
                    progress=False)
    assert results["model_selection"] == BEST_ON_TEST
    assert results["selected_epoch"] == results["best_epoch_on_test"]
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["model_selection"] == BEST_ON_TEST and best["epoch"] == results["selected_epoch"]
    assert best["metrics"] == results["metrics"]
    assert BEST_ON_TEST in train_config_summary(results)
    log = pd.read_csv(run / "log.csv")
    assert log["eval.rank1.mean"].notna().all()  # evaluated every epoch


def test_unscaled_kd_and_ensemble_learning_are_logged_as_applied(tiny_root, tmp_path):
    cfg = tiny_config(tiny_root, ["loss.kd_t2_scaling=false", "loss.ens_kd_weight=0.5",
                                  "loss.ens_kd_schedule=fixed", "train.epochs=1"])
    results = train(cfg, tmp_path / "run", progress=False)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log["kd_weight_effective"].tolist() == pytest.approx(log["lambda2"].tolist())
    assert log["ens_weight_effective"].tolist() == [0.5] and log["loss.kd_ens"].iloc[0] > 0
    assert "KD weight λ₂ = 1, no T² scaling" in train_config_summary(results)
    assert "ensemble KD weight λ₃ = 0.5" in train_config_summary(results)


def test_grad_accumulation_counts_optimizer_steps(tiny_root, tmp_path):
    results = train(tiny_config(tiny_root, ["train.grad_accum=2", "train.epochs=1"]), tmp_path / "r", progress=False)
    assert results["steps"] == 2  # 3 batches -> steps after batch 2 and after the last (partial) group


def test_diverging_loss_names_epoch_step_and_term(tiny_root, tmp_path):
    with pytest.raises(MaceError, match=r"at epoch 1, batch \d+ of the epoch \(non-finite term\(s\): .*") as err:
        train(tiny_config(tiny_root, ["train.lr=1.0e+30", "train.warmup_epochs=0"]), tmp_path / "r", progress=False)
    assert "train.lr" in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    (["train.early_stop_patience=2"], "select_on_test"),
    (["train.early_stop_patience=2", "train.select_on_test=true"], "eval_every"),
    (["train.grad_accum=0"], "grad_accum"),
    (["train.amp=fp32"], "auto, off, bf16 or fp16"),
    (["train.device=cuda:7"], "train.device"),
    (["eval.direction=v2t"], "ir2rgb, rgb2ir"),          # the tiny run is SYSU: v2t is RegDB's
    (["eval.rerank=true", "eval.rerank_lambda=1.5"], "rerank_lambda"),
])
def test_bad_settings_are_refused(tiny_root, tmp_path, overrides, message):
    if "cuda" in overrides[0] and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(MaceError, match=message):
        train(tiny_config(tiny_root, overrides), tmp_path / "r", progress=False)


def test_early_stopping_on_test_metric_is_labelled(tiny_root, tmp_path, monkeypatch):
    import mace_core.engine.train as engine

    scores = iter([0.5, 0.4, 0.3])
    monkeypatch.setattr(engine, "evaluate", lambda model, cfg, device: {"rank1": {"mean": next(scores)}})
    results = train(tiny_config(tiny_root, ["train.select_on_test=true", "train.eval_every=1",
                                            "train.early_stop_patience=1"]), tmp_path / "r", progress=False)
    assert results["stopped_early"] and results["epochs_trained"] == 2
    assert results["selected_epoch"] == 1 and results["metrics"] == {"rank1": {"mean": 0.5}}
    assert results["final_epoch_metrics"] == {"rank1": {"mean": 0.4}}
    assert results["model_selection"] == BEST_ON_TEST


def test_early_stop_survives_a_kill_before_results(tiny_root, tmp_path, monkeypatch):
    """Killed after the stopping epoch's checkpoint but before results.json: resuming must not train on."""
    import mace_core.engine.train as engine

    scores = iter([0.5, 0.4, 0.3])
    monkeypatch.setattr(engine, "evaluate", lambda model, cfg, device: {"rank1": {"mean": next(scores)}})
    cfg = tiny_config(tiny_root, ["train.select_on_test=true", "train.eval_every=1", "train.early_stop_patience=1"])
    train(cfg, tmp_path / "r", progress=False)
    (tmp_path / "r" / "results.json").unlink()
    resumed = train(cfg, tmp_path / "r", resume=True, progress=False)
    assert resumed["stopped_early"] and resumed["epochs_trained"] == 2 and resumed["steps"] == 6
    assert resumed["final_epoch_metrics"] == {"rank1": {"mean": 0.4}}


def test_training_evaluation_honours_direction_and_rerank(tiny_root, tmp_path):
    results = train(tiny_config(tiny_root, ["eval.rerank=true", "eval.rerank_k1=5", "eval.direction=rgb2ir"]),
                    tmp_path / "r", progress=False)
    m = results["metrics"]
    assert m["reranked"] is True and m["rerank"]["k1"] == 5 and m["protocol"]["direction"] == "rgb2ir"
    assert all(t["reranked"] for t in m["trials"])


def test_fp16_with_gradscaler_trains_on_cpu(tiny_root, tmp_path):
    """Issue 22, point 8: the fp16 autocast + GradScaler path (the GPU's fp16 setting) on CPU, where
    torch allows it: finite losses, the scaler live and saved in the checkpoint, the run resumable."""
    from mace_core.engine import train as engine

    seen = {}
    real = engine.forward_backward

    def spy(net, criterion, batch, epoch, b, device, dtype, scaler, divide=1):
        seen.setdefault("dtype", dtype)
        seen.setdefault("scaler", scaler.is_enabled())
        return real(net, criterion, batch, epoch, b, device, dtype, scaler, divide)

    import pytest as _pytest
    mp = _pytest.MonkeyPatch()
    mp.setattr(engine, "forward_backward", spy)
    try:
        results = train(tiny_config(tiny_root, ["train.amp=fp16", "train.device=cpu"]), tmp_path / "r", progress=False)
    finally:
        mp.undo()
    assert seen == {"dtype": torch.float16, "scaler": True}
    log = pd.read_csv(tmp_path / "r" / "log.csv")
    assert log["loss"].notna().all() and torch.isfinite(torch.tensor(log["loss"].to_numpy())).all()
    state = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0
    assert 0 <= results["metrics"]["mean"]["rank1"] <= 1
