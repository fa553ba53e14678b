"""Reads of market reference data."""

from __future__ import annotations

from marketdata.models import Instrument
from portal.errors import NotFoundError


def instrument_get(*, symbol: str) -> Instrument:
    """The instrument `symbol` names (any case), with its venue and assets; 404 UNKNOWN_SYMBOL otherwise."""
    instrument = Instrument.objects.select_related("venue", "base", "quote").filter(symbol__iexact=symbol).first()
    if instrument is None:
        raise NotFoundError("UNKNOWN_SYMBOL", f"No instrument {symbol!r}.")
    return instrument
