"""Seed statistics, the "not distinguishable" rule and the computed finding (hand-computed cases)."""
import math

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import integrate, stats

from mace_core.analysis import findings as fd, power as pw
from mace_core.errors import MaceError


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
    assert text.startswith("Against the baseline (baseline, IR→RGB Rank-1 34.0 ± 4.6 %, n = 3): **sam** +10.0 ± 2.5 pp")
    assert "distinguishable, higher" in text and "p = 0.003" in text
    assert "2.1 pp below" in text and "opposite of the thesis" in text


def test_finding_on_a_noisy_loss_says_not_distinguishable_and_agreeing():
    text = fd.finding(_entries([28, 28, 40], [30, 33, 39], thesis_variant=43.47))
    assert "**sam** -2.0 ± 7.5 pp" in text and "not distinguishable; any effect is probably smaller than" in text
    assert "direction agrees with the thesis" in text and "absent" not in text


def test_finding_with_one_seed_says_in_one_line_that_it_cannot_tell():
    assert fd.finding(_entries([40], [30], thesis_variant=50.0)) == fd.ONE_SEED_PAGE
    assert "cannot tell variants apart" in fd.ONE_SEED_PAGE
    assert "nothing to compare" in fd.finding(_entries([40], [30], 50.0)[:1])


def test_finding_lists_every_comparison_not_only_the_best():
    # fraction-like chapter: two clear losses and one noisy gain against the baseline, all reported
    groups = {"100%": fd.summarize_seeds({0: 40, 1: 42, 2: 44, 3: 41, 4: 43}),
              "10%": fd.summarize_seeds({0: 20, 1: 23, 2: 23, 3: 20, 4: 24}),
              "25%": fd.summarize_seeds({0: 30, 1: 31, 2: 35, 3: 31, 4: 33}),
              "75%": fd.summarize_seeds({0: 41, 1: 45, 2: 43, 3: 40, 4: 46})}
    text = fd.finding(fd.entries_from(groups, "100%", {}), baseline="100 %")
    assert "Holm-adjusted over the 3 comparisons" in text
    assert all(f"**{label}**" in text for label in ("10%", "25%", "75%"))
    assert text.count("distinguishable, lower") == 2 and "**75%** +1.0" in text


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
    # unpaired 3 + 3, Welch: d = 3.5074 (the pooled-variance t-test would need 3.07089: Welch's random df
    # costs power)
    assert fd.minimum_detectable(1.0, 3, paired=False, n_other=3) == pytest.approx(3.5074, rel=1e-3)
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
    # unpaired 2 + 3 runs: Welch's test needs d = 6.4355 (its power integrated over the sample variances,
    # checked against simulated Welch tests in test_welch_power_matches_simulated_welch_tests)
    assert fd.family_mdd([welch]) == pytest.approx(6.4355 * math.sqrt(50 / 3), rel=1e-3)


def test_finding_states_the_detectable_difference_at_the_holm_alpha():
    groups = {"baseline": fd.summarize_seeds({0: 30, 1: 33, 2: 39}),
              "cam": fd.summarize_seeds({0: 31, 1: 31, 2: 43}),      # differences 1, -2, 4: sd 3
              "sam": fd.summarize_seeds({0: 29, 1: 35, 2: 38})}      # differences -1, 2, -1: sd √3
    entries = fd.entries_from(groups, "baseline", {})
    text = fd.finding(entries)
    assert "Holm-adjusted over the 2 comparisons" in text and "Holm p" in text
    # pooled spread √((2·9 + 2·3) / 4) = √6, at α = 0.05 / 2 (the first Holm step): d(3, 0.025) = 4.62482
    mdd = 4.62482 * math.sqrt(6)
    assert entries[1].diff.detectable == pytest.approx(mdd, rel=1e-4) == entries[2].diff.detectable
    assert f"{mdd:.1f} pp with 80 % power" in text and "α = 0.05 / 2" in text
    assert text.count(f"any effect is probably smaller than {mdd:.1f} pp") == 2
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


# ---------------------------------------------------------------------------------------------
# Power against values computed independently of the solver

