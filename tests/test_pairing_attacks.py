"""Attacks on pairing (issue 15, items 5 and 6).

Item 5: a joiner with a wrong code sees the pairer's key confirmation fail
itself and simply hangs up, many times at once. Before, only a PAIR_ABORT from
the joiner was counted and attempts were served concurrently: 2,300 guesses,
then the real join still succeeded. Now every exchange that got past the
pairer's reply counts, attempts are served one at a time, and a code answers
at most MAX_PAIRING_ATTEMPTS guesses while it can admit anyone.

Item 6: two devices that know the code confirm at once. Before, both could get
the welcome with the group secret and only one was recorded. Now one code
admits one device, ever; a second confirmation is refused (no secret) and the
pairer shows every device that tried.

Memory streams under trio's virtual clock, TCP on 127.0.0.1 with real ``mirror``
processes, and a relay on 127.0.0.1; attacks bounded in count.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from node.sync.group import Group
from node.sync.limits import MAX_WAITING_PAIRING_ATTEMPTS, PAIRING_EXCHANGE_TIMEOUT_S
from node.sync.pairing import (
    AttemptOutcome,
    PairerState,
    PairingFailed,
    join,
    serve_pairing_attempt,
)
from protocol import PairingCodeMismatch, RemoteProtocolError
from protocol.limits import MAX_PAIRING_ATTEMPTS
from protocol.pairing import (
    CODE_ALPHABET,
    JOINER,
    Pairing,
    new_pairing_code,
    normalize_pairing_code,
)
from tests.helpers import start_mirror
from tests.sync_helpers import Device, open_devices
from tests.test_sync_e2e import mirror

ATTACKS = 40


def wrong_codes(code: str, rng: random.Random) -> Callable[[], str]:
    """Random codes other than *code* (an attacker's guesses)."""
    right = normalize_pairing_code(code).decode()

    def guess() -> str:
        while True:
            candidate = "".join(rng.choice(CODE_ALPHABET) for _ in range(8))
            if candidate != right:
                return candidate

    return guess


async def guess_and_hang_up(stream: trio.abc.Stream, code: str) -> str:
    """The attack: send PAIR_START, check the pairer's confirmation locally, and
    hang up without a word (no PAIR_ABORT). Returns what the attacker learned."""
    machine = Pairing(JOINER, code, os.urandom(32), os.urandom, device_name="attacker")
    try:
        await stream.send_all(machine.data_to_send())
        while True:
            data = await stream.receive_some(65536)
            machine.receive_data(bytes(data))
            if not data:
                return "hung up on"
            try:
                event = machine.next_event()
            except PairingCodeMismatch:
                return "answered: wrong"  # one guess tested against the pairer's reply
            except RemoteProtocolError as exc:
                return f"refused: {exc}"
            if event is not None and type(event).__name__ != "NeedData":
                return "answered: right"
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return "hung up on"
    finally:
        await stream.aclose()  # discards the PAIR_ABORT the machine queued


async def attack_in_memory(group: Group, state: PairerState, attempts: int,
                           rng: random.Random) -> list[str]:
    """*attempts* concurrent wrong-code joiners against the pairer's *state*."""
    learned: list[str] = []
    guess = wrong_codes(state.code, rng)

    async def one() -> None:
        ours, theirs = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_pairing_attempt, group, state, theirs)
            learned.append(await guess_and_hang_up(ours, guess()))

    async with trio.open_nursery() as nursery:
        for _ in range(attempts):
            nursery.start_soon(one)
    return learned


async def real_join(pairer: Device, state: PairerState, joiner: Device,
                    name: str) -> object:
    """The person's own device joins with the right code; its result or its failure."""
    ours, theirs = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_pairing_attempt, pairer.group, state, theirs)
        try:
            return await join(joiner.group, state.code, ours, name)
        except PairingFailed as exc:
            return exc


def members(device: Device) -> set[str]:
    return {r.device_id for r in device.group.active()}


