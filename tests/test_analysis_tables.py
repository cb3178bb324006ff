"""Result tables: thesis numbers beside ours, labels, metric extraction from results dicts."""
from types import SimpleNamespace

import numpy as np
import pytest

from mace_core.analysis import (claims, findings as fd, headline, multi_query_tables, occlusion_tables, results, tables,
                                thesis_claims as tc, thesis_numbers as tn, thesis_rows)
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
    stored = {"metrics": {"trials": trials}, "train_time_s": 90.0, "parameters": 2_900_000,
              "selected_epoch": 12, "model_selection": selection or "final epoch", "data_source": source}
    return SimpleNamespace(variant=variant, config=cfg, results=stored)


def test_summarize_trials_gives_percent_mean_and_sample_std():
    s = results.summarize(fake_run().results)
    sd = 20 / np.sqrt(2)   # two trials 20 points apart, ddof=1
    assert s["R1"] == pytest.approx((40.0, sd))
    assert s["R5"] == pytest.approx((60.0, sd))
    assert s["R20"] == pytest.approx((80.0, sd))
    assert s["mAP"] == pytest.approx((30.0, sd))
    assert s["mINP"] == pytest.approx((15.0, sd / 2))


def test_summarize_prefers_the_evaluators_mean_and_std():
    res = {"metrics": {"trials": [{"rank1": 0.9}], "mean": {"rank1": 0.4, "mAP": 0.3},
                       "std": {"rank1": 0.01, "mAP": 0.02}, "rank1": {"mean": 0.4, "std": 0.01}}}
    s = results.summarize(res)
    assert set(s) == {"R1", "mAP"}
    assert s["R1"] == pytest.approx((40.0, 1.0)) and s["mAP"] == pytest.approx((30.0, 2.0))


def test_summarize_other_shapes():
    assert results.summarize({"mean": {"R1": 41.0, "mAP": 30.0}, "std": {"R1": 1.0}})["R1"] == (41.0, 1.0)
    assert results.summarize({"metrics": {"rank1": {"mean": 0.5, "std": 0.1}}})["R1"] == pytest.approx((50.0, 10.0))
    assert results.summarize({"cmc": np.linspace(0.2, 0.9, 20), "mAP": 0.3})["R1"] == pytest.approx((20.0, None))
    with pytest.raises(MaceError, match="no metrics"):
        results.summarize({"epochs": 3})


from _tables_helpers import fake_run as seeded_run, seeded, with_identities  # noqa: E402


def _attention_study(sam_r1=(31, 31, 43)):
    base = seeded("baseline", [30, 33, 39])
    cam = seeded("cam", [40, 44, 48], model__attention="cam")
    sam = seeded("sam", list(sam_r1), model__attention="sam")
    return base + cam + sam


