"""The public side of the OKX simulator: prices, the price-limit band, tickers, funding, the
book views, and the public pushes.

:class:`MarketData` reads the simulator core's venue (books, trades, marks, funding) and the
market generators (their fair price is the index), and keeps what OKX shows that the venue
does not: 24-hour ticker statistics, the funding history, what the books5/bbo-tbt/tickers
channels last pushed and when each book was last pushed (for heartbeats).

Book updates (VENUES.md O4): the venue's deltas of one publishing round are merged into one
``books`` update per instrument (``seqId`` the last delta's, ``prevSeqId`` the first's
previous), with the checksum of the book after them (0 when switched off); books5 and
bbo-tbt are pushed when their levels changed; a book quiet for the heartbeat interval gets an
empty update with ``prevSeqId == seqId``. Prices and sizes print with
:func:`~polyvn_okx.sim.shapes.fmt`, so a client that keeps the strings it received computes
the same checksum.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final

import attrs

from polyvn.models import InstrumentKind, MarkPrice, Trade
from polyvn.sim import (
    BookEvent,
    FundingProcess,
    FundingRateEvent,
    RandomWalkLiquidity,
    Venue,
    round_down,
    round_up,
)
from polyvn_okx.parse import INSTRUMENT_KINDS, checksum_of
from polyvn_okx.sim import codes as c
from polyvn_okx.sim.catalog import OkxInstrument
from polyvn_okx.sim.shapes import Json, Push, book_rows, fmt, level_strings
from polyvn_okx.venue import LV1_FEES

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
DAY_MS: Final = 24 * 3600 * 1000
BAND: Final = Decimal("0.05")
"""The price-limit band: ±5 % around the index price."""
BOOK_DEPTH: Final = 400
FUNDING_KEPT: Final = 1000
"""Funding instants kept per swap for funding-rate-history."""
MINUTE_MS: Final = 60_000
UTC8: Final = 8 * 3600 * 1000


@attrs.frozen(kw_only=True)
class Candle:
    """Open, high, low, volume and value (price × size) of the trades of a period."""

    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal
    value: Decimal

    def then(self, other: Candle) -> Candle:
        """This period followed by *other*."""
        return Candle(
            open=self.open,
            high=max(self.high, other.high),
            low=min(self.low, other.low),
            volume=self.volume + other.volume,
            value=self.value + other.value,
        )


class TradeStats:
    """One instrument's trades in one-minute candles over the last day: the ticker's 24-hour
    open, high, low and volumes (their window moves a minute at a time) and the day's opens."""

    def __init__(self) -> None:
        self._minutes: deque[tuple[int, Candle]] = deque()

    def add(self, time_ms: int, price: Decimal, size: Decimal) -> None:
        minute = time_ms // MINUTE_MS
        candle = Candle(open=price, high=price, low=price, volume=size, value=price * size)
        if self._minutes and self._minutes[-1][0] == minute:
            self._minutes[-1] = (minute, self._minutes[-1][1].then(candle))
        else:
            self._minutes.append((minute, candle))
        while self._minutes and self._minutes[0][0] < minute - DAY_MS // MINUTE_MS:
            self._minutes.popleft()

    def window(self, since_ms: int) -> Candle | None:
        """The trades of the minutes from *since_ms* on; None without any."""
        first = since_ms // MINUTE_MS
        total: Candle | None = None
        for minute, candle in self._minutes:
            if minute >= first:
                total = candle if total is None else total.then(candle)
        return total

    def open_since(self, since_ms: int) -> Decimal | None:
        """The price of the first trade at or after *since_ms* (to the minute)."""
        first = since_ms // MINUTE_MS
        return next((c.open for minute, c in self._minutes if minute >= first), None)


