"""node.sync.boundary.map_exceptions: third-party exceptions become ours where they enter."""

from __future__ import annotations

import httpx
import pytest
import trio

from node.sync.blind_client import StoreUnavailable
from node.sync.boundary import STREAM_ERRORS, map_exceptions


def test_a_mapped_exception_becomes_ours_without_its_chain() -> None:
    with pytest.raises(StoreUnavailable) as caught,\
            map_exceptions({httpx.HTTPError: lambda e: StoreUnavailable(f"gone ({e})")}):
        raise httpx.ConnectError("refused")
    assert str(caught.value) == "gone (refused)"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_first_matching_key_wins_and_tuples_work() -> None:
    translation = {
        (KeyError, ValueError): lambda e: StoreUnavailable("malformed"),
        STREAM_ERRORS: lambda e: trio.BrokenResourceError("lost"),
    }
    with pytest.raises(StoreUnavailable), map_exceptions(translation):
        raise ValueError("x")
    with pytest.raises(trio.BrokenResourceError), map_exceptions(translation):
        raise ConnectionResetError("peer reset")  # an OSError


def test_anything_else_passes_unchanged() -> None:
    with pytest.raises(ZeroDivisionError), map_exceptions({OSError: lambda e: RuntimeError()}):
        raise ZeroDivisionError