def test_comparison_table_has_one_row_per_variant_and_side_by_side_groups():
    df = tables.attention_table(_attention_study())
    assert list(df[("variant", "")]) == ["baseline", "cam", "sam"]           # one row per variant
    assert list(df[("n", "")]) == ["3", "3", "3"]
    groups = list(dict.fromkeys(df.columns.get_level_values(0)))
    # each header says what its ± means: a std over seeds, or a difference's 95 % interval
    assert groups == ["variant", "n", "Rank-1 (± std)", "mAP (± std)", "Δ Rank-1 (± 95 % CI)", "verdict", "p (Holm)"]
    assert [sub for g, sub in df.columns if g == "Rank-1 (± std)"] == ["ours", "thesis"]
    cam = df.iloc[1]
    assert cam[("Rank-1 (± std)", "ours")] == "44.0 ± 4.0"          # seeds 40, 44, 48
    assert cam[("Rank-1 (± std)", "thesis")] == "42.3"
    assert cam[("Δ Rank-1 (± 95 % CI)", "ours")] == "+10.0 ± 2.5"       # paired: 10, 11, 9
    assert cam[("Δ Rank-1 (± 95 % CI)", "thesis")] == "-3.3" and cam[("verdict", "")] == "higher"
    # the chapter's family: cam and sam vs the baseline and the claim SAM − CAM (p = 0.05998), k = 3;
    # paired t-tests (scipy ttest_rel): cam p = 0.003317 -> 3 × = 0.00995; SAM − CAM 2 × 0.05998 = 0.1200;
    # sam max(0.1200, 1 × 0.6220) = 0.6220. Detectable Δ: per-seed sds 1, 3 and 4 (SAM − CAM: -9, -13, -5)
    # pool to √(26/3) at α = 0.05 / 3: 5.6719 · 2.944 = 16.7 pp
    assert cam[("p (Holm)", "")] == "0.010" and df.iloc[2][("p (Holm)", "")] == "0.622"
    family = claims.chapter_family("02_attention", _attention_study())
    assert family.k == 3 and family.diffs()[0].detectable == pytest.approx(
        fd.minimum_detectable((26 / 3) ** 0.5, 3, alpha=0.05 / 3))
    assert df.iloc[2][("verdict", "")] == "n.d.: < 16.7 pp"
    assert df.iloc[0][("p (Holm)", "")] == ""
    assert df.iloc[0][("Δ Rank-1 (± 95 % CI)", "ours")] == "baseline"
    # source, selection rule and n are said once, in the caption, not in any cell
    cap = df.attrs["caption"]
    assert "synthetic data" in cap and "final epoch" in cap and "n = 3 training seeds" in cap
    assert tn.THESIS_LABEL in cap and fd.SMALLER in cap and fd.CANNOT_TELL in cap and "absent" not in cap
    assert not any("synthetic" in str(v) for v in df.to_numpy().ravel())


def test_rows_with_different_seed_counts_state_n_per_row_and_single_runs_say_so():
    runs = seeded("baseline", [30, 33, 39]) + [seeded_run("cam", r1=35.0, model__attention="cam")]
    df = tables.attention_table(runs)
    assert list(df[("n", "")]) == ["3", "1"]
    assert df.iloc[1][("Rank-1 (± std)", "ours")] == "35.0" and df.iloc[1][("verdict", "")] == "no estimate (n = 1)"
    assert "n = 1–3" in df.attrs["caption"]
    single = tables.attention_table([seeded_run("baseline"), seeded_run("sam", model__attention="sam")])
    assert fd.SINGLE_RUN_NOTE in single.attrs["caption"]
    # one seed per variant: one line says the page cannot tell variants apart (no empty verdict columns)
    assert fd.ONE_SEED_PAGE in single.attrs["caption"] and "p (Holm)" not in single.columns.get_level_values(0)
    assert tables.experiment_finding("02_attention", [seeded_run("baseline"), seeded_run(
        "sam", model__attention="sam")], with_claims=False) == fd.ONE_SEED_PAGE
    assert "verdict" not in single.columns.get_level_values(0) and single.iloc[1][("Δ Rank-1", "ours")] == "+0.0"


def test_finding_follows_the_numbers():
    win = tables.experiment_finding("02_attention", _attention_study())
    assert win.startswith("Against the baseline (baseline, IR→RGB Rank-1 34.0 ± 4.6 %, n = 3)")
    assert "**cam** +10.0 ± 2.5 pp (Holm p = 0.010; distinguishable, higher)" in win and "agrees for 0 of 2" in win
    # the page lists the chapter's one family: both comparisons and the claim SAM − CAM
    assert "**This chapter's Holm family**: the 3 contrasts" in win and "3. §3.5.2: SAM − CAM" in win
    runs = seeded("baseline", [30, 33, 39]) + seeded("sam", [28, 28, 40], model__attention="sam")
    lose = tables.experiment_finding("02_attention", runs)
    assert "**sam** -2.0 ± 7.5 pp" in lose and "not distinguishable; any effect is probably smaller than" in lose
    assert "agrees with the thesis" in lose


def test_headline_labels_the_best_of_k_and_states_the_detectable_difference():
    h = headline.headline("02_attention", _attention_study())
    assert h.measure == f"cam vs baseline (best of 2{headline.PICKED})" and h.noise == "exceeds (higher)"
    # the chapter family's detectable Δ (see test_comparison_table_...): the same number as on its page
    assert h.mdd == "16.7"
    assert [r.claim.id for r in h.claims] == [c.id for c in tc.claims_for("02_attention")]
    assert "\n- §" not in h.finding                   # the overview lists the claims in their own section


