"""Result tables: thesis numbers beside ours, labels, metric extraction from results dicts."""
from types import SimpleNamespace

import numpy as np
import pytest

from mace_core.analysis import tables, thesis_numbers as tn
from mace_core.config import RunConfig
from mace_core.errors import MaceError


def fake_run(variant="baseline", trials=None, source="synthetic", selection=None, **cfg_changes):
    cfg = RunConfig()
    cfg.data.source = source
    for dotted, value in cfg_changes.items():
        section, key = dotted.split("__")
        setattr(getattr(cfg, section), key, value)
    trials = trials or [{"cmc": [0.5] + [0.7] * 4 + [0.8] * 5 + [0.9] * 10, "mAP": 0.4, "mINP": 0.2},
                        {"cmc": [0.3] + [0.5] * 4 + [0.6] * 5 + [0.7] * 10, "mAP": 0.2, "mINP": 0.1}]
    # the trainer's results.json: metrics as the evaluator writes them (fractions, per trial)
    results = {"metrics": {"trials": trials}, "train_time_s": 90.0, "parameters": 2_900_000,
               "selected_epoch": 12, "model_selection": selection or "final epoch", "data_source": source}
    return SimpleNamespace(variant=variant, config=cfg, results=results)


def test_summarize_trials_gives_percent_mean_and_sample_std():
    s = tables.summarize(fake_run().results)
    sd = 20 / np.sqrt(2)   # two trials 20 points apart, ddof=1
    assert s["R1"] == pytest.approx((40.0, sd))
    assert s["R5"] == pytest.approx((60.0, sd))
    assert s["R20"] == pytest.approx((80.0, sd))
    assert s["mAP"] == pytest.approx((30.0, sd))
    assert s["mINP"] == pytest.approx((15.0, sd / 2))


def test_summarize_prefers_the_evaluators_mean_and_std():
    res = {"metrics": {"trials": [{"rank1": 0.9}], "mean": {"rank1": 0.4, "mAP": 0.3},
                       "std": {"rank1": 0.01, "mAP": 0.02}, "rank1": {"mean": 0.4, "std": 0.01}}}
    s = tables.summarize(res)
    assert set(s) == {"R1", "mAP"}
    assert s["R1"] == pytest.approx((40.0, 1.0)) and s["mAP"] == pytest.approx((30.0, 2.0))


def test_summarize_other_shapes():
    assert tables.summarize({"mean": {"R1": 41.0, "mAP": 30.0}, "std": {"R1": 1.0}})["R1"] == (41.0, 1.0)
    assert tables.summarize({"metrics": {"rank1": {"mean": 0.5, "std": 0.1}}})["R1"] == pytest.approx((50.0, 10.0))
    assert tables.summarize({"cmc": np.linspace(0.2, 0.9, 20), "mAP": 0.3})["R1"] == pytest.approx((20.0, None))
    with pytest.raises(MaceError, match="no metrics"):
        tables.summarize({"epochs": 3})


def test_baseline_table_has_thesis_row_and_labels():
    df = tables.baseline_table(fake_run())
    assert list(df["source"]) == ["ours, synthetic data, final epoch", tn.THESIS_LABEL]
    assert df.iloc[0]["Rank-1"] == "40.00 ± 14.14"
    assert df.iloc[1]["Rank-1"] == "45.59" and df.iloc[1]["Rank-20"] == "93.44"
    assert df.iloc[1]["mINP"] == tables.MISSING            # the thesis reports no mINP
    cap = df.attrs["caption"]
    assert "synthetic" in cap and tn.THESIS_LABEL in cap and "final epoch" in cap


def test_selection_rule_is_carried_into_the_label():
    run = fake_run(selection="best epoch on test set (thesis convention)")
    df = tables.baseline_table([run])
    assert df.iloc[0]["source"] == "ours, synthetic data, best epoch on test set (thesis convention)"
    assert "best epoch on test set" in df.attrs["caption"]


def test_backbone_table_maps_small_family_members_to_thesis_rows():
    runs = [fake_run("resnet", model__backbone="resnet18"), fake_run("se", model__backbone="seresnet18"),
            fake_run("eff", model__backbone="efficientnet_b0"), fake_run("tres", model__backbone="tresnet_m")]
    df = tables.backbone_table(runs)
    thesis = df[df.source == tn.THESIS_LABEL].set_index("variant")
    assert thesis.loc["se", "Rank-1"] == "45.54" and thesis.loc["se", "Parameters (M)"] == "49.3"
    assert thesis.loc["eff", "mAP"] == "37.70" and thesis.loc["tres", "Reported epoch"] == "32"
    ours = df[df.source != tn.THESIS_LABEL].set_index("variant")
    assert ours.loc["resnet", "Parameters (M)"] == "2.9" and ours.loc["resnet", "Training time"] == "90 s"
    assert tables.backbone_family("resnet10t") == "resnet50"


