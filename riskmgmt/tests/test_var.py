"""VaR, ES and the backtest (riskmgmt.var) against independent calculations: closed forms via SciPy, plain NumPy.

Pure maths: no database. SciPy is a test dependency only; riskmgmt.var does not import it.
"""

import json
import math

import numpy as np
import pytest
from scipy.special import xlogy
from scipy.stats import chi2, norm

from portal.errors import DomainError
from riskmgmt.var import (
    VarInputError,
    VarInputs,
    historical_var,
    kupiec_pof,
    log_returns,
    monte_carlo_var,
    parametric_var,
    value_at_risk,
    var_backtest,
)


def correlated_returns(days, vols, correlation, *, seed, means=0.0):
    """Normal daily log-returns with the given vols and one pairwise correlation."""
    vols = np.asarray(vols, dtype=float)
    size = vols.size
    corr = np.full((size, size), correlation) + (1 - correlation) * np.eye(size)
    covariance = corr * np.outer(vols, vols)
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(np.broadcast_to(means, size), covariance, size=days)


def plain_historical(exposures, returns, confidence, horizon):
    """The obvious computation: every overlapping horizon sum, revalued, np.quantile, tail mean."""
    sums = np.array([returns[t : t + horizon].sum(axis=0) for t in range(len(returns) - horizon + 1)])
    losses = -((np.exp(sums) - 1) @ exposures)
    var = np.quantile(losses, confidence)
    return var, losses[losses >= var].mean(), losses


# --------------------------------------------------------------------------- historical


def test_historical_var_of_a_loss_ladder_is_the_interpolated_quantile_and_es_the_tail_mean():
    # Exposure 1,000 and returns log(1 - k/1000): the scenario losses are exactly 1, 2, ..., 100.
    losses = np.arange(1, 101)
    returns = np.log(1 - losses / 1000)[::-1]

    at_99 = historical_var(exposures=[1000.0], returns=returns, confidence=0.99)
    at_95 = historical_var(exposures=[1000.0], returns=returns, confidence=0.95)

    assert at_99.var == pytest.approx(99.01, abs=1e-9)  # 99 + 0.01 × (100 - 99), linear interpolation
    assert at_99.es == pytest.approx(100.0, abs=1e-9)  # the only loss >= 99.01
    assert at_95.var == pytest.approx(95.05, abs=1e-9)
    assert at_95.es == pytest.approx(98.0, abs=1e-9)  # mean of 96..100
    assert at_99.scenarios == 100 and sum(at_99.histogram_counts) == 100
    assert at_99.histogram_edges[0] == pytest.approx(-100.0) and at_99.histogram_edges[-1] == pytest.approx(-1.0)


# Up to 16 days the sums are shifted adds, beyond a cumulative sum: 17 and 60 take the second path.
@pytest.mark.parametrize(
    ("confidence", "horizon"), [(0.99, 1), (0.95, 1), (0.99, 10), (0.95, 5), (0.99, 17), (0.95, 60)]
)
def test_historical_var_and_es_equal_plain_numpy_over_the_lookback_overlapping_horizon_sums(confidence, horizon):
    returns = correlated_returns(300, [0.02, 0.03, 0.01, 0.04], 0.4, seed=11)
    exposures = np.array([250_000.0, -120_000.0, 80_000.0, 40_000.0])

    result = historical_var(
        exposures=exposures, returns=returns, confidence=confidence, horizon_days=horizon, lookback_days=250
    )

    var, es, losses = plain_historical(exposures, returns[-250:], confidence, horizon)
    assert result.var == pytest.approx(var, rel=1e-12)
    assert result.es == pytest.approx(es, rel=1e-12)
    assert result.scenarios == len(losses) == 250 - horizon + 1
    assert result.es >= result.var > 0
    counts, edges = np.histogram(-losses, bins=50)
    assert list(result.histogram_counts) == counts.tolist()
    assert result.histogram_edges == pytest.approx(edges, rel=1e-12)


