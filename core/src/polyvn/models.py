# Generated from schemas/ by `polyvn schemas generate`. Do not edit by hand: edit the
# schema and run `make schemas`.
"""The shared types of polyvn, generated from the JSON Schemas in ``schemas/``."""

import enum
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import attrs

from polyvn.names import Stream

__all__ = [
    "BOT_TRANSITIONS",
    "COMMAND_PAYLOADS",
    "EVENT_PAYLOADS",
    "EVENT_STREAMS",
    "STATUS_ORDER",
    "Balance",
    "BalanceUpdated",
    "BookLevel",
    "BookUpdate",
    "Bot",
    "BotLog",
    "BotMode",
    "BotParamsUpdated",
    "BotState",
    "BotStateChanged",
    "CancelOrder",
    "Capability",
    "Command",
    "CommandPayload",
    "CommandReply",
    "CommandType",
    "Currency",
    "EncryptedEnvelope",
    "EngineHeartbeat",
    "EngineHeartbeatEvent",
    "EngineLoad",
    "EngineStarted",
    "EngineStopped",
    "Event",
    "EventPayload",
    "EventType",
    "ExchangeDescription",
    "ExchangeKind",
    "ExchangeName",
    "FailoverPolicy",
    "Feed",
    "FeedHealth",
    "FeedHealthChanged",
    "FeedKey",
    "FeedType",
    "Fill",
    "FillCreated",
    "FundingRate",
    "Id",
    "Instrument",
    "InstrumentKind",
    "KillSwitch",
    "KillSwitchChanged",
    "Liquidity",
    "LogLevel",
    "MarginMode",
    "MarkPrice",
    "Order",
    "OrderStatus",
    "OrderType",
    "OrderUpdated",
    "PauseBot",
    "PnlSnapshot",
    "Position",
    "PositionUpdated",
    "ReplyStatus",
    "Resolution",
    "ResumeBot",
    "RiskBreached",
    "RiskLimits",
    "Side",
    "StartBot",
    "StopBot",
    "Ticker",
    "TimeInForce",
    "TimestampMs",
    "Trade",
    "UpdateParams",
    "VenueId",
    "VenueOrder",
    "Wallet",
]

ExchangeName: TypeAlias = str
"""Name of an exchange. An open set: plugins add exchanges. Lower-case letters, digits and
underscores, starting with a letter.
"""

Id: TypeAlias = str
"""An identifier made by polyvn or a client: bot, wallet, engine, event, command and client order
ids.
"""

Currency: TypeAlias = str
"""A currency or asset code as the venue writes it, for example USDC, USDT, BTC."""

TimestampMs: TypeAlias = int
"""Wall-clock time in milliseconds since the Unix epoch, UTC."""


@attrs.frozen(kw_only=True)
class Balance:
    """Funds of one currency in one wallet on one exchange."""

    exchange: ExchangeName

    wallet_id: Id | None = None
    """Absent for a paper account."""

    bot_id: Id | None = None
    """The bot whose paper account this is; absent for a live wallet."""

    currency: Currency
    total: Decimal

    available: Decimal
    """What new orders may use."""

    locked: Decimal = Decimal("0")
    """Held by open orders or as margin."""

    updated_at: TimestampMs


class BotMode(enum.StrEnum):
    """live sends orders to the venue; paper fills them against the live feed without touching the
    venue.
    """

    LIVE = "live"
    PAPER = "paper"


class FailoverPolicy(enum.StrEnum):
    """What happens to a bot when the engine running it dies: reassign starts it on another live
    engine that supports its exchange (after its lease expired, so it never runs twice); stop
    leaves it stopped.
    """

    REASSIGN = "reassign"
    STOP = "stop"


class BotState(enum.StrEnum):
    """Lifecycle state of a bot. Only the transitions in the table (x-transitions here,
    BOT_TRANSITIONS in Python) are allowed; the engine refuses any other.
    """

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RISK_STOPPED = "risk_stopped"
    ERROR = "error"