def test_attention_fusion_fraction_tables():
    att = tables.attention_table([fake_run("cam", model__attention="cam"), fake_run("sam", model__attention="sam")])
    assert set(att[att.source == tn.THESIS_LABEL]["Rank-1"]) == {"42.33", "43.47"}
    fus = tables.fusion_table([fake_run("adaptive", model__fusion="adaptive")])
    assert fus.iloc[1]["Reported epoch"] == "16"
    frac = tables.fraction_table([fake_run("f50", data__id_fraction=0.5), fake_run("f10", data__id_fraction=0.1)])
    assert list(frac["fraction"]) == ["10%", "10%", "50%", "50%"]
    assert frac.iloc[1]["Rank-1"] == "13.40"
    curve = tables.fraction_curve_data([fake_run(data__id_fraction=0.5)])
    assert set(curve.source) == {"ours, synthetic data, final epoch", tn.THESIS_LABEL}
    with pytest.raises(MaceError, match="no completed runs"):
        tables.attention_table([])


def test_multi_query_table_pairs_strategies_with_thesis():
    evals = [{"n": n, "fusion": f, "results": {"R1": 0.3 + 0.01 * n, "mAP": 0.2}} for n in (1, 5) for f in tn.FUSIONS]
    df = tables.multi_query_table(evals, fake_run())
    row = df[(df.n == 5) & (df.metric == "Rank-1")].iloc[0]
    assert row["avg (ours)"] == "35.00" and row[f"max ({tn.THESIS_LABEL})"] == "49.69"
    single = df[(df.n == 1) & (df.metric == "mAP")].iloc[0]
    assert single[f"avg ({tn.THESIS_LABEL})"] == "43.25"
    assert row["images fused (mean)"] == tables.MISSING  # not recorded by these evaluations
    recorded = [{**e, "results": {**e["results"], "protocol": {"mean_pool_size": 3.5}}} for e in evals]
    capped = tables.multi_query_table(recorded, fake_run())
    assert capped[capped.n == 5].iloc[0]["images fused (mean)"] == "3.5"
    assert "synthetic" in df.attrs["caption"]


def test_occlusion_table_drops_and_thesis_rows():
    base = fake_run("baseline")
    occ = fake_run("occ_rect", data__occlusion_p=0.5, data__occlusion_types=["random_rect"])
    evals = [{"model": "baseline", "occlusion": None, "results": {"R1": 0.40, "mAP": 0.30}},
             {"model": "baseline", "occlusion": "random_rect", "results": {"R1": 0.10, "mAP": 0.05}},
             {"model": "baseline", "occlusion": "lower_body", "results": {"R1": 0.30, "mAP": 0.25}},
             {"model": "occ_rect", "occlusion": "random_rect", "results": {"R1": 0.20, "mAP": 0.10}}]
    frame = tables.occlusion_frame(base, [occ], evals)
    rect = frame[(frame.model == "baseline") & (frame.occlusion == "random_rect")].iloc[0]
    assert rect.R1_drop == pytest.approx(30.0) and rect.mAP_drop == pytest.approx(25.0)
    trained = frame[frame.model == "occ_rect"].iloc[0]
    assert trained.clean_R1 == pytest.approx(40.0) and trained.trained_with == "random_rect"  # from its own results
    df = tables.occlusion_table(base, [occ], evals)
    thesis = df[df.source == tn.THESIS_LABEL]
    assert list(thesis["occluded Rank-1"]) == ["16.55", "23.85", "40.36"]
    assert tables.show(df).caption.startswith("Table 9")


def test_ambiguity_table_points_at_real_config_keys():
    cfg = RunConfig()
    for amb in tn.AMBIGUITIES:
        for key in amb.config_keys:
            section, name = key.split(".")
            assert hasattr(getattr(cfg, section), name), key


def test_thesis_table9_drops_are_consistent():
    for (model, occ), row in tn.TABLE9.items():
        assert row["clean_R1"] - row["occ_R1"] == pytest.approx(row["R1_drop"], abs=0.06), (model, occ)