def test_baseline_table_is_one_row_per_metric_ours_beside_thesis():
    df = tables.baseline_table(seeded("baseline", [30, 33, 39]))
    assert list(df.columns) == ["metric", "ours (± std)", "thesis"]
    assert list(df["metric"]) == [results.HEADERS[m] for m in results.METRICS]
    assert df.iloc[0]["ours (± std)"] == "34.0 ± 4.6" and df.iloc[0]["thesis"] == "45.6"
    assert df.iloc[5]["thesis"] == results.MISSING            # the thesis reports no mINP
    assert "n = 3 training seeds" in df.attrs["caption"]
    with pytest.raises(MaceError, match="one variant"):
        tables.baseline_table(seeded("baseline", [1]) + seeded("other", [2]))


def test_selection_rule_and_gallery_noise_are_in_the_caption():
    df = tables.baseline_table([seeded_run(selection="best epoch on test set (thesis convention)", trial_std=2.0)])
    assert "best epoch on test set" in df.attrs["caption"] and "Gallery-trial std within one run: 2.0" in df.attrs["caption"]


def test_backbone_tables_map_small_family_members_to_thesis_rows():
    runs = (seeded("resnet", [30, 32], model__backbone="resnet18") + seeded("se", [20, 22], model__backbone="seresnet18")
            + seeded("eff", [5, 6], model__backbone="efficientnet_b0"))
    df = tables.backbone_table(runs).set_index(("variant", ""))
    assert df.loc["se", ("Rank-1 (± std)", "thesis")] == "45.5" and df.loc["eff", ("mAP (± std)", "thesis")] == "37.7"
    assert df.loc["resnet", ("Δ Rank-1 (± 95 % CI)", "ours")] == "baseline"
    assert df.loc["se", ("Δ Rank-1 (± 95 % CI)", "ours")].startswith("-10.0")
    cost = tables.backbone_cost_table(runs).set_index(("variant", ""))
    assert cost.loc["se", ("parameters (M)", "thesis")] == "49.3" and cost.loc["resnet", ("training time", "ours")] == "90 s"
    assert cost.loc["eff", ("epoch", "thesis")] == "46"
    assert thesis_rows.backbone_family("resnet10t") == "resnet50"


def test_fraction_and_fusion_tables():
    runs = (seeded("fraction_50", [20, 22], data__id_fraction=0.5) + seeded("fraction_100", [30, 31], data__id_fraction=1.0)
            + seeded("fraction_10", [10, 9], data__id_fraction=0.1))
    frac = tables.fraction_table(runs)
    assert list(frac[("identities", "")]) == ["10%", "50%", "100%"]
    assert frac.iloc[0][("Rank-1 (± std)", "thesis")] == "13.4" and frac.iloc[2][("Δ Rank-1 (± 95 % CI)", "ours")] == "baseline"
    assert "all identities" in tables.experiment_finding("05_data_efficiency", runs)
    curve = tables.fraction_curve_data(runs)
    ours = curve[(curve.source != tn.THESIS_LABEL) & (curve.metric == "R1")].set_index("fraction")
    assert ours.loc[0.5, "mean"] == pytest.approx(21.0) and ours.loc[0.5, "std"] == pytest.approx(np.sqrt(2))
    fus = tables.fusion_table(seeded("concat", [30, 31]) + seeded("adaptive", [25, 27], model__fusion="adaptive"))
    assert fus.iloc[1][("Δ Rank-1 (± 95 % CI)", "thesis")] == "-1.6"
    with pytest.raises(MaceError, match="no completed runs"):
        tables.attention_table([])
    with pytest.raises(MaceError, match="same training seed"):
        tables.attention_table([seeded_run("cam"), seeded_run("cam")])


