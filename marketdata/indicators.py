"""Technical indicators over stored candles, computed by TA-Lib.

A request names indicators as `name` or `name:param:param` (`sma:20`, `macd:12:26:9`,
`bbands:20:2`). They run over the candles of the window plus enough earlier candles to warm
up (TA-Lib's lookback and twice the longest period, for the exponential ones to settle), so
the first values of the window are already defined whenever history allows. Candles are the
stored sequence: a bucket without trades has none, and the indicator steps over it.

TA-Lib has no VWAP; it is the one computed here (cumulative quote volume over cumulative
volume, restarting each UTC day, like a trading platform's session VWAP) with NumPy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import talib

from marketdata.candles import bucket_start
from marketdata.models import CandleInterval, Instrument
from marketdata.selectors import CandleRow, indicator_candles
from portal.errors import DomainError

#: At most this many indicators per request.
INDICATORS_MAX = 8
_PERIOD_RANGE = (2, 500)


@dataclass(frozen=True)
class IndicatorKind:
    """One indicator: its parameters (name, default, kind), its outputs, and how to run it."""

    name: str
    parameters: tuple[tuple[str, float, type], ...]
    outputs: tuple[str, ...]
    run: Callable[[dict[str, np.ndarray], dict[str, float]], tuple[np.ndarray, ...]]


def _close(function):
    return lambda series, params: _tuple(function(series["close"], **params))


def _tuple(result) -> tuple[np.ndarray, ...]:
    return result if isinstance(result, tuple) else (result,)


def _vwap(series: dict[str, np.ndarray], params: dict[str, float]) -> tuple[np.ndarray, ...]:
    day = series["day"]
    starts = np.r_[True, day[1:] != day[:-1]]
    groups = np.cumsum(starts) - 1
    quote, volume = np.cumsum(series["quote_volume"]), np.cumsum(series["volume"])
    day_first = np.flatnonzero(starts)
    before = np.r_[0.0, quote][day_first][groups], np.r_[0.0, volume][day_first][groups]
    traded = volume - before[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(traded > 0, (quote - before[0]) / traded, np.nan),)


KINDS: dict[str, IndicatorKind] = {
    kind.name: kind
    for kind in (
        IndicatorKind("sma", (("timeperiod", 20, int),), ("value",), _close(talib.SMA)),
        IndicatorKind("ema", (("timeperiod", 20, int),), ("value",), _close(talib.EMA)),
        IndicatorKind("rsi", (("timeperiod", 14, int),), ("value",), _close(talib.RSI)),
        IndicatorKind(
            "macd",
            (("fastperiod", 12, int), ("slowperiod", 26, int), ("signalperiod", 9, int)),
            ("macd", "signal", "histogram"),
            _close(talib.MACD),
        ),
        IndicatorKind(
            "bbands",
            (("timeperiod", 20, int), ("nbdev", 2.0, float)),
            ("upper", "middle", "lower"),
            lambda s, p: talib.BBANDS(
                s["close"], timeperiod=int(p["timeperiod"]), nbdevup=p["nbdev"], nbdevdn=p["nbdev"]
            ),
        ),
        IndicatorKind(
            "atr",
            (("timeperiod", 14, int),),
            ("value",),
            lambda s, p: (talib.ATR(s["high"], s["low"], s["close"], timeperiod=int(p["timeperiod"])),),
        ),
        IndicatorKind("vwap", (), ("value",), _vwap),
    )
}


@dataclass(frozen=True)
class IndicatorSpec:
    """A parsed request for one indicator: `key` as the client wrote it, normalized."""

    kind: IndicatorKind
    params: dict[str, float]

    @property
    def key(self) -> str:
        return ":".join([self.kind.name, *(_format(self.params[name]) for name, _, _ in self.kind.parameters)])

    @property
    def warmup(self) -> int:
        periods = [int(v) for name, v in self.params.items() if name.endswith("period")]
        return 3 * max(periods, default=0) + int(self.params.get("signalperiod", 0))


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def indicator_specs_parse(texts: Sequence[str]) -> list[IndicatorSpec]:
    """Parse `sma:20`, `macd:12:26:9`, `vwap`, …; 400 with the reason on anything else."""
    if not texts:
        raise _bad(f"Name at least one indicator: {', '.join(KINDS)}.")
    if len(texts) > INDICATORS_MAX:
        raise _bad(f"At most {INDICATORS_MAX} indicators per request.")
    specs = [_spec(text) for text in texts]
    return list({spec.key: spec for spec in specs}.values())


def _spec(text: str) -> IndicatorSpec:
    name, *values = text.strip().lower().split(":")
    kind = KINDS.get(name)
    if kind is None:
        raise _bad(f"Unknown indicator {name!r}: use one of {', '.join(KINDS)}.")
    if len(values) > len(kind.parameters):
        raise _bad(f"{name} takes at most {len(kind.parameters)} parameter(s): {_signature(kind)}.")
    params: dict[str, float] = {}
    for index, (param, default, cast) in enumerate(kind.parameters):
        raw = values[index] if index < len(values) else None
        try:
            value = cast(raw) if raw not in (None, "") else default
        except ValueError:
            raise _bad(
                f"{name}: {param} must be {'a whole number' if cast is int else 'a number'}, not {raw!r}."
            ) from None
        low, high = _PERIOD_RANGE if param.endswith("period") else (0.1, 10)
        if not low <= value <= high:
            raise _bad(f"{name}: {param} must be from {low} to {high}.")
        params[param] = value
    if name == "macd" and params["fastperiod"] >= params["slowperiod"]:
        raise _bad("macd: the fast period must be shorter than the slow one.")
    return IndicatorSpec(kind, params)


def _signature(kind: IndicatorKind) -> str:
    return ":".join([kind.name, *(name for name, _, _ in kind.parameters)])


def _bad(message: str) -> DomainError:
    return DomainError("validation_error", message, status=400, errors={"indicator": [message]})


@dataclass(frozen=True)
class IndicatorSeries:
    key: str
    name: str
    params: dict[str, float]
    outputs: dict[str, list[float | None]]


def indicators_compute(
    candles: Sequence[CandleRow], specs: Sequence[IndicatorSpec], *, shown: int
) -> list[IndicatorSeries]:
    """Each indicator over `candles` (oldest first; the first ones warm-up only), its values
    for the last `shown` candles, None where history is too short."""
    series = {
        name: np.array([float(getattr(c, name)) for c in candles], dtype=float)
        for name in ("open", "high", "low", "close", "volume", "quote_volume")
    }
    series["day"] = np.array([bucket_start(c.open_time, CandleInterval.D1).timestamp() for c in candles])
    result = []
    for spec in specs:
        outputs = (
            spec.kind.run(series, dict(spec.params)) if candles else tuple(np.array([]) for _ in spec.kind.outputs)
        )
        result.append(
            IndicatorSeries(
                key=spec.key,
                name=spec.kind.name,
                params=spec.params,
                outputs={
                    name: [None if np.isnan(v) else round(float(v), 8) for v in values[len(values) - shown :]]
                    for name, values in zip(spec.kind.outputs, outputs, strict=True)
                },
            )
        )
    return result


@dataclass(frozen=True)
class IndicatorWindow:
    """The open times of a window's candles and each indicator's values over them."""

    open_times: list[datetime]
    indicators: list[IndicatorSeries]


def indicators_over_window(
    *, instrument: Instrument, specs: Sequence[IndicatorSpec], interval: str, limit: int, **window: Any
) -> IndicatorWindow:
    """`specs` over the candles `candles_range` gives for `interval`, `limit` and the window
    (`start`, `end`), warmed up by as many earlier candles as the longest of them needs (and,
    for VWAP, the rest of the first candle's UTC day)."""
    candles, shown = indicator_candles(
        instrument=instrument,
        interval=interval,
        limit=limit,
        warmup=max(spec.warmup for spec in specs),
        since_day_start=any(spec.kind.name == "vwap" for spec in specs),
        **window,
    )
    return IndicatorWindow(
        open_times=[c.open_time for c in candles[len(candles) - shown :]],
        indicators=indicators_compute(candles, specs, shown=shown),
    )