class MarketData:
    """Public market data of the simulated venue; see the module docstring.

    :param venue: The simulator core venue.
    :param catalog: The listed instruments with their OKX fields.
    :param generators: The liquidity generator of each instrument (its fair price is the
        index price, and the centre of the price band).
    :param funding: The funding process of each swap (its premium is published).
    :param checksum: Send the book checksum (False: 0, as OKX after its deprecation).
    """

    def __init__(
        self,
        venue: Venue,
        catalog: Sequence[OkxInstrument],
        *,
        generators: Mapping[str, RandomWalkLiquidity] | None = None,
        funding: Mapping[str, FundingProcess] | None = None,
        checksum: bool = True,
    ) -> None:
        self.venue = venue
        self.specs: dict[str, OkxInstrument] = {spec.id: spec for spec in catalog}
        self.generators = dict(generators or {})
        self.funding_processes = dict(funding or {})
        self.checksum = checksum
        self.funding_history: dict[str, deque[Json]] = {}
        self._stats: dict[str, TradeStats] = {}
        self._top: dict[tuple[str, str], object] = {}
        self._book_pushed: dict[str, int] = {}
        self._funding_next: dict[str, int] = {}
        self._funding_rate: dict[str, Decimal] = {}

    def spec(self, inst_id: str) -> OkxInstrument:
        """The listed instrument; 51001 otherwise."""
        spec = self.specs.get(inst_id)
        if spec is None:
            raise c.error(c.INSTRUMENT_UNKNOWN)
        return spec

    # -- prices --------------------------------------------------------------------------

    def index_price(self, inst_id: str) -> Decimal | None:
        """The index: the generator's fair price (else the mark, else the last trade)."""
        generator = self.generators.get(inst_id)
        if generator is not None:
            return generator.fair_price
        return (
            self.venue.index_price(inst_id) or self.venue.mark_price(inst_id) or self.last(inst_id)
        )

    def mark_price(self, inst_id: str) -> Decimal | None:
        """The venue's mark of a derivative; the index of spot."""
        return self.venue.mark_price(inst_id) or self.index_price(inst_id)

    def last(self, inst_id: str) -> Decimal | None:
        trades = self.venue.recent_trades(inst_id, 1)
        return trades[0].price if trades else None

    def price(self, inst_id: str, kind: str) -> Decimal | None:
        """The trigger price of *kind* (``last``, ``mark``, ``index``) now."""
        if kind == "mark":
            return self.mark_price(inst_id)
        if kind == "index":
            return self.index_price(inst_id)
        return self.last(inst_id) or self.mark_price(inst_id)

    def band(self, inst_id: str) -> tuple[Decimal, Decimal] | None:
        """(buyLmt, sellLmt): the highest buy and the lowest sell price accepted."""
        index = self.index_price(inst_id)
        if index is None:
            return None
        tick = self.spec(inst_id).instrument.tick_size
        return round_down(index * (ONE + BAND), tick), round_up(index * (ONE - BAND), tick)

    def usd_price(self, ccy: str) -> Decimal:
        """The currency's value in USD (USDT counts as 1)."""
        if ccy in ("USDT", "USD"):
            return ONE
        spec = self.specs.get(f"{ccy}-USDT")
        if spec is None:
            return ZERO
        return self.last(spec.id) or self.index_price(spec.id) or spec.start_price

    # -- views ---------------------------------------------------------------------------

    def ticker(self, inst_id: str, *, now_ms: int) -> Json:
        """The ticker object of ``/market/ticker(s)`` and the tickers channel."""
        spec = self.specs[inst_id]
        ticker = self.venue.ticker(inst_id)
        last = self.venue.recent_trades(inst_id, 1)
        last_price = last[0].price if last else None
        stats = self._stats.get(inst_id) or TradeStats()
        day = stats.window(now_ms - DAY_MS)
        opening = day.open if day is not None else last_price
        volume = day.volume if day is not None else ZERO
        value = day.value if day is not None else ZERO
        vol_ccy = volume * spec.instrument.contract_value if spec.is_contract else value
        return {
            "instType": spec.inst_type,
            "instId": inst_id,
            "last": fmt(ticker.last),
            "lastSz": fmt(last[0].size) if last else "",
            "askPx": fmt(ticker.ask),
            "askSz": fmt(ticker.ask_size),
            "bidPx": fmt(ticker.bid),
            "bidSz": fmt(ticker.bid_size),
            "open24h": fmt(opening),
            "high24h": fmt(day.high if day is not None else opening),
            "low24h": fmt(day.low if day is not None else opening),
            "volCcy24h": fmt(vol_ccy),
            "vol24h": fmt(volume),
            "sodUtc0": fmt(stats.open_since(now_ms - now_ms % DAY_MS) or last_price),
            "sodUtc8": fmt(stats.open_since(now_ms - (now_ms + UTC8) % DAY_MS) or last_price),
            "ts": str(now_ms),
        }

    def funding_view(self, inst_id: str, *, now_ms: int) -> Json:
        funding = self.venue.funding_rate(inst_id)
        if funding is None:
            raise c.error(c.INSTRUMENT_UNKNOWN)
        interval = funding.interval_ms or 0
        history = self.funding_history.get(inst_id)
        settled = history[-1]["realizedRate"] if history else ""
        process = self.funding_processes.get(inst_id)
        premium = process.premium if process is not None else None
        return {
            "formulaType": "noRate",
            "fundingRate": fmt(funding.rate),
            "fundingTime": str(funding.next_funding_at),
            "impactValue": "",
            "instId": inst_id,
            "instType": "SWAP",
            "interestRate": "0",
            "maxFundingRate": "0.00375",
            "method": "current_period",
            "minFundingRate": "-0.00375",
            "nextFundingRate": "",
            "nextFundingTime": str(funding.next_funding_at + interval),
            "premium": fmt(premium),
            "settFundingRate": settled,
            "settState": "settled" if history else "processing",
            "ts": str(now_ms),
        }

    def fee_rates(self, inst_type: str, *, now_ms: int) -> Json:
        kind = INSTRUMENT_KINDS.get("SPOT" if inst_type == "MARGIN" else inst_type)
        if kind is None:
            raise c.param_error("instType")
        rates = LV1_FEES.rates[kind]
        maker, taker = fmt(-rates.maker), fmt(-rates.taker)
        contract = kind is not InstrumentKind.SPOT
        return {
            "category": "1",
            "delivery": "",
            "exercise": "",
            "instType": inst_type,
            "level": "Lv1",
            "maker": maker,
            "makerU": maker if contract else "",
            "makerUSDC": maker if contract else "",
            "taker": taker,
            "takerU": taker if contract else "",
            "takerUSDC": taker if contract else "",
            "ruleType": "normal",
            "ts": str(now_ms),
            "fiat": [],
        }

    # -- public pushes -------------------------------------------------------------------

    def trade_push(self, trade: Trade) -> Push:
        """The trades message of a public trade (and its place in the 24-hour statistics)."""
        stats = self._stats.get(trade.instrument)
        if stats is None:
            stats = self._stats[trade.instrument] = TradeStats()
        stats.add(trade.timestamp, trade.price, trade.size)
        return Push(
            channel="trades",
            inst_id=trade.instrument,
            data={
                "instId": trade.instrument,
                "tradeId": trade.id,
                "px": fmt(trade.price),
                "sz": fmt(trade.size),
                "side": trade.side.value,
                "ts": str(trade.timestamp),
                "count": "1",
                "source": "0",
                "seqId": int(trade.id),
            },
        )

    def mark_push(self, mark: MarkPrice) -> Push | None:
        spec = self.specs.get(mark.instrument)
        if spec is None:
            return None
        return Push(
            channel="mark-price",
            inst_id=spec.id,
            data={
                "instType": spec.inst_type,
                "instId": spec.id,
                "markPx": fmt(mark.price),
                "ts": str(mark.timestamp),
            },
        )

    def funding_pushes(self, event: FundingRateEvent, now_ms: int) -> list[Push]:
        funding = event.funding
        inst_id = funding.instrument
        previous = self._funding_next.get(inst_id)
        if previous is not None and funding.next_funding_at != previous:
            settled = self._funding_rate.get(inst_id, ZERO)
            self.funding_history.setdefault(inst_id, deque(maxlen=FUNDING_KEPT)).append(
                {
                    "fundingRate": fmt(settled),
                    "fundingTime": str(previous),
                    "instId": inst_id,
                    "instType": "SWAP",
                    "method": "current_period",
                    "realizedRate": fmt(settled),
                    "formulaType": "noRate",
                }
            )
        self._funding_next[inst_id] = funding.next_funding_at
        self._funding_rate[inst_id] = funding.rate
        view = self.funding_view(inst_id, now_ms=now_ms)
        return [Push(channel="funding-rate", inst_id=inst_id, data=view)]

    def book_pushes(self, inst_id: str, batch: list[BookEvent], now_ms: int) -> list[Push]:
        """One books update for the batch (levels merged, seqId the last, prevSeqId the
        first's), and books5/bbo-tbt when their levels changed."""
        book = self.venue.book(inst_id)
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for event in batch:
            bids.update(event.update.bids)
            asks.update(event.update.asks)
        first, last = batch[0].update, batch[-1].update
        assert last.sequence is not None
        ts = str(last.timestamp)
        data: Json = {
            "asks": book_rows(sorted(asks.items()), book.asks),
            "bids": book_rows(sorted(bids.items(), reverse=True), book.bids),
            "ts": ts,
            "checksum": self.book_checksum(inst_id),
            "prevSeqId": first.prev_sequence,
            "seqId": last.sequence,
        }
        self._book_pushed[inst_id] = now_ms
        pushes = [Push(channel="books", inst_id=inst_id, action="update", data=data)]
        for channel, depth in (("books5", 5), ("bbo-tbt", 1)):
            top = (book.bids.levels(depth), book.asks.levels(depth))
            if self._top.get((channel, inst_id)) != top:
                self._top[(channel, inst_id)] = top
                pushes.append(
                    Push(
                        channel=channel,
                        inst_id=inst_id,
                        data=self.top_view(inst_id, depth, now_ms=last.timestamp),
                    )
                )
        return pushes

    def book_checksum(self, inst_id: str) -> int:
        if not self.checksum:
            return 0
        book = self.venue.book(inst_id)
        return checksum_of(level_strings(book.bids.levels(25)), level_strings(book.asks.levels(25)))

    def book_snapshot(self, inst_id: str, *, now_ms: int, depth: int = BOOK_DEPTH) -> Json:
        """A books snapshot (``prevSeqId`` -1) at the book's current sequence."""
        book = self.venue.book(inst_id)
        return {
            "asks": book_rows(book.asks.levels(depth), book.asks),
            "bids": book_rows(book.bids.levels(depth), book.bids),
            "ts": str(now_ms),
            "checksum": self.book_checksum(inst_id),
            "prevSeqId": -1,
            "seqId": book.sequence,
        }

    def book_heartbeats(self, now_ms: int, interval_ms: int) -> list[Push]:
        """An empty books update (``prevSeqId == seqId``) for each book unchanged for
        *interval_ms*."""
        out = []
        for inst_id in self.specs:
            if now_ms - self._book_pushed.get(inst_id, now_ms) < interval_ms:
                self._book_pushed.setdefault(inst_id, now_ms)
                continue
            self._book_pushed[inst_id] = now_ms
            seq = self.venue.book(inst_id).sequence
            out.append(
                Push(
                    channel="books",
                    inst_id=inst_id,
                    action="update",
                    data={
                        "asks": [],
                        "bids": [],
                        "ts": str(now_ms),
                        "checksum": self.book_checksum(inst_id),
                        "prevSeqId": seq,
                        "seqId": seq,
                    },
                )
            )
        return out

    def top_view(self, inst_id: str, depth: int, *, now_ms: int) -> Json:
        """books5 (depth 5, with instId) or bbo-tbt (depth 1) data."""
        book = self.venue.book(inst_id)
        data: Json = {
            "asks": book_rows(book.asks.levels(depth), book.asks),
            "bids": book_rows(book.bids.levels(depth), book.bids),
            "ts": str(now_ms),
            "seqId": book.sequence,
        }
        if depth == 5:
            data["instId"] = inst_id
        return data

    def ticker_push(self, inst_id: str, now_ms: int) -> list[Push]:
        view = self.ticker(inst_id, now_ms=now_ms)
        key = tuple(view[k] for k in ("last", "askPx", "askSz", "bidPx", "bidSz", "vol24h"))
        if self._top.get(("tickers", inst_id)) == key:
            return []
        self._top[("tickers", inst_id)] = key
        return [Push(channel="tickers", inst_id=inst_id, data=view)]

    def mark_view(self, inst_id: str, *, now_ms: int) -> Json:
        spec = self.specs[inst_id]
        return {
            "instType": spec.inst_type,
            "instId": inst_id,
            "markPx": fmt(self.mark_price(inst_id)),
            "ts": str(now_ms),
        }

    def price_limit(self, inst_id: str, *, now_ms: int) -> Json:
        spec = self.spec(inst_id)
        band = self.band(inst_id)
        return {
            "instType": spec.inst_type,
            "instId": inst_id,
            "buyLmt": fmt(band[0]) if band else "",
            "sellLmt": fmt(band[1]) if band else "",
            "ts": str(now_ms),
            "enabled": band is not None,
        }

    def tiers(self, inst_id: str) -> list[Json]:
        spec = self.specs[inst_id]
        rows, low = [], ZERO
        for tier in spec.tiers:
            rows.append(
                {
                    "baseMaxLoan": "",
                    "imr": fmt(ONE / tier.max_leverage),
                    "instId": "",
                    "instFamily": spec.family,
                    "maxLever": fmt(tier.max_leverage),
                    "maxSz": fmt(tier.max_size),
                    "minSz": fmt(low),
                    "mmr": fmt(tier.mmr),
                    "optMgnFactor": "",
                    "quoteMaxLoan": "",
                    "tier": str(tier.tier),
                    "uly": spec.family,
                }
            )
            low = tier.max_size
        return rows


__all__ = ["BAND", "Candle", "MarketData", "TradeStats"]
