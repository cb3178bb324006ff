"""Seed statistics, the "not distinguishable" rule and the computed finding (hand-computed cases)."""
import math

import pytest
from scipy import stats

from mace_core.analysis import findings as fd


def test_seed_summary_is_mean_and_sample_std_over_seeds():
    s = fd.summarize_seeds({2: 48.0, 0: 40.0, 1: 44.0})
    assert s.n == 3 and list(s.values) == [0, 1, 2]
    assert s.mean == pytest.approx(44.0) and s.std == pytest.approx(4.0)     # deviations -4, 0, 4; ddof=1
    one = fd.summarize_seeds({0: 40.0})
    assert one.std is None and fd.fmt_value(one) == "40.0"
    assert fd.fmt_value(s) == "44.0 ± 4.0"
    with pytest.raises(ValueError):
        fd.summarize_seeds({})


def test_paired_difference_exceeding_the_noise():
    # per-seed differences 10, 11, 9: mean 10, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.3027
    d = fd.difference({0: 40, 1: 44, 2: 48}, {0: 30, 1: 33, 2: 39})
    assert d.method == "paired" and d.n == 3
    assert d.mean == pytest.approx(10.0)
    assert d.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert d.verdict == fd.HIGHER and d.distinguishable
    assert fd.fmt_difference(d) == "+10.0 ± 2.5"
    assert fd.difference({0: 30, 1: 33, 2: 39}, {0: 40, 1: 44, 2: 48}).verdict == fd.LOWER


def test_difference_within_the_seed_noise_is_not_distinguishable():
    # differences 1, -2, 4: mean 1, sd 3, half-width 4.3027 * 3 / sqrt(3) = 7.45 > 1
    d = fd.difference({0: 31, 1: 31, 2: 43}, {0: 30, 1: 33, 2: 39})
    assert d.mean == pytest.approx(1.0) and d.half_width == pytest.approx(4.302653 * math.sqrt(3), rel=1e-5)
    assert d.verdict == fd.NOT_DISTINGUISHABLE and not d.distinguishable


def test_unmatched_seeds_use_welch():
    # variances 8 (n=2) and 21 (n=3): se^2 = 4 + 7 = 11, df = 11^2 / (4^2/1 + 7^2/2) = 121 / 40.5
    d = fd.difference({0: 40, 1: 44}, {0: 30, 1: 33, 2: 39})
    assert d.method == "welch" and d.mean == pytest.approx(42 - 34)
    assert d.half_width == pytest.approx(stats.t.ppf(0.975, 121 / 40.5) * math.sqrt(11))
    assert d.verdict == fd.NOT_DISTINGUISHABLE          # 8 < 2.36 * 3.32


def test_one_run_gives_no_training_variance_estimate():
    for v, b in (({0: 40}, {0: 30}), ({0: 40}, {0: 30, 1: 31, 2: 32})):
        d = fd.difference(v, b)
        assert d.half_width is None and d.verdict == fd.NO_ESTIMATE and not d.distinguishable
        assert d.mean == pytest.approx(v[0] - sum(b.values()) / len(b))
    assert fd.n_note([1, 1]) == fd.SINGLE_RUN_NOTE + "."
    assert "n = 3" in fd.n_note([3, 3]) and "n = 1–3" in fd.n_note([1, 3])


def _entries(variant_r1, base_r1, thesis_variant, thesis_base=45.59):
    groups = {"baseline": fd.summarize_seeds(dict(enumerate(base_r1))),
              "sam": fd.summarize_seeds(dict(enumerate(variant_r1)))}
    return fd.entries_from(groups, "baseline", {"baseline": thesis_base, "sam": thesis_variant})


def test_finding_names_a_clear_winner_and_a_disagreeing_thesis():
    text = fd.finding(_entries([40, 44, 48], [30, 33, 39], thesis_variant=43.47))
    assert text.startswith("Best: **sam**")
    assert "10.0 pp above the baseline" in text and "exceeds the seed noise" in text
    assert "2.1 pp below" in text and "opposite of the thesis" in text


