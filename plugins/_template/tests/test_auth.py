"""Signing against test vectors.

TEMPLATE: use the vectors your venue publishes. These were computed independently of the code
under test, with ``openssl dgst -sha256 -hmac test-secret -binary | base64``.
"""

from __future__ import annotations

from polyvn_template import auth


def test_sign_post_with_body() -> None:
    body = b'{"clientOrderId":"b1-7f3a","symbol":"BTC-USDT-PERP"}'

    signature = auth.sign(
        timestamp_ms=1732500000123, method="post", path="/api/v1/orders", body=body,
        secret="test-secret",
    )  # fmt: skip

    assert signature == "WHoU9G2gwOgqXQC9LafqKGvhXNwelfMw8W11HXjyEMU="


def test_sign_get_includes_the_query_string() -> None:
    signature = auth.sign(
        timestamp_ms=1732500000123, method="GET", path="/api/v1/orders/open?symbol=BTC-USDT-PERP",
        body=b"", secret="test-secret",
    )  # fmt: skip

    assert signature == "CiVriolkIk8TEWcbUhSPLyOoOAdOfaQlintE8w4An9k="