BOT_TRANSITIONS: Final[Mapping[BotState, frozenset[BotState]]] = MappingProxyType(
    {
        BotState.IDLE: frozenset({BotState.STARTING}),
        BotState.STARTING: frozenset(
            {
                BotState.RUNNING,
                BotState.STOPPING,
                BotState.RISK_STOPPED,
                BotState.ERROR,
            }
        ),
        BotState.RUNNING: frozenset(
            {
                BotState.PAUSING,
                BotState.STOPPING,
                BotState.RISK_STOPPED,
                BotState.ERROR,
            }
        ),
        BotState.PAUSING: frozenset(
            {
                BotState.PAUSED,
                BotState.STOPPING,
                BotState.RISK_STOPPED,
                BotState.ERROR,
            }
        ),
        BotState.PAUSED: frozenset(
            {
                BotState.RUNNING,
                BotState.STOPPING,
                BotState.RISK_STOPPED,
                BotState.ERROR,
            }
        ),
        BotState.STOPPING: frozenset({BotState.STOPPED, BotState.ERROR}),
        BotState.STOPPED: frozenset({BotState.STARTING}),
        BotState.RISK_STOPPED: frozenset({BotState.STARTING, BotState.STOPPED}),
        BotState.ERROR: frozenset({BotState.STARTING, BotState.STOPPED}),
    }
)
"""Allowed BotState transitions: state -> states it may move to."""


@attrs.frozen(kw_only=True)
class RiskLimits:
    """Limits checked before every order and while a bot runs. Money is normalized to USDC; an
    absent limit is not checked.
    """

    max_order_notional_usdc: Decimal | None = None
    """Largest notional of one order, in USDC."""

    max_position_notional_usdc: Decimal | None = None
    """Largest notional of the position in one instrument, in USDC."""

    price_collar_ratio: Decimal | None = None
    """Largest distance of a limit price from the mid, as a ratio of the mid (0.05 = 5 %)."""

    max_leverage: Decimal | None = None
    """Largest leverage of a position."""

    min_liquidation_buffer_ratio: Decimal | None = None
    """Smallest distance between the mark and the liquidation price, as a ratio of the mark."""

    max_open_orders: int | None = None
    """Most orders open at once."""

    max_orders_per_minute: int | None = None
    """Most orders placed in any 60 s window."""

    max_daily_loss_usdc: Decimal | None = None
    """Largest loss in one UTC day, in USDC (a positive number)."""

    max_drawdown_ratio: Decimal | None = None
    """Largest fall of equity from its peak, as a ratio of the peak (0.2 = 20 %)."""


@attrs.frozen(kw_only=True)
class Bot:
    """A strategy with its params, bound to one exchange and wallet, run by one engine."""

    id: Id
    name: str
    exchange: ExchangeName

    engine_id: Id | None = None
    """The engine that runs the bot; absent while unassigned."""

    strategy: Id
    """Name of the strategy class, as registered by polyvn_strategies."""

    params: Mapping[str, Any]
    """Strategy params, valid against the strategy's params schema."""

    wallet_id: Id | None = None
    """The wallet whose credentials the bot trades with; absent for paper bots that need none.
    """

    mode: BotMode
    state: BotState

    state_reason: str | None = None
    """Why the bot entered its state, for ERROR and RISK_STOPPED."""

    risk_limits: RiskLimits

    tick_interval_ms: int | None = None
    """How often on_tick is called; absent: never."""

    cancel_on_stop: bool = True
    """Cancel the bot's open orders when it stops."""

    paper_balances: Mapping[str, Decimal] | None = None
    """Starting balances of a paper bot's account, by currency."""

    created_at: TimestampMs
    updated_at: TimestampMs


class CommandType(enum.StrEnum):
    """What a command asks an engine to do; selects the payload."""

    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    UPDATE_PARAMS = "update_params"
    CANCEL_ORDER = "cancel_order"
    KILL_SWITCH = "kill_switch"


class ReplyStatus(enum.StrEnum):
    """applied: the engine did it (or had already done it: handling is idempotent); refused: it did
    not, and reason says why.
    """

    APPLIED = "applied"
    REFUSED = "refused"


@attrs.frozen(kw_only=True)
class StartBot:
    """Start a bot (or restart a stopped one) on the receiving engine."""

    bot: Bot

    fencing_token: int | None = None
    """The bot's lease token; the engine refuses a token older than one it has seen."""


