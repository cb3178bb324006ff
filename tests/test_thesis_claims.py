"""The thesis's claims: listed once with their sections, tested in the thesis's direction on our numbers."""
from pathlib import Path

import pytest
from _tables_helpers import seeded

from mace_core.analysis import claims, findings as fd, occlusion_tables, tables, thesis_claims as tc

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_every_experiment_chapter_lists_its_claims_with_sections():
    for experiment in ("01_backbones", "02_attention", "03_fusion", "04_multi_query", "05_data_efficiency",
                       "06_occlusion"):
        listed = tc.claims_for(experiment)
        assert len(listed) >= 3, experiment
        assert all(c.section.startswith("3.") for c in listed)
    assert len({c.id for c in tc.CLAIMS}) == len(tc.CLAIMS)
    for c in tc.CLAIMS:
        assert bool(c.contrast) != bool(c.untestable), c.id            # a test, or the reason there is none
        assert c.direction in fd.DIRECTIONS


def test_thesis_deltas_by_hand_and_in_the_claimed_direction():
    by_id = {c.id: c for c in tc.CLAIMS}
    assert tc.thesis_delta(by_id["c6.clean_random_rect"]) == pytest.approx(52.35 - 44.65)            # +7.70
    assert tc.thesis_delta(by_id["c6.clean_horizontal_band"]) == pytest.approx(49.25 - 44.65)        # +4.60
    assert tc.thesis_delta(by_id["c6.upper_vs_lower"]) == pytest.approx(19.59 - 23.85)               # -4.26
    assert tc.thesis_delta(by_id["c6.gap_random_rect"]) == pytest.approx((52.35 - 40.36) - (44.65 - 16.55))
    assert tc.thesis_delta(by_id["c4.five_captures_most"]) == pytest.approx(62.19 - 2 * 60.10 + 45.59)  # -12.42
    assert tc.thesis_delta(by_id["c5.last_quarter"]) == pytest.approx(45.6 - 2 * 38.0 + 31.6)       # +1.2
    assert tc.thesis_delta(by_id["c1.tresnet_below_efficientnet"]) == pytest.approx(27.71 - 36.84)
    assert tc.thesis_delta(by_id["c0.level"]) is None
    # each directional claim has the sign of the thesis's own numbers; "same" claims are small there
    for c in tc.CLAIMS:
        td = tc.thesis_delta(c)
        if td is None:
            continue
        if c.direction == tc.SAME:
            assert abs(td) < 1.0, c.id
        else:
            assert (td > 0) == (c.direction == tc.HIGHER), c.id


def _occlusion_fixture():
    """Baseline and two occlusion-trained models, three seeds, four conditions (Rank-1 in %)."""
    runs = (seeded("baseline", [42, 44, 41])
            + seeded("occlusion_random_rect", [24, 25, 24], data__occlusion_p=0.5, data__occlusion_types=["random_rect"])
            + seeded("occlusion_horizontal_band", [43, 40, 45], data__occlusion_p=0.5,
                     data__occlusion_types=["horizontal_band"]))
    evals = []
    for s, (up, low) in enumerate(zip([30, 33, 29], [20, 22, 20])):
        evals += [{"seed": s, "model": "baseline", "occlusion": "upper_body", "results": {"R1": up / 100, "mAP": 0.2}},
                  {"seed": s, "model": "baseline", "occlusion": "lower_body", "results": {"R1": low / 100, "mAP": 0.1}}]
    return runs, evals