def test_prices_that_never_moved_give_zero_var_by_every_method_with_every_scenario_in_the_middle_bin():
    flat = {"exposures": [5_000.0, -2_000.0], "returns": np.zeros((30, 2)), "confidence": 0.99}

    historical = historical_var(**flat)
    simulated = monte_carlo_var(**flat, paths=20_000)  # a zero covariance: the factor has no column

    for result in (historical, simulated):
        assert (result.var, result.es, result.pnl_std) == (0.0, 0.0, 0.0)
        assert list(result.histogram_counts) == np.histogram(np.zeros(result.scenarios), bins=50)[0].tolist()
        assert result.histogram_counts[25] == result.scenarios and result.histogram_edges[0] == -0.5
    assert (parametric_var(**flat).var, parametric_var(**flat).es) == (0.0, 0.0)


# --------------------------------------------------------------------------- parametric


def test_parametric_var_and_es_of_alternating_returns_match_the_hand_computed_numbers():
    # +1.2 %, -0.8 % alternating for 40 days: mean 0.2 %, sample std 1 % × sqrt(40/39).
    returns = np.tile([0.012, -0.008], 20)

    one_day = parametric_var(exposures=[100_000.0], returns=returns, confidence=0.99)
    ten_day = parametric_var(exposures=[100_000.0], returns=returns, confidence=0.99, horizon_days=10)

    sigma = 0.01 * math.sqrt(40 / 39) * 100_000
    assert one_day.var == pytest.approx(2.3263478740408408 * sigma - 200, rel=1e-12)
    assert one_day.var == pytest.approx(2155.984073572554, rel=1e-12)
    assert one_day.es == pytest.approx(2499.1673626554016, rel=1e-12)
    assert ten_day.var == pytest.approx(5450.275803570986, rel=1e-12)  # sqrt(10) × z σ − 10 × mean
    assert one_day.pnl_mean == pytest.approx(200.0) and one_day.scenarios == 0 and one_day.histogram_counts == ()


@pytest.mark.parametrize(("confidence", "horizon"), [(0.99, 1), (0.95, 1), (0.99, 10), (0.95, 20)])
def test_parametric_var_and_es_equal_the_delta_normal_closed_form_with_scipy(confidence, horizon):
    returns = correlated_returns(500, [0.02, 0.035, 0.01], 0.3, seed=7, means=[0.002, -0.001, 0.0005])
    exposures = np.array([1_000_000.0, -300_000.0, 500_000.0])

    result = parametric_var(
        exposures=exposures, returns=returns, confidence=confidence, horizon_days=horizon, lookback_days=400
    )

    window = returns[-400:]
    mean = horizon * window.mean(axis=0) @ exposures
    sigma = math.sqrt(horizon * exposures @ np.cov(window, rowvar=False) @ exposures)
    z = norm.ppf(confidence)
    assert result.var == pytest.approx(z * sigma - mean, rel=1e-10)
    assert result.es == pytest.approx(norm.pdf(z) / (1 - confidence) * sigma - mean, rel=1e-10)
    assert result.pnl_std == pytest.approx(sigma, rel=1e-10)


# --------------------------------------------------------------------------- Monte Carlo


def test_monte_carlo_var_and_es_of_one_position_match_the_lognormal_closed_form():
    # One long position: the loss e(1 - exp(r)) falls as r rises, so the VaR is the loss at the
    # (1 - c) quantile of r ~ N(m, s²), and the ES has a closed form:
    # ES = e (1 - exp(m + s²/2) Φ(-z - s) / (1 - c)).
    returns = correlated_returns(500, [0.03], 0.0, seed=3, means=0.001)
    exposure, confidence, horizon = 1_000_000.0, 0.99, 10

    result = monte_carlo_var(
        exposures=[exposure], returns=returns, confidence=confidence, horizon_days=horizon, paths=1_000_000, seed=42
    )

    m, s = horizon * returns.mean(), math.sqrt(horizon) * returns.std(ddof=1)
    z = norm.ppf(confidence)
    var = exposure * (1 - math.exp(m - z * s))
    es = exposure * (1 - math.exp(m + s * s / 2) * norm.cdf(-z - s) / (1 - confidence))
    # At 1M paths the standard error of the 99 % quantile is sqrt(c(1-c)/N) / φ(z) ≈ 0.0037 s,
    # 0.16 % of this VaR; of the ES about 0.25 %. 1 % is four to six standard errors.
    assert result.var == pytest.approx(var, rel=0.01)
    assert result.es == pytest.approx(es, rel=0.01)
    assert result.scenarios == 1_000_000 and sum(result.histogram_counts) == 1_000_000