@attrs.frozen(kw_only=True)
class StopBot:
    """Stop a bot."""

    bot_id: Id

    cancel_orders: bool = True
    """Cancel the bot's open orders while stopping."""


@attrs.frozen(kw_only=True)
class PauseBot:
    """Pause a bot: it keeps its orders and feeds but gets no callbacks."""

    bot_id: Id


@attrs.frozen(kw_only=True)
class ResumeBot:
    """Resume a paused bot."""

    bot_id: Id


@attrs.frozen(kw_only=True)
class UpdateParams:
    """Give a running bot new params; refused when they do not validate."""

    bot_id: Id
    params: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class CancelOrder:
    """Cancel one order of a bot."""

    bot_id: Id
    client_order_id: Id


@attrs.frozen(kw_only=True)
class KillSwitch:
    """Engage the kill switch (risk-stop every bot, cancel every order, refuse new orders) or
    release it.
    """

    engaged: bool
    reason: str


CommandPayload: TypeAlias = (
    StartBot
    | StopBot
    | PauseBot
    | ResumeBot
    | UpdateParams
    | CancelOrder
    | KillSwitch
)
"""The payload of any Command."""

COMMAND_PAYLOADS: Final[Mapping[CommandType, type[CommandPayload]]] = MappingProxyType(
    {
        CommandType.START: StartBot,
        CommandType.STOP: StopBot,
        CommandType.PAUSE: PauseBot,
        CommandType.RESUME: ResumeBot,
        CommandType.UPDATE_PARAMS: UpdateParams,
        CommandType.CANCEL_ORDER: CancelOrder,
        CommandType.KILL_SWITCH: KillSwitch,
    }
)
"""The payload class of each CommandType."""


@attrs.frozen(kw_only=True)
class Command:
    """The envelope of every command sent to an engine. type selects the payload; id is the request
    id its reply carries.
    """

    id: Id
    """Request id: an engine applies a command id at most once and answers a repeat with the first
    reply.
    """

    type: CommandType

    engine_id: Id
    """The engine the command is for."""

    exchange: ExchangeName | None
    """The exchange of the bot concerned; null for engine-wide commands."""

    timestamp: TimestampMs

    issued_by: str | None = None
    """Who sent it (user id), for the audit log."""

    payload: CommandPayload = attrs.field()

    @payload.validator
    def _payload_matches_type(self, _: Any, payload: Any) -> None:
        expected = COMMAND_PAYLOADS[self.type]
        if type(payload) is not expected:
            raise TypeError(
                f"a {self.type} command carries a "
                f"{expected.__name__}, "
                f"not a {type(payload).__name__}"
            )


@attrs.frozen(kw_only=True)
class CommandReply:
    """An engine's answer to a command, on its replies channel."""

    id: Id

    command_id: Id
    """The id of the command answered."""

    command_type: CommandType
    engine_id: Id
    exchange: ExchangeName | None
    timestamp: TimestampMs
    status: ReplyStatus

    reason: str | None = None
    """Why it was refused."""

VenueId: TypeAlias = str
"""An identifier made by a venue (venue order ids, trade ids, instrument symbols). Opaque to
polyvn.
"""


class Side(enum.StrEnum):
    """Side of an order or a fill."""

    BUY = "buy"
    SELL = "sell"


@attrs.frozen(kw_only=True)
class EngineLoad:
    """How busy an engine is; new bots go to the least-loaded engine."""

    bots: int
    """Bots assigned to the engine."""

    feeds: int
    """Upstream feeds open."""

    cpu_percent: float
    """Process CPU use over the last heartbeat interval, in percent of one core."""


@attrs.frozen(kw_only=True)
class EngineHeartbeat:
    """Published by every engine at a fixed interval; an engine whose heartbeat is older than
    ttl_ms is dead.
    """

    engine_id: Id
    exchanges: tuple[ExchangeName, ...]
    bots: tuple[Id, ...]

    version: str
    """Version of the polyvn core the engine runs."""

    load: EngineLoad
    started_at: TimestampMs
    timestamp: TimestampMs
    ttl_ms: int