# --------------------------------------------------------------------------- item 5


async def test_guesses_that_hang_up_count_and_void_the_code(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_devices(tmp_path, ["pairer"]) as (pairer,):
        rng = random.Random(15)
        state = PairerState(code=new_pairing_code(os.urandom), done=trio.Event())
        learned = await attack_in_memory(pairer.group, state, ATTACKS, rng)
        answered = [x for x in learned if x.startswith("answered")]
        # However many tried at once, at most MAX_PAIRING_ATTEMPTS guesses were answered.
        assert len(answered) <= MAX_PAIRING_ATTEMPTS, learned
        assert state.guesses_answered == len(answered) == MAX_PAIRING_ATTEMPTS
        assert state.failure and state.done.is_set()
        # The code is void: the right code no longer admits anyone.
        path = tmp_path / "phone"
        path.mkdir()
        async with open_devices(path, ["phone"]) as (phone,):
            result = await real_join(pairer, state, phone, "phone")
            assert isinstance(result, PairingFailed)
            assert "no longer accepts this code" in str(result)
            assert members(pairer) == {pairer.keyring.device_id}
            assert phone.keyring.group_secret != pairer.keyring.group_secret
        assert state.guesses_answered == MAX_PAIRING_ATTEMPTS


async def test_each_way_an_answered_guess_can_end_is_counted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A hang-up, a silent joiner (timeout) and a PAIR_ABORT each use up one attempt;
    a connection that never sent a PAIR_START uses up none."""
    async with open_devices(tmp_path, ["pairer"]) as (pairer,):
        state = PairerState(code=new_pairing_code(os.urandom), done=trio.Event())
        guess = wrong_codes(state.code, random.Random(5))

        async def silent_after_reply() -> None:
            ours, theirs = trio.testing.memory_stream_pair()
            machine = Pairing(JOINER, guess(), os.urandom(32), os.urandom)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_pairing_attempt, pairer.group, state, theirs)
                await ours.send_all(machine.data_to_send())
                await ours.receive_some(65536)  # the reply: then nothing, ever
                await trio.sleep(2 * PAIRING_EXCHANGE_TIMEOUT_S)
                await ours.aclose()

        async def never_starts() -> None:
            ours, theirs = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_pairing_attempt, pairer.group, state, theirs)
                await ours.send_all(b"\x01")  # not even a frame header
                await trio.sleep(2 * PAIRING_EXCHANGE_TIMEOUT_S)
                await ours.aclose()

        async def honest_wrong_code() -> None:
            ours, theirs = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_pairing_attempt, pairer.group, state, theirs)
                with pytest.raises(PairingFailed, match="did not match"):
                    await join(pairer.group, guess(), ours, "typo")

        await never_starts()
        assert state.attempts == 0 and state.guesses_answered == 0
        await silent_after_reply()
        assert state.attempts == 1
        await honest_wrong_code()
        assert state.attempts == 2 and state.open
        learned = await attack_in_memory(pairer.group, state, 1, random.Random(6))
        assert learned == ["answered: wrong"]
        assert state.attempts == 3 and not state.open
        outcomes = [a.outcome for a in state.tried]
        assert outcomes == [AttemptOutcome.NO_PAIRING, AttemptOutcome.GAVE_UP,
                            AttemptOutcome.WRONG_CODE, AttemptOutcome.GAVE_UP]


async def test_waiting_attempts_are_bounded(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Attempts wait for their turn one at a time; beyond MAX_WAITING_PAIRING_ATTEMPTS the
    pairer hangs up at once instead of holding them."""
    async with open_devices(tmp_path, ["pairer"]) as (pairer,):
        state = PairerState(code=new_pairing_code(os.urandom), done=trio.Event())
        guess = wrong_codes(state.code, random.Random(7))
        hung_up = 0
        streams = []
        async with trio.open_nursery() as nursery:
            for _ in range(MAX_WAITING_PAIRING_ATTEMPTS + 5):
                ours, theirs = trio.testing.memory_stream_pair()
                nursery.start_soon(serve_pairing_attempt, pairer.group, state, theirs)
                machine = Pairing(JOINER, guess(), os.urandom(32), os.urandom)
                try:
                    await ours.send_all(machine.data_to_send())
                except trio.BrokenResourceError:
                    hung_up += 1  # hung up on before it could even send
                    continue
                streams.append(ours)
            await trio.testing.wait_all_tasks_blocked()
            assert state.busy and state.waiting == MAX_WAITING_PAIRING_ATTEMPTS
            for ours in streams:
                with trio.move_on_after(0.1):
                    if await ours.receive_some(65536) == b"":
                        hung_up += 1
            nursery.cancel_scope.cancel()
        # One is served, MAX_WAITING_PAIRING_ATTEMPTS wait, the other four were hung up on.
        assert hung_up == 4


async def test_the_online_attack_on_a_real_pairing_process(tmp_path: Path) -> None:
    """The report's attack over TCP on 127.0.0.1 against ``mirror pair``: wrong
    guesses that hang up, many at once; then the right code must not get in."""
    a, b = tmp_path / "a", tmp_path / "b"
    pairing = await start_mirror(a, "pair", "--json", "--listen", "127.0.0.1:0",
                                 "--no-discovery", "--timeout", "60")
    code, address = str(pairing.json["code"]), str(pairing.json["address"])
    host, port = address.rsplit(":", 1)
    guess = wrong_codes(code, random.Random(99))
    learned: list[str] = []

    async def one() -> None:
        try:
            stream = await trio.open_tcp_stream(host, int(port))
        except OSError:
            learned.append("not listening")
            return
        learned.append(await guess_and_hang_up(stream, guess()))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(ATTACKS):
                nursery.start_soon(one)
    assert sum(x.startswith("answered") for x in learned) <= MAX_PAIRING_ATTEMPTS, learned
    status, _, err = await mirror(b, "join", code, "--address", address, "--no-discovery")
    assert status == 1, err
    with trio.fail_after(30):
        assert await pairing.process.wait() == 1  # type: ignore[attr-defined]
    status, out, _ = await mirror(a, "devices", "--json")
    assert len(json.loads(out)) == 1, "nothing was added on the pairing side"


# --------------------------------------------------------------------------- item 6


@pytest.mark.parametrize("order", [0, 1, 2])
async def test_racing_joiners_one_gets_in_the_other_is_refused_and_shown(
    tmp_path: Path, order: int
) -> None:
    async with open_devices(tmp_path, ["pairer"]) as (pairer,):
        state = PairerState(code=new_pairing_code(os.urandom), done=trio.Event())
        for name in ("phone", "tablet"):
            (tmp_path / name).mkdir()
        results: dict[str, object] = {}
        async with open_devices(tmp_path / "phone", ["phone"]) as (phone,), \
                open_devices(tmp_path / "tablet", ["tablet"]) as (tablet,):
            joiners = [phone, tablet] if order != 1 else [tablet, phone]
            before = {j.name: j.keyring.group_secret for j in joiners}

            async def race(joiner: Device) -> None:
                results[joiner.name] = await real_join(pairer, state, joiner, joiner.name)

            async with trio.open_nursery() as nursery:
                for joiner in joiners:
                    nursery.start_soon(race, joiner)
                    if order == 2:
                        await trio.testing.wait_all_tasks_blocked()
            winners = [n for n, r in results.items() if not isinstance(r, PairingFailed)]
            losers = [n for n, r in results.items() if isinstance(r, PairingFailed)]
            assert len(winners) == 1 and len(losers) == 1, results
            winner = phone if winners == ["phone"] else tablet
            loser = tablet if winner is phone else phone
            assert "no longer accepts this code" in str(results[loser.name])
            # Only the winner holds the group secret; the loser kept its own group.
            assert winner.keyring.group_secret == pairer.keyring.group_secret
            assert loser.keyring.group_secret == before[loser.name]
            assert members(pairer) == {pairer.keyring.device_id, winner.keyring.device_id}
            # The pairer saw both: who joined, and who also knew the code.
            tried = {(a.outcome, a.device.device_key if a.device else None)
                     for a in state.tried}
            assert tried == {(AttemptOutcome.JOINED, winner.keyring.device_public),
                             (AttemptOutcome.REFUSED, loser.keyring.device_public)}
            # And the code stays spent: a third device with it is refused too.
            (tmp_path / "laptop").mkdir()
            async with open_devices(tmp_path / "laptop", ["laptop"]) as (laptop,):
                late = await real_join(pairer, state, laptop, "laptop")
                assert isinstance(late, PairingFailed)
            assert len(members(pairer)) == 2


async def test_racing_joiners_through_the_relay_never_both_get_the_secret(
    tmp_path: Path,
) -> None:
    from node.sync.relay import join_through_relays, serve_pairing_through_relays
    from tests.test_relay_sync import relay_at

    async with open_devices(tmp_path, ["pairer"]) as (pairer,), relay_at() as (_, url):
        state = PairerState(code=new_pairing_code(os.urandom), done=trio.Event())
        for name in ("phone", "tablet"):
            (tmp_path / name).mkdir()
        async with open_devices(tmp_path / "phone", ["phone"]) as (phone,), \
                open_devices(tmp_path / "tablet", ["tablet"]) as (tablet,):
            results: dict[str, object] = {}

            async def race(joiner: Device) -> None:
                try:
                    with trio.fail_after(20):
                        results[joiner.name] = await join_through_relays(
                            joiner.group, state.code, joiner.name, [url])
                except (PairingFailed, trio.TooSlowError) as exc:
                    results[joiner.name] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_pairing_through_relays, pairer.group, state, [url])
                async with trio.open_nursery() as racers:
                    racers.start_soon(race, phone)
                    racers.start_soon(race, tablet)
                nursery.cancel_scope.cancel()
            holders = [d for d in (phone, tablet)
                       if d.keyring.group_secret == pairer.keyring.group_secret]
            assert len(holders) <= 1, results
            joined = {a.device.device_key for a in state.tried
                      if a.outcome is AttemptOutcome.JOINED and a.device}
            assert joined == {d.keyring.device_public for d in holders}
            assert members(pairer) == {pairer.keyring.device_id,
                                       *(d.keyring.device_id for d in holders)}