def _power_by_integration(d, n, alpha):
    """Two-sided one-sample t-test power by direct integration over the sample variance: T = (Z + d√n) /
    √(V / df), V ~ χ²(df); no noncentral t, no root finder."""
    df = n - 1
    tc = stats.t.isf(alpha / 2, df)
    nc = d * math.sqrt(n)

    def given(v):
        bound = tc * math.sqrt(v / df)
        return (stats.norm.sf(bound - nc) + stats.norm.cdf(-bound - nc)) * stats.chi2.pdf(v, df)
    return integrate.quad(given, 0, np.inf, limit=200)[0]


@pytest.mark.parametrize("n", [2, 3, 5, 8])
@pytest.mark.parametrize("k", [1, 3, 4, 15])
def test_paired_detectable_difference_has_80_percent_power_by_integration(n, k):
    alpha = 0.05 / k
    d = fd.minimum_detectable(1.0, n, alpha=alpha)
    assert _power_by_integration(d, n, alpha) == pytest.approx(0.8, abs=1e-6)
    assert _power_by_integration(0.98 * d, n, alpha) < 0.8 < _power_by_integration(1.02 * d, n, alpha)


def test_detectable_difference_at_strict_alpha_matches_the_issue_values():
    # the exact power equation (statsmodels' solve_power stopped early at 10.0, 5.0 and 5.5)
    assert fd.minimum_detectable(1.0, 2, alpha=0.05 / 3) == pytest.approx(34.6, abs=0.05)
    assert fd.minimum_detectable(1.0, 3, alpha=0.05 / 4) == pytest.approx(6.55, abs=0.005)
    assert fd.minimum_detectable(1.0, 3, alpha=0.05 / 15) == pytest.approx(12.7, abs=0.05)
    assert fd.minimum_detectable(1.0, 2, alpha=0.05 / 15) == pytest.approx(173.07, abs=0.01)  # bracket grows to 256
    assert fd.minimum_detectable(2.5, 5) == pytest.approx(2.5 * fd.minimum_detectable(1.0, 5))


def test_detectable_difference_by_monte_carlo_simulation():
    # 200 000 simulated paired experiments at the solved effect reject in 80 % of them (se 0.0009)
    rng = np.random.default_rng(7)
    for n, alpha in ((5, 0.05), (8, 0.05 / 15)):
        d = fd.minimum_detectable(1.0, n, alpha=alpha)
        p = stats.ttest_1samp(rng.normal(d, 1.0, (200_000, n)), 0.0, axis=1).pvalue
        assert np.mean(p < alpha) == pytest.approx(0.8, abs=0.004)


@pytest.mark.parametrize(("n", "m", "alpha"), [(3, 3, 0.05), (2, 3, 0.05), (5, 5, 0.05 / 4), (8, 8, 0.05 / 15)])
def test_welch_power_matches_simulated_welch_tests(n, m, alpha):
    d = fd.minimum_detectable(1.0, n, paired=False, n_other=m, alpha=alpha)
    rng = np.random.default_rng(11)
    x, y = rng.normal(d, 1.0, (200_000, n)), rng.normal(0.0, 1.0, (200_000, m))
    p = stats.ttest_ind(x, y, axis=1, equal_var=False).pvalue
    assert np.mean(p < alpha) == pytest.approx(0.8, abs=0.005)


def test_the_root_finder_raises_instead_of_stopping_silently(monkeypatch):
    with pytest.raises(MaceError, match="not above the test's size"):
        fd.minimum_detectable(1.0, 3, alpha=0.05, power=0.01)
    pw._detectable_effect.cache_clear()
    monkeypatch.setattr(pw, "t_power", lambda *a, **k: 0.5)          # never reaches 80 %
    with pytest.raises(MaceError, match="no effect up to"):
        fd.minimum_detectable(1.0, 4)

    def unconverged(f, a, b, **kw):
        return 1.0, SimpleNamespace(converged=False, flag="maximum iterations")
    monkeypatch.undo()
    pw._detectable_effect.cache_clear()
    monkeypatch.setattr("scipy.optimize.brentq", unconverged)   # power.py imports scipy.optimize where it solves
    with pytest.raises(MaceError, match="did not converge"):
        fd.minimum_detectable(1.0, 6)
    monkeypatch.undo()
    pw._detectable_effect.cache_clear()