class EventType(enum.StrEnum):
    """Every event type. x-streams names the stream that persists each type; null means realtime
    only.
    """

    BOT_STATE_CHANGED = "bot.state_changed"
    BOT_PARAMS_UPDATED = "bot.params_updated"
    BOT_LOG = "bot.log"
    ORDER_UPDATED = "order.updated"
    FILL_CREATED = "fill.created"
    POSITION_UPDATED = "position.updated"
    BALANCE_UPDATED = "balance.updated"
    PNL_SNAPSHOT = "pnl.snapshot"
    RISK_BREACHED = "risk.breached"
    KILL_SWITCH_CHANGED = "kill_switch.changed"
    FEED_HEALTH_CHANGED = "feed.health_changed"
    ENGINE_STARTED = "engine.started"
    ENGINE_HEARTBEAT = "engine.heartbeat"
    ENGINE_STOPPED = "engine.stopped"


EVENT_STREAMS: Final[Mapping[EventType, Stream | None]] = MappingProxyType(
    {
        EventType.BOT_STATE_CHANGED: Stream.BOT_EVENTS,
        EventType.BOT_PARAMS_UPDATED: Stream.BOT_EVENTS,
        EventType.BOT_LOG: Stream.BOT_EVENTS,
        EventType.ORDER_UPDATED: Stream.ORDERS,
        EventType.FILL_CREATED: Stream.FILLS,
        EventType.POSITION_UPDATED: Stream.POSITIONS,
        EventType.BALANCE_UPDATED: Stream.BALANCES,
        EventType.PNL_SNAPSHOT: Stream.PNL,
        EventType.RISK_BREACHED: Stream.BOT_EVENTS,
        EventType.KILL_SWITCH_CHANGED: Stream.AUDIT,
        EventType.FEED_HEALTH_CHANGED: None,
        EventType.ENGINE_STARTED: Stream.ENGINES,
        EventType.ENGINE_HEARTBEAT: Stream.ENGINES,
        EventType.ENGINE_STOPPED: Stream.ENGINES,
    }
)
"""The stream that persists each EventType; None: realtime only."""


class LogLevel(enum.StrEnum):
    """Severity of a bot log line."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@attrs.frozen(kw_only=True)
class BotStateChanged:
    """A bot moved from one state to another."""

    bot_id: Id
    old_state: BotState
    new_state: BotState

    reason: str | None = None
    """Why, for ERROR and RISK_STOPPED."""


@attrs.frozen(kw_only=True)
class BotParamsUpdated:
    """A running bot took new params."""

    bot_id: Id
    params: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class BotLog:
    """A line a strategy logged."""

    bot_id: Id
    level: LogLevel
    message: str


class OrderType(enum.StrEnum):
    """Kind of order. stop, trailing_stop, take_profit and stop_loss wait for a trigger; iceberg
    and twap are worked by the venue's algo engine.
    """

    LIMIT = "limit"
    MARKET = "market"
    STOP = "stop"
    TRAILING_STOP = "trailing_stop"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    ICEBERG = "iceberg"
    TWAP = "twap"


class TimeInForce(enum.StrEnum):
    """gtc rests until cancelled; ioc fills what it can at once and cancels the rest; fok fills
    completely at once or not at all.
    """

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class OrderStatus(enum.StrEnum):
    """Status of an order. Status only moves forward by its rank in x-ranks: an update with a lower
    rank than the order's status is stale and absorbed. The four terminal statuses share the
    highest rank (x-ranks here, STATUS_ORDER in Python).
    """

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


STATUS_ORDER: Final[Mapping[OrderStatus, int]] = MappingProxyType(
    {
        OrderStatus.PENDING: 0,
        OrderStatus.OPEN: 1,
        OrderStatus.PARTIALLY_FILLED: 2,
        OrderStatus.FILLED: 3,
        OrderStatus.CANCELED: 3,
        OrderStatus.REJECTED: 3,
        OrderStatus.EXPIRED: 3,
    }
)
"""Rank of each OrderStatus: a status only moves to an equal or higher rank."""


@attrs.frozen(kw_only=True)
class Order:
    """An order as polyvn tracks it. The client order id is the idempotency key: one id, at most
    one venue order.
    """

    client_order_id: Id

    venue_order_id: VenueId | None = None
    """Absent until the venue acknowledges the order."""

    bot_id: Id
    exchange: ExchangeName
    engine_id: Id

    instrument: VenueId
    """Instrument id on the exchange."""

    side: Side
    type: OrderType
    time_in_force: TimeInForce = TimeInForce.GTC

    post_only: bool = False
    """Rejected instead of taking liquidity."""

    reduce_only: bool = False
    """May only reduce a position."""

    price: Decimal | None = None
    """Limit price; absent for market orders."""

    trigger_price: Decimal | None = None
    """Trigger of stop, take-profit and stop-loss orders; activation price of a trailing stop.
    """

    callback_ratio: Decimal | None = None
    """Trailing stop distance as a ratio of the price."""

    callback_spread: Decimal | None = None
    """Trailing stop distance as a price difference."""

    take_profit_trigger_price: Decimal | None = None
    """Attached take-profit trigger."""

    stop_loss_trigger_price: Decimal | None = None
    """Attached stop-loss trigger."""

    visible_size: Decimal | None = None
    """Iceberg: size shown per slice."""

    slice_interval_ms: int | None = None
    """TWAP: time between slices."""

    size: Decimal
    """Order size in contracts or base units."""

    filled_size: Decimal = Decimal("0")

    average_price: Decimal | None = None
    """Average fill price; absent before the first fill."""

    fees: Decimal = Decimal("0")
    """Fees paid so far, positive as a cost, in fee_currency."""

    fee_currency: Currency | None = None
    leverage: Decimal | None = None
    status: OrderStatus

    error: str | None = None
    """Why the venue rejected the order."""

    created_at: TimestampMs
    updated_at: TimestampMs

    venue_updated_at: TimestampMs | None = None
    """The venue's time of the last update; breaks ties between updates of equal status rank."""