def test_monte_carlo_var_converges_to_the_parametric_value_for_small_normal_returns():
    returns = correlated_returns(750, [0.002, 0.003, 0.0015, 0.004, 0.0025], 0.5, seed=5)
    exposures = np.array([2_000_000.0, -500_000.0, 1_000_000.0, 300_000.0, -250_000.0])
    common = {"exposures": exposures, "returns": returns, "confidence": 0.99, "horizon_days": 5}

    simulated = monte_carlo_var(**common, paths=1_000_000, seed=1)
    closed = parametric_var(**common)

    # Two gaps. Sampling: about 0.16 % of the VaR at 1M paths (see above). Convexity: parametric
    # ignores the convexity of exp, about z σ_N / 2 ≈ 0.5 % here (−0.4 to −0.6 % over seeds 2-5).
    # With a 1.5 % tolerance, the z of 95 % instead of 99 % (−29 %) or a missing sqrt(N) (−55 %)
    # would fail.
    assert simulated.var == pytest.approx(closed.var, rel=0.015)
    assert simulated.es == pytest.approx(closed.es, rel=0.015)


def test_monte_carlo_is_identical_for_one_seed_and_differs_for_another():
    returns = correlated_returns(250, [0.02, 0.03, 0.025], 0.6, seed=9)
    common = {"exposures": [100_000.0, 50_000.0, -20_000.0], "returns": returns, "confidence": 0.99}

    first = monte_carlo_var(**common, paths=50_000, seed=123)
    again = monte_carlo_var(**common, paths=50_000, seed=123)
    other = monte_carlo_var(**common, paths=50_000, seed=124)

    assert (first.var, first.es, first.histogram_counts) == (again.var, again.es, again.histogram_counts)
    assert abs(other.var - first.var) > 1e-4 * first.var
    assert abs(other.es - first.es) > 1e-4 * first.es


def test_monte_carlo_does_not_depend_on_chunk_size_or_thread_count():
    returns = correlated_returns(250, [0.02, 0.03, 0.025, 0.015], 0.6, seed=9)
    common = {"exposures": [100_000.0, 50_000.0, -20_000.0, 10_000.0], "returns": returns, "confidence": 0.99}
    paths = 70_000  # five stream blocks, the last one partial

    reference = monte_carlo_var(**common, paths=paths, seed=7, threads=1)
    others = [
        monte_carlo_var(**common, paths=paths, seed=7, chunk_paths=1_000, threads=2),
        monte_carlo_var(**common, paths=paths, seed=7, chunk_paths=3_333, threads=1),
        monte_carlo_var(**common, paths=paths, seed=7, chunk_paths=100_000, threads=2),
    ]

    # The draws are the same; only BLAS's float32 summation order may change with a chunk's shape.
    for other in others:
        assert other.var == pytest.approx(reference.var, rel=1e-6)
        assert other.es == pytest.approx(reference.es, rel=1e-6)


def test_monte_carlo_handles_a_covariance_that_is_only_positive_semi_definite():
    # The same instrument twice plus one whose price never moved: rank 1 of 3, Cholesky fails.
    # The VaR is that of one position holding the two exposures, by the lognormal closed form.
    single = correlated_returns(400, [0.025], 0.0, seed=21)
    returns = np.hstack([single, single, np.zeros_like(single)])

    result = monte_carlo_var(
        exposures=[600_000.0, 400_000.0, 50_000.0], returns=returns, confidence=0.95, paths=400_000, seed=2
    )

    m, s, z = single.mean(), single.std(ddof=1), norm.ppf(0.95)
    assert result.var == pytest.approx(1_000_000 * (1 - math.exp(m - z * s)), rel=0.01)
    assert result.es == pytest.approx(1_000_000 * (1 - math.exp(m + s * s / 2) * norm.cdf(-z - s) / 0.05), rel=0.01)


