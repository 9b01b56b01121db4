"""The speed verdict's statistics: paired rounds in, pass/fail/inconclusive out.

Pure functions of timings, with the clock injected, so every rule here is
tested with synthetic timing sequences (drift, outliers, two modes, a step)
and never with the wall clock.

The design, in words:

* One *round* times a block of reference calls and a block of candidate
  calls back to back; rounds alternate which side goes first, so a slow drift
  of the machine's speed adds to one side in even rounds and to the other in
  odd rounds and cancels out.
* Each round gives one sample, the log of the speedup measured in that round,
  ``log(reference_time / candidate_time)``. Taking the ratio inside a round
  cancels whatever the machine did to both sides at once (another process,
  frequency scaling, a step change).
* The samples' 20% trimmed mean and its Yuen confidence interval (a
  t-interval on the winsorized spread) give the estimate and the interval;
  trimming makes a few rounds hit by a preemption unable to move the verdict.
  Rounds are not independent (a machine state can last several rounds), so
  the winsorized variance is inflated by the series' autocorrelation
  (Newey-West with an AR(1) plug-in bandwidth, floored by the AR(1) factor)
  and the degrees of freedom shrink to match.
* Pass when the whole interval lies above ``log(min_speedup)``, fail when it
  lies below; otherwise measure more. The interval is looked at on a sparse
  schedule (4, 5, 7, 9, 12, 15, 19, ... rounds: about 25% more each time), so
  the chance that repeated looks fool a 99.9% interval stays small: at most
  ``looks * (1 - confidence) / 2`` per side, under 2% even for a candidate
  whose true speedup sits exactly on ``min_speedup`` (with independent
  rounds; in synthetic rounds whose ratios follow an AR(1) process with
  correlation 0.5 / 0.9, 3% / 7% of such candidates passed, against
  20% / 51% before the autocorrelation correction;
  bench/bench_speed_threshold.py, bench/RESULTS.md).
* The interval is widened by a fixed 2% on each side for systematic error
  that no number of rounds averages away (``SYSTEMATIC``).
* No verdict before ``MIN_ROUNDS`` usable rounds (rounds with a zero time
  do not count). Still straddling when the time budget is spent:
  inconclusive.
* Without a ``min_speedup`` (None) nothing is asserted: the rounds go on
  until the interval, before the systematic widening, is within
  ``MEASURE_PRECISION`` of the estimate on each side, or the budget is
  spent, and the verdict is ``measured`` either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

#: Fraction cut from each end before averaging the per-round log speedups.
TRIM = 0.2
#: Rounds before the first look at the interval.
MIN_ROUNDS = 4
#: Hard cap so that a clock that does not advance cannot loop forever.
MAX_ROUNDS = 100_000
#: Systematic error allowed for on each side of the log-speedup interval:
#: two instances of the *same* function, timed against each other in fresh
#: runs on the 2-core development machine, gave speedups from 0.986x to
#: 1.028x (12 runs each of three sizes, bench/RESULTS.md), so tight and so
#: far from 1.0 that a 99.9% interval excluded 1.0 in most runs. Such an
#: offset (memory layout, code placement) is fixed within a run and no
#: number of rounds averages it away; a difference smaller than this is
#: never called.
SYSTEMATIC = math.log(1.02)

#: Half-width (log scale) at which a measurement without ``min_speedup``
#: stops early: the statistical interval within about 10% of the estimate.
MEASURE_PRECISION = math.log(1.1)

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
#: The verdict of a comparison that is measured, not asserted (``min_speedup=None``).
MEASURED = "measured"


# ------------------------------------------------------------ t quantiles


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@lru_cache(maxsize=512)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (p > 0.5).

    >>> round(t_quantile(0.975, 10), 3)
    2.228
    """
    if not 0.5 < p < 1.0:
        raise ValueError(f"t_quantile needs 0.5 < p < 1, got {p}")
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ------------------------------------------------------------ the interval