@attrs.frozen(kw_only=True)
class OrderUpdated:
    """An order changed: placed, acknowledged, filled, cancelled, rejected."""

    order: Order


class Liquidity(enum.StrEnum):
    """maker: the order rested on the book; taker: it took liquidity."""

    MAKER = "maker"
    TAKER = "taker"


@attrs.frozen(kw_only=True)
class Fill:
    """One execution of an order. Fills are facts: they are never changed, only added."""

    id: VenueId
    """The venue's trade or fill id, unique per exchange."""

    client_order_id: Id | None = None
    """Absent in what a venue reports for an order placed outside polyvn."""

    venue_order_id: VenueId
    """The venue's id of the order filled."""

    bot_id: Id | None = None
    """Set by the engine's order tracker; absent in what a venue reports."""

    exchange: ExchangeName

    engine_id: Id | None = None
    """Set by the engine's order tracker; absent in what a venue reports."""

    instrument: VenueId
    side: Side
    price: Decimal
    size: Decimal

    fee: Decimal
    """Fee of this fill, positive as a cost (negative for a rebate)."""

    fee_currency: Currency
    liquidity: Liquidity

    timestamp: TimestampMs
    """The venue's execution time."""


@attrs.frozen(kw_only=True)
class FillCreated:
    """An order was filled, fully or in part."""

    fill: Fill


class MarginMode(enum.StrEnum):
    """isolated: the position's own margin is at risk; cross: the account's whole balance backs it.
    """

    ISOLATED = "isolated"
    CROSS = "cross"


@attrs.frozen(kw_only=True)
class Position:
    """A bot's holding in one instrument: binary shares, a spot holding, or a leveraged contract
    position.
    """

    bot_id: Id | None = None
    """The bot holding it; absent for the account-wide position a venue reports."""

    exchange: ExchangeName
    instrument: VenueId

    size: Decimal
    """Signed size: positive long, negative short, in contracts or base units."""

    entry_price: Decimal
    """Average entry price of the open size."""

    mark_price: Decimal | None = None

    realized_pnl: Decimal = Decimal("0")
    """In the settlement currency, fees deducted."""

    unrealized_pnl: Decimal = Decimal("0")
    """In the settlement currency, at the mark price."""

    fees: Decimal = Decimal("0")

    funding: Decimal = Decimal("0")
    """Funding received (positive) or paid (negative)."""

    leverage: Decimal | None = None
    margin_mode: MarginMode | None = None

    margin: Decimal | None = None
    """Margin allocated to an isolated position."""

    liquidation_price: Decimal | None = None
    settlement_currency: Currency
    updated_at: TimestampMs


