"""The detectable difference: exact power of the test actually used, solved without stopping silently.

:func:`minimum_detectable` is the smallest true Δ a two-sided test at α detects with probability 0.8:
the exact power of the t-test (:func:`t_power`: the noncentral t for the paired test, the Welch test's
power integrated over its sample variances) solved by ``brentq`` inside a bracket doubled until it
holds the root; every failure (power not above α, no root below 1e7 sd, non-finite power, brentq not
converged) raises a :class:`~mace_core.errors.MaceError` instead of returning a wrong number.
:func:`normal_mdd` is the same for a test with a normal estimate (the bootstrap difference).
Distributions are scipy's (``nct``, ``t``, ``chi2``, ``norm``).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from mace_core.errors import MaceError

ALPHA = 0.05
POWER = 0.8


def t_power(effect: float, n: int, alpha: float = ALPHA, paired: bool = True, n_other: int | None = None) -> float:
    """Power of the two-sided t-test at standardised effect ``effect`` (Δ / sd). Paired: the one-sample
    test on the n per-seed differences, exactly the noncentral t (df = n − 1, noncentrality effect·√n;
    both tails from scipy ``nct.sf`` at ±noncentrality, which stays finite where ``nct.cdf`` does not).
    Unpaired: the Welch test of groups of n and ``n_other`` with equal sd, see :func:`welch_power`."""
    from scipy import stats   # here, not at the top: pages that test nothing skip scipy.stats (~0.5 s per kernel)
    if paired:
        if n < 2:
            raise ValueError(f"a paired t-test needs n >= 2, got {n}")
        df, nc = n - 1, effect * math.sqrt(n)
        tc = float(stats.t.isf(alpha / 2, df))
        return float(stats.nct.sf(tc, df, nc) + stats.nct.sf(tc, df, -nc))
    m = n if n_other is None else n_other
    if n < 2 or m < 2:
        raise ValueError(f"a Welch t-test needs two runs per group, got {n} and {m}")
    return welch_power(effect, n, m, alpha)


_GL_NODES = 64        # Gauss–Legendre nodes per sample variance (agrees with 200 nodes to 1e-5)


def welch_power(effect: float, n: int, m: int, alpha: float = ALPHA) -> float:
    """Power of Welch's two-sided t-test (groups of n and m, equal sd 1, true difference ``effect``).
    Welch's statistic is not noncentral t (its df is itself random), so the power is integrated over
    the two sample variances: given them, the mean difference is normal (sd √(1/n + 1/m)) and the
    test rejects beyond t(1 − α/2, Welch–Satterthwaite df)·se; the chi-square laws of the sample
    variances are integrated by Gauss–Legendre quadrature on their quantile scale (scipy's ``chi2``,
    ``t`` and ``norm``). Agrees with simulated Welch tests (tests/test_findings.py)."""
    from scipy import stats
    x, w = np.polynomial.legendre.leggauss(_GL_NODES)
    u, w = (x + 1) / 2, w / 2
    a = stats.chi2.ppf(u, n - 1)[:, None] / (n - 1) / n          # s1² / n
    b = stats.chi2.ppf(u, m - 1)[None, :] / (m - 1) / m          # s2² / m
    se = np.sqrt(a + b)
    df = (a + b) ** 2 / (a ** 2 / (n - 1) + b ** 2 / (m - 1))
    bound = stats.t.isf(alpha / 2, df) * se
    tau = math.sqrt(1 / n + 1 / m)
    reject = stats.norm.sf((bound - effect) / tau) + stats.norm.cdf((-bound - effect) / tau)
    return float(w @ reject @ w)


def _solve_effect(power_of, power: float, what: str) -> float:
    """The effect with ``power_of(effect) = power``: brentq inside a bracket doubled until it holds the
    root; raises (never returns an unconverged value)."""
    from scipy import optimize
    f = lambda e: power_of(e) - power            # noqa: E731
    lo, hi = 0.0, 1.0
    f_lo = f(lo)
    if not f_lo < 0:
        raise MaceError(f"{what}: the power {power} is not above the test's size", "ask for power > α")
    f_hi = f(hi)
    while f_hi < 0:
        lo, hi = hi, hi * 2
        if hi > 1e7:
            raise MaceError(f"{what}: no effect up to 1e7 sd reaches power {power}", "use more seeds or a larger α")
        f_hi = f(hi)
    if not (math.isfinite(f_hi) and math.isfinite(f(lo))):
        raise MaceError(f"{what}: the power is not finite in [{lo}, {hi}]", "report this case; scipy's nct failed")
    root, info = optimize.brentq(f, lo, hi, xtol=1e-10, rtol=1e-12, maxiter=500, full_output=True, disp=False)
    if not info.converged:
        raise MaceError(f"{what}: brentq did not converge ({info.flag})", "report this case")
    return float(root)


def minimum_detectable(spread: float, n: int, paired: bool = True, n_other: int | None = None,
                       alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest true Δ a two-sided t-test at ``alpha`` detects with probability ``power``, in the
    units of ``spread``: paired, ``spread`` is the sd of the per-seed differences over n pairs;
    unpaired (Welch), the pooled sd of two groups of n and ``n_other`` runs. The exact power
    (:func:`t_power`) solved by a bracketing root finder. None with too few runs for a t-test."""
    n_other = n if n_other is None else n_other
    if n < 2 or (not paired and n_other < 2):
        return None
    return _detectable_effect(n, n_other if not paired else None, float(alpha), float(power)) * float(spread)


@functools.lru_cache(maxsize=256)
def _detectable_effect(n: int, n_other: int | None, alpha: float, power: float) -> float:
    paired = n_other is None
    what = f"detectable difference ({'paired' if paired else 'Welch'}, n = {n}, α = {alpha:.4g})"
    return _solve_effect(lambda e: t_power(e, n, alpha, paired, n_other), power, what)


def normal_mdd(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The Δ a two-sided test with normal estimate of standard error ``se`` detects with ``power``:
    (z(1 − α/2) + z(power)) · se (the bootstrap difference's test)."""
    from scipy import stats
    return float((stats.norm.isf(alpha / 2) + stats.norm.ppf(power)) * se)
