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