def test_finding_on_a_noisy_loss_says_not_distinguishable_and_agreeing():
    text = fd.finding(_entries([28, 28, 40], [30, 33, 39], thesis_variant=43.47))
    assert "The baseline (baseline) has the highest" in text and "**sam**" in text
    assert "2.0 pp lower" in text and "not distinguishable" in text
    assert "direction agrees with the thesis" in text


def test_finding_with_one_seed_says_there_is_no_estimate():
    text = fd.finding(_entries([40], [30], thesis_variant=50.0))
    assert fd.SINGLE_RUN_NOTE in text and "direction agrees" in text
    assert "nothing to compare" in fd.finding(_entries([40], [30], 50.0)[:1])


# ---------------------------------------------------------------------------------------------
# Multiplicity (Holm–Bonferroni) and power (minimum detectable difference)

def _with_p(mean, p):
    return fd.Difference(mean, 1.0, 3, "paired", p_value=p, spread=1.0)


def test_holm_adjusts_a_family_by_hand():
    # sorted p: 0.01, 0.03, 0.04 -> × 3, × 2, × 1 = 0.03, 0.06, 0.04 -> running max: 0.03, 0.06, 0.06
    raw = [_with_p(5.0, 0.01), _with_p(4.0, 0.04), _with_p(-4.0, 0.03), None, fd.Difference(2.0, None, 1, "none")]
    out = fd.holm(raw)
    assert [d.p_adjusted for d in out[:3]] == pytest.approx([0.03, 0.06, 0.06])
    assert all(d.family == 3 for d in out[:3]) and out[3] is None and out[4].p_adjusted is None
    # each of the last two would pass alone at 0.05; judged with the family they do not
    assert [d.verdict for d in raw[:3]] == [fd.HIGHER, fd.HIGHER, fd.LOWER]
    assert [d.verdict for d in out[:3]] == [fd.HIGHER, fd.NOT_DISTINGUISHABLE, fd.NOT_DISTINGUISHABLE]
    assert fd.holm([_with_p(1.0, 0.02)])[0].p_adjusted == pytest.approx(0.02)   # k = 1: unchanged


def test_p_value_matches_the_interval_rule_and_scipy():
    # differences 10, 11, 9 (t = 10 / (1/√3) = 17.3, df 2) and 1, -2, 4 (t = 1 / √3 = 0.58)
    win = fd.difference({0: 40, 1: 44, 2: 48}, {0: 30, 1: 33, 2: 39})
    noise = fd.difference({0: 31, 1: 31, 2: 43}, {0: 30, 1: 33, 2: 39})
    assert win.p_value == pytest.approx(stats.ttest_rel([40, 44, 48], [30, 33, 39]).pvalue)
    assert noise.p_value == pytest.approx(stats.ttest_rel([31, 31, 43], [30, 33, 39]).pvalue)
    assert win.p_value < 0.05 < noise.p_value
    welch = fd.difference({0: 40, 1: 44}, {0: 30, 1: 33, 2: 39})
    assert welch.p_value == pytest.approx(stats.ttest_ind([40, 44], [30, 33, 39], equal_var=False).pvalue)
    # Holm over the two paired comparisons: 2 × 0.003317 = 0.006634 and max(0.006634, 0.6220)
    entries = fd.entries_from({"base": fd.summarize_seeds({0: 30, 1: 33, 2: 39}),
                               "a": fd.summarize_seeds({0: 40, 1: 44, 2: 48}),
                               "b": fd.summarize_seeds({0: 31, 1: 31, 2: 43})}, "base", {})
    assert [e.diff.p_adjusted for e in entries[1:]] == pytest.approx([0.0066335, 0.6220355], rel=1e-4)


def _power(d, n):
    """Two-sided one-sample t-test power at effect size d (noncentral t, scipy), α = 0.05."""
    tc = stats.t.ppf(0.975, n - 1)
    nc = d * math.sqrt(n)
    return stats.nct.sf(tc, n - 1, nc) + stats.nct.cdf(-tc, n - 1, nc)


