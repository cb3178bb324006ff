"""benchmarks/occlusion_drop_variance.py: the split of an occlusion drop's noise, on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from _bench_helpers import load_benchmark

odv = load_benchmark("occlusion_drop_variance")
ALPHAS = {"a": 0.05}


def drops_of(per_query) -> np.ndarray:
    """One seed, one draw, one trial: ``(1, 1, 1, Q)``."""
    return np.asarray(per_query, float)[None, None, None, :]


def test_query_sampling_alone_leaves_nothing_to_the_identities():
    # identity 1: drops 1, 0; identity 2: 0, 0. Identity means 0.5, 0: var 0.125. Within: 0.5 and 0,
    # mean 0.25, over 2 queries 0.125: all of it is query sampling.
    r = odv.decompose(drops_of([1, 0, 0, 0]), np.array([1, 1, 2, 2]), 3.0, ALPHAS)
    assert r["mean_drop"] == pytest.approx(25.0)
    assert r["sd_identity_means"] == pytest.approx(100 * np.sqrt(0.125))
    assert r["sampling_part"] == pytest.approx(100 * np.sqrt(0.125))
    assert r["sd_identities_themselves"] == 0.0
    assert r["se_mean_drop"] == pytest.approx(100 * np.sqrt(0.125 / 2))


def test_consistent_identities_are_all_identity_variance():
    # identity 1 always loses its queries, identity 2 never: means 1, 0, var 0.5, no within part
    r = odv.decompose(drops_of([1, 1, 0, 0]), np.array([1, 1, 2, 2]), 3.0, ALPHAS)
    assert r["sampling_part"] == 0.0
    assert r["sd_identities_themselves"] == pytest.approx(100 * np.sqrt(0.5))


def test_draws_and_seeds_are_averaged_before_the_identities():
    # two seeds x two draws: query 0 of identity 1 drops in half of them, the rest as before
    d = np.zeros((2, 2, 1, 4))
    d[0, 0, 0, 0] = d[1, 1, 0, 0] = 1
    d[:, :, :, 1] = 1
    r = odv.decompose(d, np.array([1, 1, 2, 2]), 3.0, ALPHAS)
    assert r["mean_drop"] == pytest.approx(100 * (0.5 + 1) / 4)
    assert r["per_seed_drop"] == pytest.approx([50.0, 25.0])   # draw 0 only: what the study evaluates
    assert r["sd_per_seed_drop"] == pytest.approx(100 * np.std([0.5, 0.25], ddof=1))
    assert r["sd_queries_within_identity"] == pytest.approx(100 * np.sqrt(np.mean([np.var([0.5, 1], ddof=1), 0])))


def test_identities_needed_matches_the_normal_formula():
    # (z(0.975) + z(0.8)) * 0.2 / 0.03 = 2.801585 * 6.6667 = 18.677, squared 348.8
    assert odv.identities_needed(0.2, 0.03, 0.05) == 349
    assert odv.identities_needed(0.2, 0.06, 0.05) == 88        # half the target: a quarter of the people
    with pytest.raises(ValueError):
        odv.identities_needed(0.2, 0.0, 0.05)


def test_bad_shapes_and_single_query_identities_are_refused():
    with pytest.raises(ValueError, match="seeds, draws, trials, queries"):
        odv.decompose(np.zeros((2, 4)), np.array([1, 1, 2, 2]), 3.0, ALPHAS)
    with pytest.raises(ValueError, match="at least two queries"):
        odv.decompose(drops_of([1, 0, 1]), np.array([1, 1, 2]), 3.0, ALPHAS)