async def test_cli_pair_shows_every_device_that_tried(tmp_path: Path) -> None:
    """``mirror pair --json`` ends with every attempt: the one that joined, and a
    wrong code before it."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    pairing = await start_mirror(a, "pair", "--json", "--listen", "127.0.0.1:0",
                                 "--no-discovery", "--timeout", "60")
    code, address = str(pairing.json["code"]), str(pairing.json["address"])
    wrong = wrong_codes(code, random.Random(3))()
    status, _, err = await mirror(c, "join", wrong, "--address", address, "--no-discovery",
                                  "--name", "stranger")
    assert status == 1 and "did not match" in err, err
    status, out, err = await mirror(b, "join", code, "--address", address, "--no-discovery",
                                    "--name", "phone")
    assert status == 0, err
    out_rest = b""
    with trio.fail_after(30):
        while chunk := await pairing.process.stdout.receive_some(65536):  # type: ignore[attr-defined]
            out_rest += chunk
        assert await pairing.process.wait() == 0  # type: ignore[attr-defined]
    report = json.loads(out_rest.decode().strip().splitlines()[-1])
    assert report["joined"]["name"] == "phone"
    assert [x["outcome"] for x in report["attempts"]] == ["wrong_code", "joined"]
    assert report["attempts"][0]["counted"] is True
