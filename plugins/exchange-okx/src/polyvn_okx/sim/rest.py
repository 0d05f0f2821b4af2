"""The OKX simulator's REST API (``/api/v5``), on :class:`polyvn.sim.server.SimServer`.

Every answer is OKX's envelope ``{"code", "msg", "data"}`` (trade endpoints add ``inTime`` and
``outTime`` in microseconds). Public endpoints need no signature (python-okx signs them all the
same; the headers are ignored); private ones go through
:meth:`~polyvn_okx.sim.keys.KeyRing.verify_rest`. HTTP statuses: 200 for every answer the
request's content decides, business errors included (``code`` "1" when every item failed, "2"
when some did, or the error's code); 400 for a malformed request (50002 JSON, 50014 a missing
parameter); 401 for authentication (501xx); 429 with ``Retry-After`` for rate limiting (50011)
and 503 for maintenance (50001), both injected through the simulator's faults.

GET parameters are read from the query string; POST bodies are JSON (an object, or an array
for the batch endpoints and ``cancel-algos``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from polyvn.models import MarginMode
from polyvn.sim.faults import InjectedError
from polyvn.sim.server import Request, Response, SimServer
from polyvn_okx.sim import codes as c
from polyvn_okx.sim.codes import OkxError
from polyvn_okx.sim.fields import choice, cursor, limit, text
from polyvn_okx.sim.keys import ApiKey
from polyvn_okx.sim.shapes import Json, fmt, instrument_json

if TYPE_CHECKING:
    from polyvn_okx.sim.simulator import OkxSimulator

BATCH_LIMIT: Final = 20
"""Orders one batch request may carry."""
ALGO_CANCEL_LIMIT: Final = 10
"""Algo orders one cancel-algos request may name."""

Args = Mapping[str, Any]
PublicHandler = Callable[[Args, int], list[Json]]
PrivateHandler = Callable[[ApiKey, Any, int], list[Json]]


def envelope(data: Sequence[Json], *, trade: bool = False, in_us: int = 0) -> Json:
    """``{"code": "0", "msg": "", "data": ...}``; for trade items the code says how many
    failed ("1" all, "2" some)."""
    code, msg = c.OK, ""
    if trade:
        failed = sum(1 for item in data if item.get("sCode", "0") != "0")
        if failed and failed == len(data):
            code, msg = c.ALL_FAILED, "All operations failed"
        elif failed:
            code, msg = c.PARTIAL, "Batch operation partially succeeded"
    body: Json = {"code": code, "msg": msg, "data": list(data)}
    if trade:
        body["inTime"] = str(in_us)
        body["outTime"] = str(int(time.time() * 1_000_000))
    return body


def error_body(error: OkxError) -> Response:
    return Response.json({"code": error.code, "msg": error.msg, "data": []}, status=error.status)


def injected_error(request: Request, error: InjectedError) -> Response:
    """An injected fault in OKX's shape: 503 → 50001, 429 → 50011, others 50013/50000."""
    if error.fault == "maintenance":
        code = c.UNAVAILABLE
    elif error.fault == "rate_limit":
        code = c.RATE_LIMITED
    else:
        code = c.BUSY if error.status >= 500 else c.BODY_EMPTY
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    body = {"code": code, "msg": c.MESSAGES[code], "data": []}
    return Response.json(body, status=error.status, headers=headers)


