"""node.sync.backoff: the one reconnect backoff of the three reconnect loops."""

from __future__ import annotations

import random

import pytest
import trio

from node.sync import limits
from node.sync.backoff import Backoff, jittered


def test_delays_double_up_to_the_maximum_within_the_jitter() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(7))
    delays = [backoff.next_delay_s() for _ in range(6)]
    for delay, base in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert 0.75 * base <= delay < 1.25 * base
    assert len(set(delays)) == len(delays)  # jittered, not fixed


def test_reset_and_set_delay() -> None:
    backoff = Backoff(1.0, 8.0, random.Random(1))
    for _ in range(5):
        backoff.next_delay_s()
    assert backoff.delay_s == 8.0
    backoff.reset()
    assert backoff.delay_s == 1.0
    backoff.set_delay(100.0)
    assert backoff.delay_s == 8.0
    backoff.set_delay(0.0)
    assert backoff.delay_s == 1.0


def test_the_same_seed_gives_the_same_waits() -> None:
    one, two = Backoff(0.25, 30.0, random.Random(3)), Backoff(0.25, 30.0, random.Random(3))
    assert [one.next_delay_s() for _ in range(8)] == [two.next_delay_s() for _ in range(8)]


def test_jitter_is_a_quarter_either_way() -> None:
    rng = random.Random(0)
    values = [jittered(100.0, rng) for _ in range(2000)]
    assert 75.0 <= min(values) < 77.0 and 123.0 < max(values) < 125.0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


async def test_wait_sleeps_the_next_delay(autojump_clock: trio.testing.MockClock) -> None:
    backoff = Backoff(2.0, 60.0, random.Random(5))
    expected = Backoff(2.0, 60.0, random.Random(5)).next_delay_s()
    started = trio.current_time()
    await backoff.wait()
    assert trio.current_time() - started == pytest.approx(expected)


def test_node_sync_limits_live_in_one_module() -> None:
    """Limits of node/sync (names ending in a unit) are defined in limits.py only, so
    one name cannot mean 0.5 s in one file and 0.25 s in another again."""
    import ast
    from pathlib import Path

    units = ("_S", "_BYTES", "_MESSAGES", "_ATTEMPTS", "_ADDRESSES", "_ENVELOPES", "_WRITES")
    derived = {"START_FRAME_BYTES"}  # a frame's size, computed from protocol constants
    package = Path(limits.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        if path.name == "limits.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for target in targets:
                if (isinstance(target, ast.Name) and target.id.isupper()
                        and target.id.endswith(units) and target.id not in derived):
                    offenders.append(f"{path.name}: {target.id}")
    assert offenders == []
    assert limits.RELAY_BACKOFF_MIN_S != limits.DIAL_BACKOFF_MIN_S  # why they are named apart
