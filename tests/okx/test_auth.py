"""OKX v5 signing: the VENUES.md test vectors and agreement with python-okx's own client."""

from __future__ import annotations

import json

import pytest
from okx import utils as okx_utils

from polyvn_okx import auth

SECRET = "22582BD0CFF14C41EDBF1AB98506286D"


def test_rest_sign_vector() -> None:
    signature = auth.rest_sign(
        SECRET, "2020-12-08T09:08:57.715Z", "get", "/api/v5/account/balance?ccy=BTC", ""
    )
    assert signature == "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="


def test_ws_login_sign_vector_int_and_string_timestamp() -> None:
    expected = "+LdIr8lkkvhr5hoA3g9TMC0+uQJ849ftAcocA/ouu4M="
    assert auth.ws_login_sign(SECRET, 1538054050) == expected
    assert auth.ws_login_sign(SECRET, "1538054050") == expected


def test_rest_sign_covers_the_raw_body() -> None:
    body = json.dumps({"instId": "BTC-USDT", "sz": "1"})  # python-okx's default separators
    compact = json.dumps({"instId": "BTC-USDT", "sz": "1"}, separators=(",", ":"))
    ts = "2024-01-01T00:00:00.000Z"
    spaced = auth.rest_sign(SECRET, ts, "POST", "/api/v5/trade/order", body)
    assert spaced != auth.rest_sign(SECRET, ts, "POST", "/api/v5/trade/order", compact)
    expected = okx_utils.sign(
        okx_utils.pre_hash(ts, "POST", "/api/v5/trade/order", body, False), SECRET
    )
    assert spaced == expected.decode()


def test_rest_timestamp_form_and_round_trip() -> None:
    assert auth.rest_timestamp(1607418537.715999) == "2020-12-08T09:08:57.715Z"
    assert auth.rest_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert auth.parse_rest_timestamp("2020-12-08T09:08:57.715Z") == pytest.approx(1607418537.715)
    assert auth.parse_rest_timestamp("2020-12-08T09:08:57Z") == 1607418537.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1607418537",
        "2020-12-08T09:08:57.715",
        "2020-12-08 09:08:57.715Z",
        "2020-13-08T09:08:57Z",
        "2020-12-08T09:08:57+00:00Z",
        "xZ",
    ],
)
def test_parse_rest_timestamp_rejects_other_forms(text: str) -> None:
    assert auth.parse_rest_timestamp(text) is None


def test_rest_headers_match_python_okx_and_hold_no_secret() -> None:
    ts = "2020-12-08T09:08:57.715Z"
    headers = auth.rest_headers(
        api_key="k",
        secret=SECRET,
        passphrase="p",
        timestamp=ts,
        method="GET",
        request_path="/api/v5/account/balance?ccy=BTC",
        body="",
        demo=True,
    )
    official = okx_utils.get_header(
        "k",
        okx_utils.sign(
            okx_utils.pre_hash(ts, "GET", "/api/v5/account/balance?ccy=BTC", "", False), SECRET
        ),
        ts,
        "p",
        "1",
        False,
    )
    assert headers == {
        key: value.decode() if isinstance(value, bytes) else value
        for key, value in official.items()
    }
    assert SECRET not in json.dumps(headers)
    live = auth.rest_headers(
        api_key="k",
        secret=SECRET,
        passphrase="p",
        timestamp=ts,
        method="GET",
        request_path="/",
        body="",
        demo=False,
    )
    assert live[auth.HEADER_DEMO] == "0"


def test_ws_login_args() -> None:
    args = auth.ws_login_args(api_key="k", secret=SECRET, passphrase="p", timestamp=1538054050)
    assert args == {
        "apiKey": "k",
        "passphrase": "p",
        "timestamp": "1538054050",
        "sign": "+LdIr8lkkvhr5hoA3g9TMC0+uQJ849ftAcocA/ouu4M=",
    }


def test_signatures_equal() -> None:
    assert auth.signatures_equal("abc", "abc")
    assert not auth.signatures_equal("abc", "abd")
    assert not auth.signatures_equal("abc", "")