def test_multi_query_table_aggregates_seeds_per_pool_size():
    evals = [{"seed": s, "n": n, "fusion": f, "results": {"R1": (30 + n + s) / 100, "mAP": 0.2,
                                                          "protocol": {"mean_pool_size": min(n, 8)}}}
             for s in (0, 1, 2) for n in (1, 5, 10) for f in tn.FUSIONS]
    runs = seeded("baseline", [30, 31, 32])
    df = multi_query_tables.multi_query_table(evals, runs)
    assert list(df[("n", "")]) == ["1", "5", "10"] and list(df[("fused", "")]) == ["1.0", "5.0", "8.0"]
    five = df.iloc[1]
    assert five[("avg (± std)", "ours")] == "36.0 ± 1.0" and five[("max (± std)", "thesis")] == "49.7"
    assert df.iloc[0][("avg (± std)", "thesis")] == "45.6"            # n = 1: Table 3
    assert "n = 3 training seeds" in df.attrs["caption"]
    frame = multi_query_tables.multi_query_frame(evals)
    assert frame[(frame.n == 5) & (frame.metric == "R1")]["mean"].tolist() == pytest.approx([36.0] * 3)
    text = multi_query_tables.multi_query_finding(evals)
    # every seed gains exactly n - 1 points: zero spread, so the gain exceeds the noise
    assert "**n = 10, avg** +9.0 ± 0.0 pp (Holm p < 0.001; distinguishable, higher)" in text
    assert "Holm-adjusted over the 7 comparisons" in text      # 6 pools and the claims' one extra contrast


def test_occlusion_table_rows_per_model_and_condition():
    runs = seeded("baseline", [40, 42, 44]) + seeded("occlusion_random_rect", [39, 41, 43], data__occlusion_p=0.5,
                                                     data__occlusion_types=["random_rect"])
    evals = []
    for s in (0, 1, 2):
        evals += [{"seed": s, "model": "baseline", "occlusion": "random_rect", "results": {"R1": (20 + s) / 100, "mAP": 0.15}},
                  {"seed": s, "model": "baseline", "occlusion": "lower_body", "results": {"R1": (40 + 2 * s) / 100, "mAP": 0.30}},
                  {"seed": s, "model": "occlusion_random_rect", "occlusion": "random_rect",
                   "results": {"R1": (33 + s) / 100, "mAP": 0.25}}]
    df = occlusion_tables.occlusion_table(runs, evals)
    assert [tuple(r) for r in df[[("model", ""), ("queries", "")]].to_numpy()] == [
        ("baseline", "clean"), ("baseline", "lower_body"), ("baseline", "random_rect"),
        ("occlusion_random_rect", "clean"), ("occlusion_random_rect", "random_rect")]
    rect = df.iloc[2]
    assert rect[("Rank-1 (± std)", "ours")] == "21.0 ± 1.0" and rect[("Rank-1 (± std)", "thesis")] == "16.6"
    assert rect[("Rank-1 drop (± 95 % CI)", "ours")] == "21.0 ± 2.5"          # 20, 21, 22 paired
    assert df.iloc[1][("Rank-1 drop (± 95 % CI)", "ours")] == "0.0 ± 0.0 n.d."   # lower_body: same as clean
    assert df.iloc[0][("Rank-1 (± std)", "thesis")] == "44.6" and df.iloc[4][("Rank-1 (± std)", "thesis")] == "40.4"
    frame = occlusion_tables.occlusion_frame(runs, evals)
    assert frame.set_index(["model", "occlusion"]).loc[("baseline", "random_rect"), "R1_drop"] == pytest.approx(21.0)
    text = occlusion_tables.occlusion_finding(runs, evals)
    assert "**random_rect** +21.0 ± 2.5 pp (Holm p = 0.002; distinguishable, higher), thesis 28.1" in text
    assert "**occlusion_random_rect** on random_rect +13.0 ± 0.0 pp" in text
    # the clean-query cost of occlusion training is in the finding, not only in the claims
    assert "on clean queries -1.0 ± 0.0 pp (Holm p < 0.001; distinguishable, lower)" in text
    # one family: a drop in the table, its claim (read the other way round) and the finding share one p
    family = claims.chapter_family("06_occlusion", runs, evals)
    assert family.k == 6 and text.count("Holm p = 0.002") == 3       # finding, family list, claim line
    caption = tables.show(df).caption
    assert caption.startswith("Table 9") and "Rank-1 drops: ± the half-width of their 95 % t-interval over seeds." in caption
    # the overview's row reads like every other: Rank-1 under the condition (± std), Δ to clean (± interval)
    h = headline.headline("06_occlusion", runs, evals)
    assert h.measure == f"baseline, random_rect vs clean queries, largest drop of 2{headline.PICKED}"
    assert (h.ours, h.thesis, h.diff, h.thesis_diff) == ("21.0 ± 1.0", "16.6", "-21.0 ± 2.5", "-28.1")
    assert h.noise == "exceeds (lower)" and h.direction == "agrees" and h.method == "paired"