def test_occlusion_claims_report_costs_and_contradictions_as_well_as_gains():
    runs, evals = _occlusion_fixture()
    results = {r.claim.id: r for r in claims.claim_results("06_occlusion", runs, evals)}
    # per-seed contrasts and their paired t-tests (scipy ttest_rel):
    #   drop_upper   upper − clean      -12, -11, -12  p = 0.000815
    #   drop_lower   lower − clean      -22, -22, -21  p = 0.000237
    #   upper_vs_lower upper − lower    +10, +11,  +9  p = 0.003317
    #   clean_random_rect  rect − base  -18, -19, -17  p = 0.001027
    #   clean_horizontal_band           +1,  -4,  +4   p = 0.899496
    # Holm over these 5: 0.000237·5 = 0.001183; 0.000815·4 = 0.003261; max(0.001027·3, 0.003261) = 0.003261;
    #   0.003317·2 = 0.006634; 0.899496·1
    expected = {"c6.drop_upper_body": (fd.SUPPORTED, 0.003261), "c6.drop_lower_body": (fd.SUPPORTED, 0.001183),
                "c6.upper_vs_lower": (fd.CONTRADICTED, 0.006634), "c6.clean_random_rect": (fd.CONTRADICTED, 0.003261),
                "c6.clean_horizontal_band": (fd.NOT_DISTINGUISHABLE, 0.899496)}
    for cid, (verdict, p) in expected.items():
        assert results[cid].verdict == verdict, cid
        assert results[cid].diff.p_adjusted == pytest.approx(p, rel=1e-3) and results[cid].diff.family == 5
    assert results["c6.upper_vs_lower"].diff.mean == pytest.approx(10.0)
    assert results["c6.drop_random_rect"].verdict == fd.NOT_RUN and results["c6.gap_random_rect"].diff is None

    text = occlusion_tables.occlusion_finding(runs, evals)
    lines = [line for line in text.splitlines() if line.startswith("- §")]
    assert len(lines) == len(tc.claims_for("06_occlusion"))
    upper = next(line for line in lines if "Upper-body occlusion hurts more" in line)
    assert "thesis -4.3 pp" in upper and "ours +10.0 ± 2.5 pp" in upper and "**contradicted**" in upper
    clean = next(line for line in lines if "random rectangle occlusion raises clean" in line)
    assert "thesis +7.7 pp" in clean and "ours -18.0" in clean and "**contradicted**" in clean
    band = next(line for line in lines if "horizontal band occlusion raises clean" in line)
    # differences 1, -4, 4: sd √(32.667 / 2) = 4.041; the family's five contrasts (sds 0.577, 0.577, 1, 1,
    # 4.041) pool to √(19 / 5) = 1.949, detectable at α = 0.05 / 5 with 80 % power: d(3, 0.01) · 1.949
    mdd = fd.minimum_detectable((19 / 5) ** 0.5, 3, alpha=0.01)
    assert f"{mdd:.1f}" == "14.3"
    assert "**not distinguishable**: any effect is probably smaller than 14.3 pp" in band and "absent" not in text
    assert "Holm–Bonferroni over the chapter's family of 5" in text


def test_claims_of_a_training_chapter_and_the_same_direction():
    runs = (seeded("concat", [30, 33, 39]) + seeded("adaptive", [20, 23, 29], model__fusion="adaptive")
            + seeded("transform", [40, 44, 48], model__fusion="transform"))
    results = {r.claim.id: r for r in claims.claim_results("03_fusion", runs)}
    assert results["c3.adaptive_lower"].verdict == fd.SUPPORTED           # -10 at every seed: zero spread
    assert results["c3.transform_lower"].verdict == fd.CONTRADICTED        # +10, +11, +9
    assert results["c3.fusions_same"].verdict == fd.CONTRADICTED           # transform − adaptive: +20, +21, +19
    text = tables.experiment_finding("03_fusion", runs)
    assert text.count("\n- §3.6.3") == 3 and "Power: with n = 3 seeds" in text
    assert "\n- §" not in tables.experiment_finding("03_fusion", runs, with_claims=False)


def test_methods_page_holds_the_current_claims_table():
    text = (BOOK / "methods.md").read_text()
    assert tc.claims_markdown() in text, "regenerate the table with thesis_claims.claims_markdown()"
    assert "(thesis-claims)=" in text
