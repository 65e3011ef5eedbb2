"""serving/: the ASGI plumbing the relay, the Commons server and the blind store share."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from serving import HttpError, Rate, TokenBucket, TokenBuckets
from serving.config import add_limit_flags, hypercorn_config, limits_from_flags


class HandClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(Rate(per_s=2.0, burst=3.0), now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.4)  # 0.8 of a token
    assert bucket.take(0.5)  # one token back after half a second at 2/s
    assert bucket.available(100.0) == 3.0  # never above the burst


def test_a_charge_leaves_a_debt_priced_in_seconds() -> None:
    bucket = TokenBucket(Rate(per_s=1000.0, burst=1000.0), now=0.0)
    bucket.charge(0.0, 3000.0)
    assert bucket.tokens == -2000.0
    assert bucket.seconds_until_paid() == 2.0
    assert not bucket.take(1.0)  # still 1000 short
    assert bucket.available(2.0) == 0.0
    bucket.charge(10.0, 1.0)
    assert bucket.seconds_until_paid() == 0.0


def test_a_clock_going_backwards_gives_no_tokens() -> None:
    bucket = TokenBucket(Rate(per_s=1.0, burst=1.0), now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)


def test_keyed_buckets_are_separate_and_bounded() -> None:
    clock = HandClock()
    buckets = TokenBuckets(Rate.per_minute(2), clock, max_keys=2)
    assert buckets.take("a") and buckets.take("a") and not buckets.take("a")
    assert buckets.take("b")
    assert buckets.available("a") == 0.0
    clock.now += 30.0  # one token a half minute at 2 a minute
    assert buckets.available("a") == 1.0
    buckets.take("c")  # a third key: the least recently used ("a"... then "b") goes
    assert len(buckets) == 2


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Rate(0.0, 1.0)
    with pytest.raises(ValueError):
        TokenBuckets(Rate(1.0, 1.0), HandClock(), max_keys=0)


def test_http_error_carries_status_message_and_headers() -> None:
    error = HttpError(429, "slow down", [(b"retry-after", b"1")])
    assert (error.status, error.message, str(error)) == (429, "slow down", "slow down")
    assert error.headers == [(b"retry-after", b"1")]


def test_the_config_builder_sets_our_defaults() -> None:
    config = hypercorn_config("::1", 0, log_name="x", max_header_bytes=1234, grace_s=1.5,
                              websocket_max_bytes=99, app_queue_messages=4, http11_only=True)
    assert config.bind == ["[::1]:0"]
    assert config.accesslog is None and config.include_server_header is False
    assert config.h11_max_incomplete_size == 1234 and config.graceful_timeout == 1.5
    assert config.websocket_max_message_size == 99 and config.max_app_queue_size == 4
    assert config.alpn_protocols == ["http/1.1"] and config.h2_max_concurrent_streams == 1


@dataclass(frozen=True)
class SomeLimits:
    max_things: int = 10
    timeout_s: float = 2.5

    def __post_init__(self) -> None:
        if self.max_things < 1:
            raise ValueError("max_things must be at least 1")


def _parse(argv: list[str], environ: dict[str, str], prefix: str = "") -> SomeLimits:
    parser = argparse.ArgumentParser()
    add_limit_flags(parser, SomeLimits, environ, env_prefix="T_", flag_prefix=prefix)
    return limits_from_flags(parser.parse_args(argv), SomeLimits, flag_prefix=prefix)


def test_limits_come_from_flags_then_environment_then_defaults() -> None:
    assert _parse([], {}) == SomeLimits()
    assert _parse([], {"T_MAX_THINGS": "7"}) == SomeLimits(max_things=7)
    assert _parse(["--max-things", "8"], {"T_MAX_THINGS": "7"}) == SomeLimits(max_things=8)
    assert _parse(["--timeout-s", "0.5"], {}) == SomeLimits(timeout_s=0.5)
    assert _parse(["--store-max-things", "1e3"], {}, "store-") == SomeLimits(max_things=1000)


@pytest.mark.parametrize("value", ["1.5", "many", "0"])
def test_a_bad_limit_is_a_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        _parse(["--max-things", value], {})