# ---------------------------------------------------------------------------------------------
# The three wordings

def test_three_outcomes_worded_exactly_above_and_below_the_detectable_difference():
    # a: differences m − 10, m, m + 10 (sd 10); b: sd 0.1; Holm over 2: the family's detectable Δ pools
    # √((2·100 + 2·0.01) / 4) = 7.0714 at α = 0.025: 4.62482 · 7.0714 = 32.70 pp
    quiet = fd.paired_contrast({0: 0.1, 1: -0.1, 2: 0.0})

    def noisy(m):
        return fd.holm([fd.paired_contrast({0: m - 10, 1: m, 2: m + 10}), quiet])
    below, _ = noisy(20)          # p = 0.148 (Holm), 20 < 32.7
    above, _ = noisy(34)          # p = 0.055 (Holm), 34 ≥ 32.7
    clear, _ = noisy(40)          # p < 0.05
    assert below.detectable == pytest.approx(4.62482 * math.sqrt(50.005), rel=1e-4)
    assert fd.outcome(below) == "not distinguishable; any effect is probably smaller than 32.7 pp"
    assert fd.outcome(above) == "not distinguishable; the study cannot tell (detectable from 32.7 pp)"
    assert fd.outcome(clear) == "distinguishable, higher"
    lower = fd.holm([fd.paired_contrast({0: -50, 1: -40, 2: -30}), quiet])[0]
    assert fd.outcome(lower) == "distinguishable, lower"
    for d in (below, above, clear, lower):
        assert "absent" not in fd.outcome(d) and "absent" not in fd.noise_clause(d)
    assert fd.outcome(fd.paired_contrast({0: 3.0})) == fd.NO_ESTIMATE
    # a detectable Δ beyond the 100 pp a Rank-1 difference can span bounds nothing: the study cannot tell
    assert fd.outcome(below, mdd=235.2) == "not distinguishable; the study cannot tell (detectable from 235.2 pp)"
    # an explicit detectable Δ wins over the family's
    assert fd.outcome(below, mdd=15.0) == "not distinguishable; the study cannot tell (detectable from 15.0 pp)"


# ---------------------------------------------------------------------------------------------
# Test-time conditions: two-level bootstrap over seeds and test identities

def test_two_level_bootstrap_covers_seed_and_identity_variance():
    rng = np.random.default_rng(3)
    seed_effect, id_effect = rng.normal(0, 2.0, 5), rng.normal(0, 6.0, 40)
    per = {s: {f"id{i}": -30 + seed_effect[s] + id_effect[i] for i in range(40)} for s in range(5)}
    d = fd.bootstrap_contrast(per, n_boot=20_000)
    assert d.method == "bootstrap" and d.n == 5
    assert d.mean == pytest.approx(-30 + seed_effect.mean() + id_effect.mean())
    # additive seed + identity effects: the bootstrap variance is var_s / S + var_i / I (ddof 0)
    expected = math.sqrt(seed_effect.var() / 5 + id_effect.var() / 40)
    assert d.spread == pytest.approx(expected, rel=0.05)
    assert d.verdict == fd.LOWER and d.p_value == pytest.approx(1 / 20_000)
    assert d.mdd() == pytest.approx((stats.norm.isf(0.025) + stats.norm.ppf(0.8)) * d.spread)
    assert "two-level bootstrap over 5 training seeds" in d.unit
    # only the seed variance (identities identical): narrower
    flat = fd.bootstrap_contrast({s: {f"id{i}": -30 + seed_effect[s] for i in range(40)} for s in range(5)})
    assert flat.spread < d.spread
    assert fd.bootstrap_contrast({0: {"a": 1.0, "b": 2.0}}).verdict == fd.NO_ESTIMATE
    with pytest.raises(MaceError, match="other test identities"):
        fd.bootstrap_contrast({0: {"a": 1.0}, 1: {"b": 1.0}})