class RestApi:
    """The REST routes of one :class:`~polyvn_okx.sim.simulator.OkxSimulator`."""

    def __init__(self, sim: OkxSimulator) -> None:
        self.sim = sim
        self.routes: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {}
        self._kinds: dict[tuple[str, str], str] = {}
        t = sim.trading
        public: list[tuple[str, str, PublicHandler]] = [
            ("/api/v5/public/instruments", "instruments", self.instruments),
            ("/api/v5/public/time", "time", self.time),
            ("/api/v5/market/books", "books", self.books),
            ("/api/v5/market/ticker", "ticker", self.ticker),
            ("/api/v5/market/tickers", "tickers", self.tickers),
            ("/api/v5/market/trades", "trades", self.trades),
            ("/api/v5/public/funding-rate", "funding_rate", self.funding_rate),
            ("/api/v5/public/funding-rate-history", "funding_rate_history", self.funding_history),
            ("/api/v5/public/mark-price", "mark_price", self.mark_price),
            ("/api/v5/public/position-tiers", "position_tiers", self.position_tiers),
            ("/api/v5/public/price-limit", "price_limit", self.price_limit),
        ]
        for path, kind, handler in public:
            self._add("GET", path, kind, self._public(handler))
        private: list[tuple[str, str, str, PrivateHandler, bool]] = [
            ("POST", "/api/v5/trade/order", "place_order", self._single(t.place), True),
            ("POST", "/api/v5/trade/batch-orders", "place_order", self._batch(t.place), True),
            ("POST", "/api/v5/trade/cancel-order", "cancel_order", self._single(t.cancel), True),
            (
                "POST",
                "/api/v5/trade/cancel-batch-orders",
                "cancel_order",
                self._batch(t.cancel),
                True,
            ),
            ("POST", "/api/v5/trade/amend-order", "amend_order", self._single(t.amend), True),
            (
                "POST",
                "/api/v5/trade/amend-batch-orders",
                "amend_order",
                self._batch(t.amend),
                True,
            ),
            ("POST", "/api/v5/trade/close-position", "close_position", self.close_position, True),
            ("POST", "/api/v5/trade/cancel-all-after", "cancel_all_after", self.cancel_after, True),
            ("POST", "/api/v5/trade/order-algo", "place_algo", self.place_algo, True),
            ("POST", "/api/v5/trade/cancel-algos", "cancel_algo", self.cancel_algos, True),
            (
                "POST",
                "/api/v5/trade/cancel-advance-algos",
                "cancel_algo",
                self.cancel_algos,
                True,
            ),
            ("GET", "/api/v5/trade/order", "get_order", self.get_order, False),
            ("GET", "/api/v5/trade/orders-pending", "open_orders", self.orders_pending, False),
            ("GET", "/api/v5/trade/orders-history", "orders_history", self.orders_history, False),
            ("GET", "/api/v5/trade/fills", "fills", self.fills, False),
            ("GET", "/api/v5/trade/fills-history", "fills_history", self.fills_history, False),
            ("GET", "/api/v5/trade/orders-algo-pending", "algo_orders", self.algo_pending, False),
            ("GET", "/api/v5/trade/orders-algo-history", "algo_orders", self.algo_history, False),
            ("GET", "/api/v5/trade/order-algo", "algo_order", self.algo_detail, False),
            ("GET", "/api/v5/account/balance", "balance", self.balance, False),
            ("GET", "/api/v5/account/positions", "positions", self.positions, False),
            ("GET", "/api/v5/account/config", "account_config", self.config, False),
            ("POST", "/api/v5/account/set-position-mode", "settings", self.position_mode, False),
            ("POST", "/api/v5/account/set-leverage", "settings", self.set_leverage, False),
            ("GET", "/api/v5/account/leverage-info", "leverage_info", self.leverage_info, False),
            ("GET", "/api/v5/account/trade-fee", "trade_fee", self.trade_fee, False),
        ]
        for method, path, kind, private_handler, trade in private:
            self._add(method, path, kind, self._private(private_handler, trade=trade))

    def _add(
        self, method: str, path: str, kind: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> None:
        self.routes[(method, path)] = handler
        self._kinds[(method, path)] = kind

    def install(self, server: SimServer) -> None:
        """Add every route to *server* (route kinds name them for fault scopes)."""
        for (method, path), handler in self.routes.items():
            server.add_route(method, path, handler, kind=self._kinds[(method, path)])

    async def call(self, request: Request) -> Response:
        """Answer *request* without a server (tests under a MockClock): 404 when no route."""
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return Response.json({"code": "404", "msg": "Not Found"}, status=404)
        return await handler(request)

    # -- plumbing ------------------------------------------------------------------------

    def _public(self, handler: PublicHandler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            now = self.sim.now_ms()
            try:
                data = handler(request.query, now)
            except OkxError as exc:
                return error_body(exc)
            finally:
                await self.sim.checkpoint()
            return Response.json(envelope(data))

        return route

    def _private(
        self, handler: PrivateHandler, *, trade: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            in_us = int(time.time() * 1_000_000)
            now = self.sim.now_ms()
            try:
                key = self.sim.keys.verify_rest(request, now=self.sim.wall())
                args = _args(request)
                data = handler(key, args, now)
            except OkxError as exc:
                return error_body(exc)
            finally:
                self.sim.publish()
                await self.sim.checkpoint()
            return Response.json(envelope(data, trade=trade, in_us=in_us))

        return route

    def _single(self, operation: Callable[..., Json]) -> PrivateHandler:
        def handler(key: ApiKey, args: Any, now: int) -> list[Json]:
            if not isinstance(args, Mapping):
                raise c.error(c.JSON_ERROR, status=400)
            return [operation(key.account, args, now_ms=now)]

        return handler

    def _batch(self, operation: Callable[..., Json]) -> PrivateHandler:
        def handler(key: ApiKey, args: Any, now: int) -> list[Json]:
            out = []
            for entry in _entries(args, most=BATCH_LIMIT, what="orders"):
                try:
                    out.append(operation(key.account, entry, now_ms=now))
                except OkxError as exc:
                    out.append(
                        {
                            "ordId": text(entry, "ordId"),
                            "clOrdId": text(entry, "clOrdId"),
                            "ts": str(now),
                            "sCode": exc.code,
                            "sMsg": exc.msg,
                        }
                    )
            return out

        return handler

    # -- public --------------------------------------------------------------------------

    def _spec_of(self, args: Args) -> str:
        inst_id = text(args, "instId")
        if not inst_id:
            raise c.param_empty("instId")
        return self.sim.trading.spec(inst_id).id

    def instruments(self, args: Args, now: int) -> list[Json]:
        inst_type = text(args, "instType")
        if not inst_type:
            raise c.param_empty("instType")
        choice(args, "instType", ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"))
        inst_id, family = text(args, "instId"), text(args, "instFamily") or text(args, "uly")
        return [
            instrument_json(spec)
            for spec in self.sim.trading.specs.values()
            if spec.inst_type == inst_type
            and (not inst_id or spec.id == inst_id)
            and (not family or spec.family == family)
        ]

    def time(self, args: Args, now: int) -> list[Json]:
        return [{"ts": str(now)}]

    def books(self, args: Args, now: int) -> list[Json]:
        inst_id = self._spec_of(args)
        depth = text(args, "sz") or "1"
        if not depth.isdigit() or not 1 <= int(depth) <= 400:
            raise c.param_error("sz")
        view = self.sim.market.book_snapshot(inst_id, now_ms=now, depth=int(depth))
        return [{"asks": view["asks"], "bids": view["bids"], "ts": view["ts"]}]

    def ticker(self, args: Args, now: int) -> list[Json]:
        return [self.sim.market.ticker(self._spec_of(args), now_ms=now)]

    def tickers(self, args: Args, now: int) -> list[Json]:
        inst_type = text(args, "instType")
        if not inst_type:
            raise c.param_empty("instType")
        family = text(args, "instFamily") or text(args, "uly")
        return [
            self.sim.market.ticker(spec.id, now_ms=now)
            for spec in self.sim.trading.specs.values()
            if spec.inst_type == inst_type and (not family or spec.family == family)
        ]

    def trades(self, args: Args, now: int) -> list[Json]:
        inst_id = self._spec_of(args)
        raw = text(args, "limit") or "100"
        if not raw.isdigit() or not 1 <= int(raw) <= 500:
            raise c.param_error("limit")
        return [
            {
                "instId": inst_id,
                "side": t.side.value,
                "sz": fmt(t.size),
                "px": fmt(t.price),
                "tradeId": t.id,
                "ts": str(t.timestamp),
                "source": "0",
            }
            for t in self.sim.venue.recent_trades(inst_id, int(raw))
        ]

    def funding_rate(self, args: Args, now: int) -> list[Json]:
        return [self.sim.market.funding_view(self._spec_of(args), now_ms=now)]

    def funding_history(self, args: Args, now: int) -> list[Json]:
        inst_id = self._spec_of(args)
        self.sim.market.funding_view(inst_id, now_ms=now)
        after, before, most = cursor(args, "after"), cursor(args, "before"), limit(args)
        rows = [
            row
            for row in reversed(self.sim.market.funding_history.get(inst_id, ()))
            if (after is None or int(row["fundingTime"]) < after)
            and (before is None or int(row["fundingTime"]) > before)
        ]
        return rows[-most:] if before is not None else rows[:most]

    def mark_price(self, args: Args, now: int) -> list[Json]:
        inst_type = choice(args, "instType", ("MARGIN", "SWAP", "FUTURES", "OPTION"))
        inst_id, family = text(args, "instId"), text(args, "instFamily") or text(args, "uly")
        return [
            self.sim.market.mark_view(spec.id, now_ms=now)
            for spec in self.sim.trading.specs.values()
            if spec.inst_type == inst_type
            and (not inst_id or spec.id == inst_id)
            and (not family or spec.family == family)
        ]

    def position_tiers(self, args: Args, now: int) -> list[Json]:
        inst_type = choice(args, "instType", ("MARGIN", "SWAP", "FUTURES", "OPTION"))
        choice(args, "tdMode", ("cross", "isolated"))
        family = text(args, "instFamily") or text(args, "uly")
        inst_id = text(args, "instId")
        if not family and not inst_id:
            raise c.param_empty("instFamily")
        rows = []
        for spec in self.sim.trading.specs.values():
            if spec.inst_type != inst_type or not spec.tiers:
                continue
            if (family and spec.family not in family.split(",")) or (
                inst_id and spec.id != inst_id
            ):
                continue
            rows.extend(self.sim.market.tiers(spec.id))
            break  # one family, one tier table
        return rows

    def price_limit(self, args: Args, now: int) -> list[Json]:
        return [self.sim.market.price_limit(self._spec_of(args), now_ms=now)]

    # -- private: trade ------------------------------------------------------------------

    def close_position(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return [self.sim.trading.close_position(key.account, _object(args), now_ms=now)]

    def cancel_after(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return [self.sim.trading.cancel_all_after(key.account, _object(args), now_ms=now)]

    def place_algo(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return [self.sim.trading.algos.place(key.account, _object(args), now_ms=now)]

    def cancel_algos(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        entries = _entries(args, most=ALGO_CANCEL_LIMIT, what="algo orders")
        return [self.sim.trading.algos.cancel(key.account, e, now_ms=now) for e in entries]

    def get_order(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return [self.sim.trading.get_order(key.account, args)]

    def orders_pending(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return self.sim.trading.orders(key.account, args, open_=True, now_ms=now)

    def orders_history(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return self.sim.trading.orders(key.account, args, open_=False, now_ms=now)

    def fills(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return self.sim.trading.fill_list(key.account, args, now_ms=now)

    def fills_history(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return self.sim.trading.fill_list(key.account, args, now_ms=now, history=True)

    def algo_pending(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return self.sim.trading.algos.listing(key.account, args, pending=True)

    def algo_history(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return self.sim.trading.algos.listing(key.account, args, pending=False)

    def algo_detail(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        algos = self.sim.trading.algos
        algo = algos.find(key.account, text(args, "algoId"), text(args, "algoClOrdId"))
        return [algos.view(algo)]

    # -- private: account ----------------------------------------------------------------

    def balance(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        ccys = [ccy for ccy in text(args, "ccy").split(",") if ccy]
        return [self.sim.trading.balance(key.account, ccys, now_ms=now)]

    def positions(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return self.sim.trading.positions(key.account, args, now_ms=now)

    def config(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        uid = self.sim.uid(key.account)
        return [
            {
                "acctLv": "2",
                "acctStpMode": "cancel_maker",
                "autoLoan": False,
                "ctIsoMode": "automatic",
                "enableSpotBorrow": False,
                "greeksType": "PA",
                "ip": "",
                "kycLv": "2",
                "label": key.account,
                "level": "Lv1",
                "levelTmp": "",
                "liquidationGear": "-1",
                "mainUid": uid,
                "mgnIsoMode": "automatic",
                "opAuth": "0",
                "perm": "read_only,trade",
                "posMode": "net_mode",
                "roleType": "0",
                "spotBorrowAutoRepay": False,
                "spotOffsetType": "",
                "spotRoleType": "0",
                "spotTraderInsts": [],
                "traderInsts": [],
                "type": "0",
                "uid": uid,
            }
        ]

    def position_mode(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        mode = text(_object(args), "posMode")
        if not mode:
            raise c.param_empty("posMode")
        if mode != "net_mode":
            raise c.error(
                c.PARAM_ERROR, "Parameter posMode error: the simulator trades in net_mode only"
            )
        return [{"posMode": mode}]

    def set_leverage(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        return [self.sim.trading.set_leverage(key.account, _object(args), now_ms=now)]

    def leverage_info(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        mode = choice(args, "mgnMode", ("cross", "isolated"))
        inst_ids = [i for i in text(args, "instId").split(",") if i]
        if not inst_ids:
            raise c.param_empty("instId")
        out = []
        for inst_id in inst_ids:
            spec = self.sim.trading.spec(inst_id)
            if not spec.is_contract:
                raise c.error(c.PARAM_ERROR, f"{inst_id} trades without leverage")
            lever = self.sim.trading.leverage_of(key.account, spec, MarginMode(mode))
            out.append({"instId": inst_id, "mgnMode": mode, "posSide": "net", "lever": fmt(lever)})
        return out

    def trade_fee(self, key: ApiKey, args: Any, now: int) -> list[Json]:
        inst_type = text(args, "instType")
        if not inst_type:
            raise c.param_empty("instType")
        return [self.sim.market.fee_rates(inst_type, now_ms=now)]


def _args(request: Request) -> Any:
    """The request's parameters: the query of a GET, the JSON body of a POST."""
    if request.method == "GET":
        return request.query
    if not request.body:
        raise c.error(c.BODY_EMPTY, status=400)
    try:
        return json.loads(request.body)
    except ValueError:
        raise c.error(c.JSON_ERROR, status=400) from None


def _entries(args: Any, *, most: int, what: str) -> list[Mapping[str, Any]]:
    """The items of a batch body: one object, or an array of 1 to *most* objects (50002
    otherwise; 51000 beyond *most*)."""
    entries = [args] if isinstance(args, Mapping) else args
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(entry, Mapping) for entry in entries)
    ):
        raise c.error(c.JSON_ERROR, status=400)
    if len(entries) > most:
        raise c.error(c.PARAM_ERROR, f"A request holds at most {most} {what}")
    return entries


def _object(args: Any) -> Mapping[str, Any]:
    if not isinstance(args, Mapping):
        raise c.error(c.JSON_ERROR, status=400)
    return args


__all__ = ["RestApi", "envelope", "injected_error"]