def test_ambiguity_table_points_at_real_config_keys():
    cfg = RunConfig()
    for amb in tn.AMBIGUITIES:
        for key in amb.config_keys:
            section, name = key.split(".")
            assert hasattr(getattr(cfg, section), name), key


def test_thesis_table9_drops_are_consistent():
    for (model, occ), row in tn.TABLE9.items():
        assert row["clean_R1"] - row["occ_R1"] == pytest.approx(row["R1_drop"], abs=0.06), (model, occ)


def test_reranked_numbers_are_said_in_the_caption():
    plain = seeded("baseline", [30, 33])
    assert "Re-ranked" not in tables.baseline_table(plain).attrs["caption"]
    for run in plain:
        run.results["metrics"].update(reranked=True, rerank={"k1": 20, "k2": 6, "lambda": 0.3})
    cap = tables.baseline_table(plain).attrs["caption"]
    assert "Re-ranked: k-reciprocal re-ranking" in cap and "k1 = 20, k2 = 6, λ = 0.3" in cap
    # evaluations of trained runs (multi-query, occlusion tables) are checked too
    assert results.rerank_note([{"reranked": True, "rerank": {"k1": 10, "k2": 3, "lambda": 0.5}}]).startswith("Re-ranked")
    assert results.rerank_note([{"reranked": False}, {"mean": {}}]) == ""


def test_llcm_table_rows_per_run_and_direction():
    def llcm_run(seed, r1):
        names = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")
        ir2vis = {"trials": [{}] * 10, "mean": dict(zip(names, (r1, 0.6, 0.7, 0.8, 0.3, 0.1))),
                  "std": dict.fromkeys(names, 0.0125)}
        directions = {"ir2vis": ir2vis, "vis2ir": {**ir2vis, "trials": [{}] * 3}}
        return SimpleNamespace(seed=seed, results={"metrics": {"directions": directions}})

    df = tables.llcm_table([llcm_run(0, 0.41234), llcm_run(1, 0.5)], "ci")
    assert list(df.columns) == ["direction", "seed", "trials", "R1", "R5", "R10", "R20", "mAP", "mINP"]
    assert [tuple(r) for r in df[["direction", "seed", "trials"]].to_numpy()] == [
        ("IR→VIS", 0, 10), ("VIS→IR", 0, 3), ("IR→VIS", 1, 10), ("VIS→IR", 1, 3)]
    assert df.iloc[0]["R1"] == "41.23 ± 1.25" and df.iloc[2]["R1"] == "50.00 ± 1.25"   # percent, two decimals
    assert df.iloc[1]["mINP"] == "10.00 ± 1.25"
    assert df.attrs["caption"].startswith("LLCM, ci profile: percent") and "Re-ranked" not in df.attrs["caption"]
    reranked = llcm_run(0, 0.4)
    reranked.results.update(reranked=True, rerank={"k1": 20, "k2": 6, "lambda": 0.3})
    assert "k1 = 20, k2 = 6, λ = 0.3" in tables.llcm_table([reranked], "ci").attrs["caption"]