def test_monte_carlo_with_more_instruments_than_days_matches_parametric():
    returns = correlated_returns(30, np.linspace(0.001, 0.004, 60), 0.4, seed=4)
    exposures = np.linspace(-100_000.0, 300_000.0, 60)
    common = {"exposures": exposures, "returns": returns, "confidence": 0.99}

    simulated = monte_carlo_var(**common, paths=400_000, seed=8)

    # Rank 29 of 60; sampling error ≈ 0.25 % at 400k paths, convexity < 0.5 % at these vols.
    assert simulated.var == pytest.approx(parametric_var(**common).var, rel=0.015)


# --------------------------------------------------------------------------- Kupiec and the backtest


def hand_kupiec_lr(breaches, observations, confidence):
    """-2 ln of the likelihood ratio; scipy's xlogy takes 0 × ln 0 as 0."""
    p, rate, passes = 1 - confidence, breaches / observations, observations - breaches
    null = xlogy(passes, 1 - p) + xlogy(breaches, p)
    fitted = xlogy(passes, 1 - rate) + xlogy(breaches, rate)
    return -2 * (null - fitted)


@pytest.mark.parametrize(
    ("breaches", "observations", "confidence"),
    [(8, 250, 0.99), (2, 250, 0.99), (31, 500, 0.95), (3, 1000, 0.99), (1, 30, 0.95)],
)
def test_kupiec_lr_and_p_value_agree_with_the_hand_formula_and_scipy_chi2(breaches, observations, confidence):
    result = kupiec_pof(breaches=breaches, observations=observations, confidence=confidence)

    lr = hand_kupiec_lr(breaches, observations, confidence)
    assert result.lr == pytest.approx(lr, rel=1e-12)
    assert result.p_value == pytest.approx(chi2.sf(lr, df=1), rel=1e-9)
    assert result.rejected == (chi2.sf(lr, df=1) < 0.05)
    assert result.observed_rate == breaches / observations


def test_kupiec_verdict_at_250_days_and_99_percent_accepts_one_to_six_breaches():
    rejected = [x for x in range(12) if kupiec_pof(breaches=x, observations=250, confidence=0.99).rejected]

    assert rejected == [0, 7, 8, 9, 10, 11]
    assert rejected == [x for x in range(12) if chi2.sf(hand_kupiec_lr(x, 250, 0.99), df=1) < 0.05]


def test_kupiec_with_no_breach_uses_only_the_passes_term():
    result = kupiec_pof(breaches=0, observations=250, confidence=0.99)

    assert result.lr == pytest.approx(-2 * 250 * math.log(0.99), rel=1e-12)
    assert result.lr == pytest.approx(5.025167926750726, rel=1e-12)
    assert result.p_value == pytest.approx(chi2.sf(5.025167926750726, df=1), rel=1e-9)
    assert result.rejected  # too few breaches: the VaR is too cautious
    assert not kupiec_pof(breaches=0, observations=100, confidence=0.99).rejected  # LR 2.01, p 0.16


def test_kupiec_with_every_day_a_breach_uses_only_the_breaches_term():
    result = kupiec_pof(breaches=10, observations=10, confidence=0.99)

    assert result.lr == pytest.approx(-2 * 10 * math.log(0.01), rel=1e-12)
    assert result.lr == pytest.approx(92.10340371976181, rel=1e-12)
    assert result.p_value == pytest.approx(chi2.sf(92.10340371976181, df=1), rel=1e-9)
    assert result.rejected