@attrs.frozen(kw_only=True)
class PositionUpdated:
    """A position changed size, price or PnL."""

    position: Position


@attrs.frozen(kw_only=True)
class BalanceUpdated:
    """A balance changed."""

    balance: Balance


@attrs.frozen(kw_only=True)
class PnlSnapshot:
    """A bot's PnL at a moment, in USDC."""

    bot_id: Id
    realized_pnl_usdc: Decimal
    unrealized_pnl_usdc: Decimal
    fees_usdc: Decimal
    equity_usdc: Decimal


@attrs.frozen(kw_only=True)
class RiskBreached:
    """A risk limit was breached; the bot (or, without a bot id, every bot of the engine) is risk-
    stopped.
    """

    bot_id: Id | None = None
    """Absent for an engine-wide limit."""

    limit: str
    """Name of the RiskLimits field that was breached."""

    value: Decimal
    threshold: Decimal
    message: str


@attrs.frozen(kw_only=True)
class KillSwitchChanged:
    """The engine's kill switch was engaged or released."""

    engaged: bool
    reason: str

FeedKey: TypeAlias = str
"""A feed as {exchange}:{feed type}:{params}; params is what the provider needs, usually the
instrument id, and may itself contain colons.
"""


class FeedHealth(enum.StrEnum):
    """ok: updates arrive in sequence; stale: nothing arrived for longer than the feed's limit;
    resyncing: a gap or reconnect, the state is being rebuilt; down: no connection.
    """

    OK = "ok"
    STALE = "stale"
    RESYNCING = "resyncing"
    DOWN = "down"


@attrs.frozen(kw_only=True)
class FeedHealthChanged:
    """A feed's health changed (realtime only: not persisted)."""

    key: FeedKey
    health: FeedHealth
    lag_ms: int | None = None


@attrs.frozen(kw_only=True)
class EngineStarted:
    """An engine started."""

    heartbeat: EngineHeartbeat


@attrs.frozen(kw_only=True)
class EngineHeartbeatEvent:
    """An engine is alive."""

    heartbeat: EngineHeartbeat


@attrs.frozen(kw_only=True)
class EngineStopped:
    """An engine stopped cleanly."""

    reason: str


EventPayload: TypeAlias = (
    BotStateChanged
    | BotParamsUpdated
    | BotLog
    | OrderUpdated
    | FillCreated
    | PositionUpdated
    | BalanceUpdated
    | PnlSnapshot
    | RiskBreached
    | KillSwitchChanged
    | FeedHealthChanged
    | EngineStarted
    | EngineHeartbeatEvent
    | EngineStopped
)
"""The payload of any Event."""

EVENT_PAYLOADS: Final[Mapping[EventType, type[EventPayload]]] = MappingProxyType(
    {
        EventType.BOT_STATE_CHANGED: BotStateChanged,
        EventType.BOT_PARAMS_UPDATED: BotParamsUpdated,
        EventType.BOT_LOG: BotLog,
        EventType.ORDER_UPDATED: OrderUpdated,
        EventType.FILL_CREATED: FillCreated,
        EventType.POSITION_UPDATED: PositionUpdated,
        EventType.BALANCE_UPDATED: BalanceUpdated,
        EventType.PNL_SNAPSHOT: PnlSnapshot,
        EventType.RISK_BREACHED: RiskBreached,
        EventType.KILL_SWITCH_CHANGED: KillSwitchChanged,
        EventType.FEED_HEALTH_CHANGED: FeedHealthChanged,
        EventType.ENGINE_STARTED: EngineStarted,
        EventType.ENGINE_HEARTBEAT: EngineHeartbeatEvent,
        EventType.ENGINE_STOPPED: EngineStopped,
    }
)
"""The payload class of each EventType."""