@dataclass(frozen=True)
class Interval:
    """An estimate of the log speedup and its confidence interval."""

    estimate: float
    low: float
    high: float
    samples: int
    #: Variance inflation for autocorrelated rounds (1: none found).
    autocorrelation: float = 1.0

    @property
    def speedup(self) -> float:
        return math.exp(self.estimate)

    @property
    def speedup_low(self) -> float:
        return math.exp(self.low)

    @property
    def speedup_high(self) -> float:
        return math.exp(self.high)


def trimmed_interval(values: Sequence[float], confidence: float, trim: float = TRIM) -> Interval:
    """Yuen's interval for the trimmed mean of ``values``.

    Cuts ``floor(trim * n)`` values from each end for the mean, winsorizes
    them for the spread, and uses Student's t with ``h - 1`` degrees of
    freedom where ``h`` values remain.

    >>> iv = trimmed_interval([0.1] * 5 + [5.0], confidence=0.99)
    >>> round(iv.estimate, 3)  # the 5.0 is trimmed away
    0.1
    """
    n = len(values)
    if n < 2:
        raise ValueError(f"an interval needs at least 2 values, got {n}")
    ordered = sorted(values)
    g = math.floor(trim * n)
    h = n - 2 * g
    if h < 2:
        g = (n - 2) // 2
        h = n - 2 * g
    kept = ordered[g : n - g]
    mean = sum(kept) / h
    winsorized = [ordered[g]] * g + kept + [ordered[n - g - 1]] * g
    wmean = sum(winsorized) / n
    wvar = sum((v - wmean) ** 2 for v in winsorized) / (n - 1)
    # Rounds measured one after another are not independent: a machine
    # state that lasts several rounds (frequency, cache, allocator, another
    # process) moves neighbouring ratios together, and the plain winsorized
    # variance then understates the mean's uncertainty. Inflate it by the
    # autocorrelation of the winsorized series, in measurement order, and
    # shrink the degrees of freedom to match.
    low, high = ordered[g], ordered[n - g - 1]
    factor = autocorrelation_factor([min(max(v, low), high) for v in values])
    se = math.sqrt(factor * (n - 1) * wvar / (h * (h - 1)))
    half = t_quantile(0.5 + confidence / 2.0, max(1.0, (h - 1) / factor)) * se
    return Interval(mean, mean - half, mean + half, n, factor)


def autocorrelation_factor(series: Sequence[float]) -> float:
    """How much autocorrelation inflates the variance of the mean of ``series`` (>= 1).

    The Newey-West long-run variance (Bartlett weights) over the variance,
    with Andrews' AR(1) plug-in bandwidth: more lags the more the rounds
    are correlated. Negative correlation (neighbouring rounds that cancel,
    as alternating order can give) is never used to *narrow* the interval.

    >>> autocorrelation_factor([0.0, 1.0] * 10)  # alternating: no inflation
    1.0
    >>> autocorrelation_factor([0.0] * 10 + [1.0] * 10) > 5  # a level shift: a lot
    True
    """
    import numpy as np

    n = len(series)
    if n < 3:
        return 1.0
    dev = np.asarray(series, dtype=np.float64)
    dev = dev - dev.mean()
    gamma0 = float(dev @ dev) / n
    if not gamma0 > 0:
        return 1.0

    def gamma(k: int) -> float:
        return float(dev[: n - k] @ dev[k:]) / n

    rho = gamma(1) / gamma0
    if rho <= 0:
        return 1.0
    # The lag-1 estimate is biased low in short series (Kendall: by about
    # (1 + 4 rho) / n); correct it, since an underestimate means a false pass.
    rho = min(rho + (1 + 4 * rho) / n, 0.97)
    alpha = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    lags = max(1, min(n - 1, int(1.1447 * (alpha * n) ** (1 / 3))))
    if lags <= 32:
        covariances = np.array([gamma(k) for k in range(1, lags + 1)])
    else:  # all lags at once: O(n log n), where lag by lag is O(n * lags)
        size = 1 << (2 * n - 1).bit_length()
        spectrum = np.fft.rfft(dev, size)
        covariances = np.fft.irfft(spectrum * np.conj(spectrum), size)[1 : lags + 1] / n
    weights = 1 - np.arange(1, lags + 1) / (lags + 1)
    long_run = gamma0 + 2 * float(weights @ covariances)
    # Bartlett weights and a finite bandwidth understate a slowly decaying
    # correlation; the AR(1) model's own factor is a floor.
    return max(1.0, long_run / gamma0, (1 + rho) / (1 - rho))


