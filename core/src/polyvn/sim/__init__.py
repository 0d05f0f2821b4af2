"""The simulator core: the venue-agnostic part of every exchange plugin's venue simulator.

An exchange plugin's simulator is a protocol skin (its venue's REST and WebSocket API, auth
checks included) on top of a :class:`Venue` from here. The core is synchronous,
deterministic and free of I/O: no clock (every changing call takes ``now_ms``), no network,
no trio, randomness only from seeded generators, money only in ``Decimal``. Same seed and same
calls, same events, byte for byte.

Modules
    - :mod:`polyvn.sim.venue`: :class:`Venue` (instruments, binary markets, accounts, the
      clock, generators, marks, funding, liquidation, resolution, the event log) and
      :class:`OrderResult`.
    - :mod:`polyvn.sim.matching`: :class:`MatchingEngine`: price-time priority, limit and
      market orders, gtc/ioc/fok, post-only, amend, self-trade prevention, client order ids,
      complementary matching of binary outcomes, and validation.
    - :mod:`polyvn.sim.book`: the price-time-priority :class:`Book`, its snapshots and
      sequenced deltas.
    - :mod:`polyvn.sim.accounts`: :class:`Account`: balances, reservations, spot, perpetuals
      (isolated and cross margin, funding, liquidation) and binary shares.
    - :mod:`polyvn.sim.fees`: fee schedules (:class:`RatioFees`, :class:`OutcomeFees`) and
      :class:`SimVenueModel`, a :class:`~polyvn.engine.contracts.VenueModel`.
    - :mod:`polyvn.sim.generators`: seeded market generators (:class:`RandomWalkLiquidity`,
      :class:`PredictionMarketGenerator`, :class:`FundingProcess`) and
      :class:`RecordingReplay`.
    - :mod:`polyvn.sim.orders` and :mod:`polyvn.sim.events`: the values and events, with the
      venue-agnostic codes (:class:`RejectReason`, :class:`CancelReason`) a skin maps to its
      venue's.

A skin's use of it, in short::

    venue = Venue(exchange="acme", model=SimVenueModel(fees=RatioFees(...)))
    venue.add_instrument(instrument)
    spec = LiquiditySpec(instrument=instrument.id, start_price=Decimal(100))
    venue.add_generator(RandomWalkLiquidity(spec, seed=seed))
    venue.open_account("alice", {"USDT": Decimal(10_000)})
    result = venue.place_order("alice", OrderRequest(...), now_ms=now)
    events = venue.events_since(last_seen)
"""

from polyvn.sim.accounts import Account, Holding, Liquidation, MarginSetting, Reservation
from polyvn.sim.book import Book, BookSide
from polyvn.sim.events import (
    BalanceEvent,
    BookEvent,
    EventPayload,
    FillEvent,
    FundingPaymentEvent,
    FundingRateEvent,
    InstrumentStateEvent,
    LiquidationEvent,
    MarkPriceEvent,
    OrderEvent,
    PositionEvent,
    ResolutionEvent,
    SettlementEvent,
    TradeEvent,
    VenueEvent,
)
from polyvn.sim.fees import (
    CENT,
    FeeRates,
    FeeSchedule,
    MarginTier,
    NoFees,
    OutcomeFees,
    RatioFees,
    SimVenueModel,
    round_down,
    round_up,
)
from polyvn.sim.generators import (
    FundingProcess,
    FundingSpec,
    LiquiditySpec,
    PredictionMarketGenerator,
    PredictionSpec,
    QuoteSpec,
    RandomWalkLiquidity,
    RecordingReplay,
)
from polyvn.sim.matching import Admission, Execution, MatchingEngine, Problem
from polyvn.sim.orders import (
    CONTRACT_KINDS,
    CancelReason,
    InstrumentState,
    Match,
    OrderChange,
    OrderRequest,
    RejectReason,
    SelfTradePrevention,
    SimOrder,
)
from polyvn.sim.venue import BinaryMarket, Generator, Listener, OrderResult, Venue

__all__ = [
    "CENT",
    "CONTRACT_KINDS",
    "Account",
    "Admission",
    "BalanceEvent",
    "BinaryMarket",
    "Book",
    "BookEvent",
    "BookSide",
    "CancelReason",
    "EventPayload",
    "Execution",
    "FeeRates",
    "FeeSchedule",
    "FillEvent",
    "FundingPaymentEvent",
    "FundingProcess",
    "FundingRateEvent",
    "FundingSpec",
    "Generator",
    "Holding",
    "InstrumentState",
    "InstrumentStateEvent",
    "Liquidation",
    "LiquidationEvent",
    "LiquiditySpec",
    "Listener",
    "MarginSetting",
    "MarginTier",
    "MarkPriceEvent",
    "Match",
    "MatchingEngine",
    "NoFees",
    "OrderChange",
    "OrderEvent",
    "OrderRequest",
    "OrderResult",
    "OutcomeFees",
    "PositionEvent",
    "PredictionMarketGenerator",
    "PredictionSpec",
    "Problem",
    "QuoteSpec",
    "RandomWalkLiquidity",
    "RatioFees",
    "RecordingReplay",
    "RejectReason",
    "Reservation",
    "ResolutionEvent",
    "SelfTradePrevention",
    "SettlementEvent",
    "SimOrder",
    "SimVenueModel",
    "TradeEvent",
    "Venue",
    "VenueEvent",
    "round_down",
    "round_up",
]
