"""Student's t statistics over seeds for `clapsweep report`, with the standard library only.

The t distribution's CDF is the regularized incomplete beta function (continued fraction,
Numerical Recipes §6.4); its quantile is found by bisection. Used for the 95 % confidence
interval of a mean over seeds (t-interval, n - 1 degrees of freedom) and for the paired
t-test of student against teacher over seeds (two-sided). No scipy: it is no dependency of
clapsweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL = 0.95  # the confidence level of every interval the report shows


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); else use symmetry.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) by the modified Lentz method."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = t_two_sided(t, df) / 2.0
    return 1.0 - tail if t > 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q (0 < q < 1), by bisection to double precision."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile {q} is not in (0, 1)")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    alpha = 2.0 * (1.0 - q)  # the two-sided tail beyond t
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) > alpha:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_two_sided(mid, df) > alpha else (lo, mid)
    return (lo + hi) / 2.0


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (n - 1; None for fewer than two values)."""
    if not values:
        return None, None
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def ci_half_width(values: list[float], level: float = LEVEL) -> float | None:
    """Half the width of the t-interval of the mean: t_{(1+level)/2, n-1} * s / sqrt(n)."""
    _, std = mean_std(values)
    if std is None:
        return None
    n = len(values)
    return t_quantile((1.0 + level) / 2.0, n - 1) * std / math.sqrt(n)


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of differences (student - teacher, one per seed)."""

    n: int
    mean: float
    half_width: float | None  # of the 95 % CI of the mean difference; None for n < 2
    t: float | None
    p: float | None  # two-sided; None for n < 2 or when every difference is 0

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


def paired_test(differences: list[float], level: float = LEVEL) -> PairedTest | None:
    """The paired t-test of `differences` against 0 (None when there are none)."""
    mean, std = mean_std(differences)
    if mean is None:
        return None
    n = len(differences)
    if std is None:
        return PairedTest(n, mean, None, None, None)
    half = ci_half_width(differences, level)
    if std == 0.0:  # every seed moved by exactly the same amount
        t = None if mean == 0.0 else math.copysign(math.inf, mean)
        return PairedTest(n, mean, half, t, None if t is None else 0.0)
    t = mean / (std / math.sqrt(n))
    return PairedTest(n, mean, half, t, t_two_sided(t, n - 1))
