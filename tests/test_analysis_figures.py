"""Figures: training curves, metric curves, attention, t-SNE and retrieval grids on fake inputs."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mace_core.analysis import (attention_maps, embeddings, figures, multi_query_tables, retrieval_grid, tables,
                                thesis_rows)
from mace_core.errors import MaceError


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def fake_log(epochs=5):
    e = np.arange(1, epochs + 1)
    # columns as the trainer's log.csv names them (nested eval dict flattened with dots)
    return pd.DataFrame({"epoch": e, "step": 10 * e, "loss": 6 / e, "loss.id": 5 / e, "loss.id_v": 1.2 / e,
                         "loss.kd": 0.1 * e, "loss.triplet": 0.3 / e, "lr": 0.1 * np.ones(epochs),
                         "lambda2": e / epochs, "train_acc": e / epochs / 2,
                         "eval.mean.rank1": [np.nan, 0.1, np.nan, 0.2, 0.3],
                         "eval.std.rank1": [np.nan, 0.01, np.nan, 0.02, 0.03],
                         "eval.mean.mAP": [np.nan, 0.1, np.nan, 0.15, 0.2],
                         "eval.rank1.mean": [np.nan, 0.1, np.nan, 0.2, 0.3]})


def test_training_curves_plot_every_loss_term_and_metric(tmp_path):
    log = fake_log()
    assert figures.loss_columns(log) == ["loss.id", "loss.id_v", "loss.kd", "loss.triplet", "loss"]
    assert figures.metric_columns(log) == ["eval.mean.rank1", "eval.mean.mAP"]
    fig = figures.training_curves(log, "baseline")
    assert len(fig.axes) >= 3
    assert len(fig.axes[0].lines) == 5
    metric_ax = [ax for ax in fig.axes if ax.get_title().startswith("test metrics")][0]
    assert max(metric_ax.lines[0].get_ydata()) == pytest.approx(30.0)   # fractions shown in percent
    out = figures.save(fig, tmp_path / "curves.png")
    assert out.stat().st_size > 1000 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(MaceError, match="no loss columns"):
        figures.training_curves(pd.DataFrame({"epoch": [1], "lr": [0.1]}))


def test_metric_curves_one_panel_per_metric_with_bands():
    # two training seeds per point: the band is the std over seeds
    evals = [{"seed": s, "n": n, "fusion": f, "results": {"trials": [{"R1": 0.3 + 0.01 * n + 0.02 * s, "mAP": 0.2},
                                                                     {"R1": 0.32 + 0.01 * n, "mAP": 0.22}]}}
             for s in (0, 1) for n in (1, 2, 5) for f in ("avg", "max")]
    frame = multi_query_tables.multi_query_frame(evals)
    fig = figures.metric_curves(frame, x="n", hue="fusion")
    assert [ax.get_title() for ax in fig.axes] == ["R1", "mAP"]
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].collections  # lines + std bands
    with pytest.raises(MaceError, match="lacks columns"):
        figures.metric_curves(frame.drop(columns="mean"), x="n", hue="fusion")


def test_channel_bars_gate_histogram_and_occlusion_drops():
    rng = np.random.default_rng(0)
    fig = figures.channel_bars({"stem / RGB": rng.random((4, 128)), "stem / IR": rng.random(128)}, first=64)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 64
    w = rng.dirichlet([2, 2], size=40)
    assert figures.gate_histogram(w, ["RGB"] * 20 + ["IR"] * 20).axes
    with pytest.raises(MaceError, match="do not match"):
        figures.gate_histogram(w, ["RGB"])
    frame = pd.DataFrame({"model": ["baseline", "baseline"], "occlusion": ["random_rect", "lower_body"],
                          "R1_drop": [20.0, 10.0], "mAP_drop": [15.0, 8.0]})
    assert len(figures.occlusion_drops(frame).axes) == 2


def test_tsne_shape_determinism_and_figure():
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(c, 0.1, size=(10, 16)) for c in (0, 3)])
    a = embeddings.tsne_2d(feats, seed=1)
    assert a.shape == (20, 2)
    np.testing.assert_allclose(a, embeddings.tsne_2d(feats, seed=1))
    # the two well-separated clusters stay apart in 2-D
    gap = np.linalg.norm(a[:10].mean(0) - a[10:].mean(0))
    assert gap > 3 * max(a[:10].std(0).max(), a[10:].std(0).max())
    pids = np.repeat([1, 2], 10)
    mods = np.tile(["RGB", "IR"], 10)
    fig = embeddings.tsne_figure(a, pids, mods)
    assert len(fig.axes[0].collections) == 2
    mask = embeddings.select_identities(np.arange(30) // 2, max_ids=4)
    assert len(np.unique((np.arange(30) // 2)[mask])) == 4
    with pytest.raises(MaceError):
        embeddings.tsne_2d(np.zeros((2, 4)))


def test_attention_heatmaps_over_images():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 32, 3), dtype=np.uint8), rng.random((1, 64, 32))]
    maps = {"stem": [rng.random((16, 8)), rng.random((16, 8))], "prepool": [rng.random((4, 2))] * 2}
    up = attention_maps.upsample(maps["prepool"][0], 64, 32)
    assert up.shape == (64, 32) and 0 <= up.min() and up.max() <= 1
    fig = attention_maps.heatmap_grid(images, maps, ["RGB id 1", "IR id 1"])
    assert len(fig.axes) == 2 * 3 + 1  # grid + colour bar
    assert attention_maps.as_rgb_uint8(images[1]).shape == (64, 32, 3)
    with pytest.raises(MaceError, match="maps for"):
        attention_maps.heatmap_grid(images, {"stem": maps["stem"][:1]}, ["a", "b"])


def test_top_k_applies_the_same_room_rule_and_grid_marks_matches():
    q = np.array([[1.0, 0.0], [1.0, 0.0]])
    g = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    # gallery 0 is from cam2: a cam3 query must not see it, a cam6 query does
    ranked = retrieval_grid.top_k(q, g, k=2, q_cams=[3, 6], g_cams=[2, 1, 4])
    assert ranked.tolist() == [[1, 2], [0, 1]]
    with pytest.raises(MaceError, match="outside"):
        retrieval_grid.top_k(q, g, k=4)
    imgs = [np.zeros((32, 16, 3), np.uint8)] * 3
    rows = retrieval_grid.rows_from_ranking(["q0", "q1"], imgs[:2], [7, 8], ranked, imgs, [8, 7, 8])
    assert rows[0].matches == [True, False] and rows[1].matches == [True, False]
    fig = retrieval_grid.retrieval_grid(rows)
    assert len(fig.axes) == 2 * 3
    colours = [s.get_edgecolor() for s in fig.axes[1].spines.values()]
    assert all(np.allclose(c[:3], matplotlib.colors.to_rgb("tab:green")) for c in colours)
    pool = [retrieval_grid.RetrievalRow("pool", imgs[:2], imgs, [True, False, False])]
    assert len(retrieval_grid.retrieval_grid(pool, queries_per_row=2).axes) == 5


def test_comparison_bars_ours_beside_thesis():
    from types import SimpleNamespace

    from mace_core.config import RunConfig

    cfg = RunConfig()
    cfg.model.attention = "sam"
    run = SimpleNamespace(variant="sam", config=cfg, results={"metrics": {"mean": {"rank1": 0.3, "mAP": 0.2},
                                                                            "std": {"rank1": 0.01, "mAP": 0.02}}})
    frame = tables.comparison_frame([run], thesis_rows.thesis_for("02_attention"))
    assert len(frame) == 4 and set(frame[frame.source.str.startswith("thesis")]["mean"]) == {43.47, 43.73}
    fig = figures.comparison_bars(frame)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 2
    with pytest.raises(MaceError, match="no thesis table"):
        thesis_rows.thesis_for("04_multi_query")


def test_forest_plot_draws_each_comparison_the_thesis_and_the_detectable_band():
    from _tables_helpers import seeded

    from mace_core.analysis import findings as fd, forest

    runs = seeded("baseline", [30, 33, 39]) + seeded("cam", [40, 44, 48], model__attention="cam") + \
        seeded("sam", [31, 31, 43], model__attention="sam")
    rows = forest.forest_rows("02_attention", runs)
    # the chapter's family: cam and sam against the baseline, and the claim SAM − CAM
    assert [r.label for r in rows] == ["cam vs baseline", "sam vs baseline", "§3.5.2: SAM − CAM"]
    assert rows[0].thesis == pytest.approx(42.33 - 45.59)                    # Table 5, CAM − none
    assert rows[2].thesis == pytest.approx(1.14, abs=0.01)                   # the claim's thesis Δ
    assert len({r.mdd for r in rows}) == 1 and rows[0].mdd > 0
    fig = forest.forest_plot(rows, "attention")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [r.label for r in rows]
    diamonds = [line for line in ax.lines if line.get_marker() == "D"]
    assert len(diamonds) == 3
    band = ax.collections[-1].get_paths()[0].vertices
    assert band[:, 0].min() == pytest.approx(-rows[0].mdd) and band[:, 0].max() == pytest.approx(rows[0].mdd)
    assert forest.forest_summary(rows) == {"distinguishable": 1, "smaller": 2, "cannot tell": 0}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("thesis" in t for t in labels) and any("detectable" in t for t in labels)
    # one seed: no row, and the page says so in one line
    single = seeded("baseline", [30]) + seeded("cam", [40], model__attention="cam")
    assert forest.forest_rows("02_attention", single) == []
    with pytest.raises(MaceError, match="forest plot"):
        forest.forest_plot([])
    assert "cannot tell variants apart" in fd.ONE_SEED_PAGE