def test_kupiec_at_exactly_the_expected_rate_has_zero_lr_and_p_value_one():
    at_99 = kupiec_pof(breaches=10, observations=1000, confidence=0.99)
    at_95 = kupiec_pof(breaches=25, observations=500, confidence=0.95)

    # 1 - 0.99 is 0.01 + 9e-18 in binary, so the exact LR is ~1e-29, not 0; the difference of the
    # two log-likelihoods would leave ~1e-14, a p-value off by 1e-7.
    for result in (at_99, at_95):
        assert result.lr == pytest.approx(0.0, abs=1e-25)
        assert result.p_value == pytest.approx(1.0, abs=1e-12)
        assert not result.rejected


@pytest.mark.parametrize("method", ["historical", "parametric"])
def test_var_backtest_matches_a_day_by_day_loop_that_sees_only_the_days_before(method):
    returns = correlated_returns(400, [0.02, 0.03, 0.015], 0.5, seed=31)
    returns[300:] *= 2.5  # a volatility jump, so there are breaches to count
    exposures = np.array([300_000.0, -100_000.0, 200_000.0])

    result = var_backtest(exposures=exposures, returns=returns, confidence=0.99, lookback_days=250, method=method)

    daily_var, daily_loss = [], []
    for day in range(250, 400):
        history = returns[day - 250 : day]  # the days before, never the day itself
        if method == "historical":
            daily_var.append(np.quantile(-((np.exp(history) - 1) @ exposures), 0.99))
        else:
            sigma = math.sqrt(exposures @ np.cov(history, rowvar=False) @ exposures)
            daily_var.append(norm.ppf(0.99) * sigma - history.mean(axis=0) @ exposures)
        daily_loss.append(-((np.exp(returns[day]) - 1) @ exposures))
    breach_days = [250 + i for i, (var, loss) in enumerate(zip(daily_var, daily_loss)) if loss > var]
    assert result.observations == 150
    assert result.daily_var == pytest.approx(daily_var, rel=1e-9)
    assert result.daily_loss == pytest.approx(daily_loss, rel=1e-12)
    assert list(result.breach_days) == breach_days
    assert result.breaches == len(breach_days) > 5
    assert result.kupiec.lr == pytest.approx(hand_kupiec_lr(len(breach_days), 150, 0.99), rel=1e-12)


def test_var_backtest_rejects_a_model_that_misses_a_volatility_jump_and_accepts_a_stable_market():
    calm = correlated_returns(750, [0.01, 0.012], 0.3, seed=41)
    jumped = calm.copy()
    jumped[-250:] *= 4
    exposures = [500_000.0, 500_000.0]

    stable = var_backtest(exposures=exposures, returns=calm, confidence=0.99, lookback_days=250, window_days=500)
    missed = var_backtest(exposures=exposures, returns=jumped, confidence=0.99, lookback_days=250, window_days=250)

    assert not stable.kupiec.rejected and stable.breaches <= 10  # 5 expected in 500 days
    assert missed.kupiec.rejected and missed.breaches >= 10  # 2.5 expected in 250 days
    assert missed.kupiec.observed_rate > 4 * missed.kupiec.expected_rate


# --------------------------------------------------------------------------- inputs


def test_log_returns_are_the_log_ratio_of_consecutive_closes():
    closes = [[100.0, 10.0], [110.0, 5.0], [99.0, 5.0]]

    returns = log_returns(closes)

    assert returns == pytest.approx(np.array([[math.log(1.1), math.log(0.5)], [math.log(0.9), 0.0]]), abs=1e-15)
    assert log_returns([1.0, 2.0, 4.0]) == pytest.approx(np.array([[math.log(2)], [math.log(2)]]))


def test_value_at_risk_dispatches_on_the_stored_inputs_and_keeps_them_read_only():
    returns = correlated_returns(120, [0.02, 0.01], 0.2, seed=1)
    inputs = VarInputs(
        exposures=np.array([10_000.0, 5_000.0]),
        returns=returns,
        method="monte_carlo",
        confidence=0.95,
        horizon_days=2,
        lookback_days=100,
        paths=20_000,
        seed=99,
    )

    result = value_at_risk(inputs)

    expected = monte_carlo_var(
        exposures=[10_000.0, 5_000.0],
        returns=returns,
        confidence=0.95,
        horizon_days=2,
        lookback_days=100,
        paths=20_000,
        seed=99,
    )
    assert (result.method, result.var, result.es) == ("monte_carlo", expected.var, expected.es)
    assert not inputs.returns.flags.writeable and not inputs.exposures.flags.writeable
    stored = json.loads(json.dumps(result.as_json()))
    assert stored["var"] == result.var and len(stored["histogram_edges"]) == len(stored["histogram_counts"]) + 1