@attrs.frozen(kw_only=True)
class Event:
    """The envelope of every event an engine publishes. type selects the payload."""

    id: Id
    """Unique per event; persistence is idempotent on it."""

    type: EventType

    exchange: ExchangeName | None
    """The exchange the event is about; null for engine-wide events."""

    engine_id: Id
    timestamp: TimestampMs
    payload: EventPayload = attrs.field()

    @payload.validator
    def _payload_matches_type(self, _: Any, payload: Any) -> None:
        expected = EVENT_PAYLOADS[self.type]
        if type(payload) is not expected:
            raise TypeError(
                f"a {self.type} event carries a "
                f"{expected.__name__}, "
                f"not a {type(payload).__name__}"
            )


class ExchangeKind(enum.StrEnum):
    """prediction_market: binary outcome shares; cex: a centralized exchange with an order book;
    dex: an on-chain venue.
    """

    PREDICTION_MARKET = "prediction_market"
    CEX = "cex"
    DEX = "dex"


class Capability(enum.StrEnum):
    """Something an exchange plugin can do beyond placing, cancelling and querying orders. The
    conformance kit runs the cases of the capabilities a plugin declares.
    """

    AMEND = "amend"
    BATCH_ORDERS = "batch_orders"
    CANCEL_ALL = "cancel_all"
    CANCEL_ALL_AFTER = "cancel_all_after"
    LEVERAGE = "leverage"
    MARGIN = "margin"
    ALGO_ORDERS = "algo_orders"
    FUNDING = "funding"
    POSITIONS = "positions"
    PRIVATE_FEEDS = "private_feeds"
    BOOK_SEQUENCE = "book_sequence"
    BOOK_CHECKSUM = "book_checksum"
    BINARY_RESOLUTION = "binary_resolution"


class InstrumentKind(enum.StrEnum):
    """What an instrument is. A binary pays 1 or 0 in its settlement currency when it resolves.
    """

    BINARY = "binary"
    SPOT = "spot"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    OPTION = "option"


@attrs.frozen(kw_only=True)
class ExchangeDescription:
    """One exchange added by a plugin."""

    name: ExchangeName

    title: str
    """Name shown to people."""

    kind: ExchangeKind
    settlement_currencies: tuple[Currency, ...]
    instrument_kinds: tuple[InstrumentKind, ...]
    order_types: tuple[OrderType, ...]
    time_in_force: tuple[TimeInForce, ...]
    capabilities: tuple[Capability, ...] = ()

    credentials_schema: Mapping[str, Any]
    """JSON Schema of the wallet credentials form; secret fields carry writeOnly."""

    settings_schema: Mapping[str, Any]
    """JSON Schema of the exchange settings form (endpoints, demo switches)."""


class FeedType(enum.StrEnum):
    """Kinds of feed. book, ticker and mark_price are states (a slow reader may skip to the
    latest); trades, funding_rate, resolution and the private feeds are facts (never dropped).
    """

    BOOK = "book"
    TICKER = "ticker"
    TRADES = "trades"
    MARK_PRICE = "mark_price"
    FUNDING_RATE = "funding_rate"
    RESOLUTION = "resolution"
    ORDERS = "orders"
    FILLS = "fills"
    POSITIONS = "positions"
    BALANCES = "balances"


@attrs.frozen(kw_only=True)
class Feed:
    """A feed, the parts of its key."""

    exchange: ExchangeName
    type: FeedType

    params: str
    """Usually the instrument id; empty for account-wide private feeds."""


@attrs.frozen(kw_only=True)
class Instrument:
    """A tradable instrument of one exchange, with the increments its orders must respect."""

    exchange: ExchangeName

    id: VenueId
    """The venue's symbol or token id."""

    kind: InstrumentKind

    base: Currency
    """What is bought or sold (for a binary, the outcome share)."""

    quote: Currency
    """The currency prices are quoted in."""

    settlement_currency: Currency
    """The currency fees, PnL and settlement are paid in."""

    tick_size: Decimal
    """Smallest price increment."""

    lot_size: Decimal
    """Smallest size increment, in contracts or base units."""

    min_size: Decimal
    """Smallest order size."""

    contract_value: Decimal = Decimal("1")
    """Base units one contract stands for (1 for spot and binaries)."""

    outcome: str | None = None
    """For a binary: the outcome this share pays on, for example YES or NO."""

    expires_at: TimestampMs | None = None
    """Expiry of a future or option, or resolution time of a binary."""