def test_minimum_detectable_difference_by_hand():
    # paired, n = 3: the standardised effect with 80 % power is d = 3.26404 (brentq on the noncentral t
    # power above); with a seed spread of 2 pp the detectable Δ is 6.528 pp
    mdd = fd.minimum_detectable(2.0, 3)
    assert mdd == pytest.approx(3.26404 * 2.0, rel=1e-4)
    assert _power(mdd / 2.0, 3) == pytest.approx(0.8, abs=1e-4)
    # unpaired 3 + 3: d = 3.07089 (noncentral t with df 4, nc = d / √(2/3))
    assert fd.minimum_detectable(1.0, 3, paired=False, n_other=3) == pytest.approx(3.07089, rel=1e-4)
    assert fd.minimum_detectable(1.0, 1) is None and fd.minimum_detectable(1.0, 3, paired=False, n_other=1) is None
    # family: spreads 1 and 3 over 2 df each pool to √((2·1 + 2·9) / 4) = √5
    family = [fd.paired_contrast({0: 1.0, 1: 2.0, 2: 3.0}), fd.paired_contrast({0: 0.0, 1: 3.0, 2: 6.0})]
    assert [d.spread for d in family] == pytest.approx([1.0, 3.0])
    assert fd.family_mdd(family) == pytest.approx(3.26404 * math.sqrt(5), rel=1e-4)
    assert fd.family_mdd(family, alpha=0.025) > fd.family_mdd(family)     # the first Holm step is stricter
    assert fd.family_mdd([None, fd.Difference(1.0, None, 1, "none")]) is None
    # a Welch comparison's spread (pooled group sd) is on another scale: with a paired one present, only
    # the paired spreads are pooled
    welch = fd.difference({0: 40, 1: 44}, {0: 30, 1: 33, 2: 39})      # pooled sd √((1·8 + 2·21) / 3) = √(50/3)
    assert welch.spread == pytest.approx(math.sqrt(50 / 3))
    assert fd.family_mdd(family + [welch]) == pytest.approx(fd.family_mdd(family))
    # unpaired 2 + 3 runs: TTestIndPower's d at nobs1 = 2, ratio 1.5 is 3.88509 (noncentral t, df 3)
    assert fd.family_mdd([welch]) == pytest.approx(3.88509 * math.sqrt(50 / 3), rel=1e-4)


def test_finding_states_the_detectable_difference_and_the_selection():
    groups = {"baseline": fd.summarize_seeds({0: 30, 1: 33, 2: 39}),
              "cam": fd.summarize_seeds({0: 31, 1: 31, 2: 43}),      # differences 1, -2, 4: sd 3
              "sam": fd.summarize_seeds({0: 29, 1: 35, 2: 38})}      # differences -1, 2, -1: sd √3
    text = fd.finding(fd.entries_from(groups, "baseline", {}))
    assert "selected after the fact as the highest of the 2" in text and "Holm-adjusted p" in text
    # pooled spread √((2·9 + 2·3) / 4) = √6 -> 3.26404 · √6 = 8.0 pp
    assert f"{3.26404 * math.sqrt(6):.1f} pp with 80 % power" in text and "smaller than about 8 pp" in text
    assert "With fewer than two training seeds" in fd.power_sentence([fd.Difference(1.0, None, 1, "none")])


def test_claim_verdicts_both_ways():
    up, down = fd.paired_contrast({0: 10, 1: 11, 2: 9}), fd.paired_contrast({0: -10, 1: -11, 2: -9})
    noisy = fd.paired_contrast({0: 1, 1: -2, 2: 4})
    assert fd.claim_verdict("higher", up) == fd.SUPPORTED and fd.claim_verdict("lower", up) == fd.CONTRADICTED
    assert fd.claim_verdict("lower", down) == fd.SUPPORTED and fd.claim_verdict("higher", down) == fd.CONTRADICTED
    assert fd.claim_verdict("higher", noisy) == fd.NOT_DISTINGUISHABLE
    assert fd.claim_verdict("same", up) == fd.CONTRADICTED and fd.claim_verdict("same", noisy) == fd.NOT_DISTINGUISHABLE
    assert fd.claim_verdict("lower", None) == fd.NOT_RUN
    assert fd.claim_verdict("lower", fd.paired_contrast({0: -3.0})) == fd.NO_ESTIMATE
    with pytest.raises(ValueError, match="direction"):
        fd.claim_verdict("better", up)