def decide(interval: Interval, min_speedup: float) -> str:
    """PASS when the interval lies above ``min_speedup``, FAIL below, else INCONCLUSIVE."""
    threshold = math.log(min_speedup)
    if interval.low > threshold:
        return PASS
    if interval.high < threshold:
        return FAIL
    return INCONCLUSIVE


def look_schedule(limit: int = MAX_ROUNDS) -> list[int]:
    """Round counts at which the interval is examined: 4, 5, 7, 9, 12, 15, 19, ..."""
    out = [MIN_ROUNDS]
    while out[-1] < limit:
        out.append(max(out[-1] + 1, math.ceil(out[-1] * 1.25)))
    return out


# ------------------------------------------------------------ the sequence


#: ``measure_round(reference_first)`` -> (reference seconds per call,
#: candidate seconds per call) for one round.
MeasureRound = Callable[[bool], "tuple[float, float]"]


@dataclass
class Measurement:
    """Everything one sequential verdict measured (times are per call, in seconds)."""

    verdict: str
    interval: Interval | None
    reference: list[float] = field(default_factory=list)
    candidate: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    looks: int = 0

    @property
    def rounds(self) -> int:
        return len(self.reference)


def log_speedups(reference: Sequence[float], candidate: Sequence[float]) -> list[float]:
    """Per-round ``log(reference / candidate)``; rounds with a zero time are dropped."""
    return [
        math.log(r / c) for r, c in zip(reference, candidate, strict=True) if r > 0 and c > 0
    ]


def run_sequential(
    measure_round: MeasureRound,
    *,
    min_speedup: float | None,
    confidence: float,
    budget: float,
    clock: Callable[[], float],
    max_rounds: int = MAX_ROUNDS,
    systematic: float = SYSTEMATIC,
) -> Measurement:
    """Measure rounds until the interval decides or ``budget`` seconds pass.

    The interval is the statistical one widened by ``systematic`` on each
    side (log scale), see :data:`SYSTEMATIC`.

    ``clock`` is injected (``time.perf_counter`` in real use) so tests can
    replay synthetic timings deterministically. Round ``i`` puts the
    reference first when ``i`` is even. ``min_speedup=None`` measures
    without deciding: see :data:`MEASURE_PRECISION`.
    """
    __tracebackhide__ = True  # a crash in measure_round shows the user's frames, not ours
    looks = set(look_schedule(max_rounds))
    result = Measurement(verdict=INCONCLUSIVE, interval=None)
    start = clock()
    for i in range(max_rounds):
        ref, cand = measure_round(i % 2 == 0)
        result.reference.append(ref)
        result.candidate.append(cand)
        n = i + 1
        out_of_time = clock() - start >= budget
        if n in looks or out_of_time or n == max_rounds:
            samples = log_speedups(result.reference, result.candidate)
            if len(samples) >= 2:
                iv = trimmed_interval(samples, confidence)
                result.interval = Interval(
                    iv.estimate, iv.low - systematic, iv.high + systematic, iv.samples,
                    iv.autocorrelation,
                )  # fmt: skip
                result.looks += 1
                if len(samples) >= MIN_ROUNDS:
                    if min_speedup is not None:
                        result.verdict = decide(result.interval, min_speedup)
                    elif (iv.high - iv.low) / 2 <= MEASURE_PRECISION:
                        result.verdict = MEASURED
            if result.verdict != INCONCLUSIVE or out_of_time:
                break
    if min_speedup is None:
        result.verdict = MEASURED  # nothing asserted: precise or not, it was measured
    result.elapsed = clock() - start
    return result