RETURNS = correlated_returns(60, [0.02, 0.03], 0.5, seed=2)
GOOD = {"exposures": [1_000.0, 2_000.0], "returns": RETURNS, "confidence": 0.99}


@pytest.mark.parametrize(
    ("code", "call"),
    [
        ("NO_POSITIONS", lambda: historical_var(exposures=[], returns=np.empty((60, 0)), confidence=0.99)),
        ("NO_POSITIONS", lambda: parametric_var(**{**GOOD, "exposures": [0.0, 0.0]})),
        ("NO_HISTORY", lambda: historical_var(**{**GOOD, "returns": RETURNS[:10]})),
        ("NO_HISTORY", lambda: parametric_var(**GOOD, lookback_days=100)),
        ("NO_HISTORY", lambda: log_returns([100.0])),
        ("NO_HISTORY", lambda: var_backtest(**GOOD, lookback_days=50, window_days=20)),
        ("LOOKBACK_SHORTER_THAN_HORIZON", lambda: historical_var(**GOOD, lookback_days=20, horizon_days=30)),
        ("LOOKBACK_SHORTER_THAN_HORIZON", lambda: parametric_var(**GOOD, horizon_days=61)),
        ("BAD_LOOKBACK", lambda: historical_var(**GOOD, lookback_days=5)),
        ("BAD_CONFIDENCE", lambda: historical_var(**{**GOOD, "confidence": 1.0})),
        ("BAD_CONFIDENCE", lambda: parametric_var(**{**GOOD, "confidence": 0.0})),
        ("BAD_CONFIDENCE", lambda: parametric_var(**{**GOOD, "confidence": 99})),
        ("BAD_CONFIDENCE", lambda: parametric_var(**{**GOOD, "confidence": float("nan")})),
        ("BAD_CONFIDENCE", lambda: kupiec_pof(breaches=1, observations=10, confidence=-0.5)),
        ("BAD_HORIZON", lambda: historical_var(**GOOD, horizon_days=0)),
        ("BAD_HORIZON", lambda: historical_var(**GOOD, horizon_days=251)),
        ("BAD_HORIZON", lambda: historical_var(**GOOD, horizon_days=2.5)),
        ("BAD_PATHS", lambda: monte_carlo_var(**GOOD, paths=999)),
        ("BAD_PATHS", lambda: monte_carlo_var(**GOOD, paths=10_000_001)),
        ("BAD_PATHS", lambda: monte_carlo_var(**GOOD, paths=10_000, chunk_paths=0)),
        ("BAD_SEED", lambda: monte_carlo_var(**GOOD, seed=-1)),
        ("BAD_METHOD", lambda: value_at_risk(VarInputs(np.array([1.0, 2.0]), RETURNS, method="garch"))),
        ("BAD_METHOD", lambda: var_backtest(**GOOD, lookback_days=20, method="monte_carlo")),
        ("BAD_INPUT", lambda: historical_var(**{**GOOD, "returns": RETURNS[:, :1]})),
        ("BAD_INPUT", lambda: historical_var(**{**GOOD, "returns": np.where(RETURNS > 0.03, np.nan, RETURNS)})),
        ("BAD_INPUT", lambda: log_returns([[100.0], [0.0]])),
        ("BAD_INPUT", lambda: kupiec_pof(breaches=11, observations=10, confidence=0.99)),
    ],
)
def test_bad_input_raises_a_400_domain_error_with_a_stable_code(code, call):
    with pytest.raises(VarInputError) as raised:
        call()

    assert raised.value.code == code
    assert isinstance(raised.value, DomainError) and raised.value.status == 400
    assert raised.value.message