def test_test_time_contrasts_use_the_two_level_bootstrap_when_identities_are_stored():
    rng = np.random.default_rng(5)
    clean_ids = rng.integers(3, 8, size=(5, 20)) * 10.0                  # Rank-1 per identity, 30–70 %
    runs = seeded("baseline", list(clean_ids.mean(1))) + seeded(
        "occlusion_random_rect", [40, 41, 42, 43, 44], data__occlusion_p=0.5, data__occlusion_types=["random_rect"])
    for run, ids in zip(runs[:5], clean_ids):
        with_identities(run.results, ids)
    evals, stored = [], []
    for s in range(5):
        occluded = np.clip(clean_ids[s] - 30 + rng.integers(-1, 2, 20) * 10, 0, 100)
        stored.append(occluded)
        evals.append({"seed": s, "model": "baseline", "occlusion": "random_rect",
                      "results": with_identities({"mean": {"rank1": occluded.mean() / 100, "mAP": 0.1}}, occluded)})
        evals.append({"seed": s, "model": "occlusion_random_rect", "occlusion": "random_rect",
                      "results": {"mean": {"rank1": (35 + s) / 100, "mAP": 0.2}}})
    # hits / queries per identity, in %: 10 queries each, so the stored values come back exactly
    assert results.identity_rank1(evals[0]["results"]) == pytest.approx(dict(enumerate(stored[0])))
    assert results.identity_rank1({"mean": {"rank1": 0.3}}) is None          # older results: no identities
    family = claims.chapter_family("06_occlusion", runs, evals)
    drop = family.get({("baseline", None): 1.0, ("baseline", "random_rect"): -1.0})
    # the baseline's drop: the same models evaluated twice, resampled over seeds and test identities
    assert drop.method == "bootstrap" and drop.n == 5 and drop.distinguishable and 25 < drop.mean < 35
    assert "two-level bootstrap over 5 training seeds" in drop.unit
    # a gain compares two trained models: paired over training seeds (t-test), no identity data needed
    gain = family.get({("random_rect", "random_rect"): 1.0, ("baseline", "random_rect"): -1.0})
    assert gain.method == "paired"
    # each unit has its own detectable Δ, both stated on the page
    assert drop.detectable == pytest.approx(drop.mdd(0.05 / family.k))
    text = occlusion_tables.occlusion_finding(runs, evals)
    assert "two-level bootstrap over 5 training seeds and the test identities" in text
    assert "more seeds shrink only its training-seed part, the spread between test identities only more test " \
           "identities would" in text
    # the table says which interval each drop has: the baseline's bootstrap, the other model's t (no identities)
    caption = tables.show(occlusion_tables.occlusion_table(runs, evals)).caption
    assert "percentile interval of a two-level bootstrap over the training seeds and the test identities (the " \
           "chapter's test) where per-identity results are stored, else the half-width of the 95 % t-interval" in caption
    h = headline.headline("06_occlusion", runs, evals)
    assert h.method == "bootstrap" and h.diff.startswith(f"{-drop.mean:+.1f} ± ") and h.mdd == f"{drop.detectable:.1f}"
    assert "Unit: " in text and "paired by training seed" in text


def test_one_family_per_chapter_across_table_finding_claims_and_overview():
    import re

    runs = _attention_study()
    family = claims.chapter_family("02_attention", runs)
    cam = family.get({"cam": 1.0, "none": -1.0})
    p = fd.fmt_p(cam.p_adjusted)
    table = tables.attention_table(runs)
    finding = tables.experiment_finding("02_attention", runs)
    h = headline.headline("02_attention", runs)
    claim = next(r for r in claims.claim_results("02_attention", runs) if r.claim.id == "c2.cam_lower")
    # one adjusted p: the table's column, the finding, the family list and the claim line
    assert table.iloc[1][("p (Holm)", "")] == p == fd.fmt_p(claim.diff.p_adjusted)
    assert f"**cam** +10.0 ± 2.5 pp (Holm p = {p};" in finding and f"1. cam vs baseline: +10.0 ± 2.5 pp, Holm p = {p}" in finding
    assert f"Holm p = {p}" in claims.claim_line(claim)
    # one detectable Δ: the finding's power sentence, the family list and the overview's column
    mdd = f"{cam.detectable:.1f}"
    assert h.mdd == mdd and f"{mdd} pp with 80 % power" in finding and f"a difference of {mdd} pp is detectable" in finding
    # the overview's finding: at most three sentences, the claims in their own section
    assert len(re.split(r"(?<=[.)])\s+(?=[A-Z])", h.finding)) <= 3 and "\n- §" not in h.finding