BookLevel: TypeAlias = tuple[Decimal, Decimal]
"""One price level: [price, size]. Size 0 in an update removes the level."""


@attrs.frozen(kw_only=True)
class BookUpdate:
    """A snapshot of an order book, or changes to it. Bids best (highest) first, asks best (lowest)
    first.
    """

    exchange: ExchangeName
    instrument: VenueId

    snapshot: bool
    """True: replaces the whole book; false: changes levels."""

    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]

    sequence: int | None = None
    """The venue's sequence number of this update, when it has one."""

    prev_sequence: int | None = None
    """The sequence this update follows; a mismatch is a gap and forces a resync."""

    checksum: int | None = None
    """The venue's checksum of the book after this update; absent or 0: none."""

    timestamp: TimestampMs


@attrs.frozen(kw_only=True)
class Ticker:
    """Best prices and the last trade of an instrument."""

    exchange: ExchangeName
    instrument: VenueId

    bid: Decimal | None = None
    """Best bid."""

    bid_size: Decimal | None = None

    ask: Decimal | None = None
    """Best ask."""

    ask_size: Decimal | None = None

    last: Decimal | None = None
    """Price of the last trade."""

    volume_24h: Decimal | None = None
    """Traded in the last 24 hours, in base units or contracts."""

    timestamp: TimestampMs


@attrs.frozen(kw_only=True)
class Trade:
    """A public trade."""

    exchange: ExchangeName
    instrument: VenueId
    id: VenueId
    price: Decimal
    size: Decimal

    side: Side
    """Side of the taker."""

    timestamp: TimestampMs


@attrs.frozen(kw_only=True)
class MarkPrice:
    """The venue's mark price of a derivative, which margin and liquidation use."""

    exchange: ExchangeName
    instrument: VenueId
    price: Decimal
    index_price: Decimal | None = None
    timestamp: TimestampMs


@attrs.frozen(kw_only=True)
class FundingRate:
    """Funding of a perpetual: longs pay shorts rate x position value at each funding time (shorts
    pay when negative).
    """

    exchange: ExchangeName
    instrument: VenueId
    rate: Decimal

    next_funding_at: TimestampMs
    """When the rate is next applied."""

    interval_ms: int | None = None
    """Time between funding payments."""

    timestamp: TimestampMs


@attrs.frozen(kw_only=True)
class Resolution:
    """A binary market resolved: each share of the instrument pays payout (1 for the winning
    outcome, 0 for the losing one) in the settlement currency; open orders are cancelled.
    """

    exchange: ExchangeName
    instrument: VenueId

    payout: Decimal
    """Paid per share, in the settlement currency."""

    timestamp: TimestampMs


@attrs.frozen(kw_only=True)
class VenueOrder:
    """An order as its venue reports it (from a query, a placement reply or a private feed). The
    engine's order tracker merges it into the Order it tracks, by client order id.
    """

    client_order_id: Id | None = None
    """Absent for orders placed outside polyvn."""

    venue_order_id: VenueId
    exchange: ExchangeName
    instrument: VenueId
    side: Side
    type: OrderType
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    size: Decimal
    filled_size: Decimal = Decimal("0")
    average_price: Decimal | None = None
    fees: Decimal = Decimal("0")
    fee_currency: Currency | None = None
    status: OrderStatus
    error: str | None = None
    venue_updated_at: TimestampMs


@attrs.frozen(kw_only=True)
class EncryptedEnvelope:
    """Credentials encrypted with AES-256-GCM. Only this envelope is ever stored or sent; plaintext
    exists only in the memory of the process that uses it.
    """

    key_version: int
    """Which vault key encrypted it, so keys can rotate."""

    nonce: str
    """The 96-bit GCM nonce, base64."""

    ciphertext: str
    """Ciphertext with the 128-bit GCM tag appended, standard base64 (at least 16 bytes)."""


@attrs.frozen(kw_only=True)
class Wallet:
    """A set of exchange credentials with a name."""

    id: Id
    name: str
    exchange: ExchangeName
    credentials: EncryptedEnvelope
    created_at: TimestampMs
    updated_at: TimestampMs
