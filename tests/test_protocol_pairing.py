"""Pairing with a short code: right code joins, wrong code fails cleanly on both sides."""

from __future__ import annotations

import pytest

from protocol import (
    JOINER,
    NEED_DATA,
    PAIRER,
    CodeNoLongerValid,
    DeviceInfo,
    DeviceJoined,
    DeviceRefused,
    GroupSnapshot,
    JoinedGroup,
    LocalProtocolError,
    Pairing,
    PairingCodeMismatch,
    PairingState,
    RemoteProtocolError,
    classify_opening,
    new_pairing_code,
    normalize_pairing_code,
)
from protocol.pairing import PairingEvent
from tests.protocol_helpers import ALICE_LAPTOP, ALICE_PHONE, GROUP_SECRET, seeded_rng

GROUP = GroupSnapshot(GROUP_SECRET, 3, (DeviceInfo(ALICE_LAPTOP.key, "laptop"),))


def pairer(code: str, label: str = "p") -> Pairing:
    return Pairing(PAIRER, code, ALICE_LAPTOP.seed, seeded_rng(label), group=GROUP)


def joiner(code: str, label: str = "j") -> Pairing:
    return Pairing(JOINER, code, ALICE_PHONE.seed, seeded_rng(label), device_name="phone")


def pump(src: Pairing, dst: Pairing) -> list[PairingEvent]:
    data = src.data_to_send()
    if data:
        dst.receive_data(data)
    events: list[PairingEvent] = []
    while (event := dst.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def test_right_code_joins_the_group() -> None:
    code = new_pairing_code(seeded_rng("code"))
    p, j = pairer(code), joiner(code.upper().replace("-", " "))
    assert pump(j, p) == []
    assert pump(p, j) == []
    (joined,) = pump(j, p)
    (welcome,) = pump(p, j)
    assert joined == DeviceJoined(DeviceInfo(ALICE_PHONE.key, "phone"))
    assert isinstance(welcome, JoinedGroup)
    assert welcome.group.group_secret == GROUP_SECRET and welcome.group.epoch == 3
    assert welcome.group.devices == (
        DeviceInfo(ALICE_LAPTOP.key, "laptop"),
        DeviceInfo(ALICE_PHONE.key, "phone"),
    )
    assert welcome.pairer_device_key == ALICE_LAPTOP.key
    assert p.state is PairingState.DONE and j.state is PairingState.DONE


def test_wrong_code_fails_on_both_sides_and_sends_nothing_secret() -> None:
    p, j = pairer("abcd-efgh"), joiner("abcd-efgj")
    pump(j, p)
    reply = p.data_to_send()
    j.receive_data(reply)
    with pytest.raises(PairingCodeMismatch):
        j.next_event()
    abort = j.data_to_send()
    assert len(abort) == 7  # a PAIR_ABORT, no joiner information
    p.receive_data(abort)
    with pytest.raises(PairingCodeMismatch):
        p.next_event()
    assert p.state is PairingState.ERROR and j.state is PairingState.ERROR
    assert p.data_to_send() == b""  # no welcome, no echo of the abort
    assert GROUP_SECRET not in reply


def test_pairer_detects_a_wrong_confirmation_itself() -> None:
    p, j = pairer("abcd-efgh"), joiner("abcd-efgh")
    pump(j, p)
    pump(p, j)
    confirm = bytearray(j.data_to_send())
    confirm[6] ^= 1  # first byte of conf_j
    p.receive_data(bytes(confirm))
    with pytest.raises(PairingCodeMismatch):
        p.next_event()
    assert p.data_to_send().startswith(b"\x01\x2f")


def test_each_reply_answers_one_guess() -> None:
    """The node counts an exchange once the pairer replied: that is the guess."""
    p, j = pairer("abcd-efgh"), joiner("abcd-efgj")
    assert not p.replied
    j_start = j.data_to_send()
    p.receive_data(j_start[:10])
    assert p.next_event() is NEED_DATA and not p.replied  # half a PAIR_START: no guess yet
    p.receive_data(j_start[10:])
    assert p.next_event() is NEED_DATA and p.replied


def test_a_code_that_admitted_a_device_refuses_the_next_confirmation() -> None:
    """admit=False: the confirmation is checked (the pairer learns who knew the code)
    and answered with PAIR_ABORT(GOING_AWAY): no welcome, no group secret."""
    p = Pairing(PAIRER, "abcd-efgh", ALICE_LAPTOP.seed, seeded_rng("p"), group=GROUP,
                admit=False)
    j = joiner("abcd-efgh")
    pump(j, p)
    pump(p, j)
    (refused,) = pump(j, p)
    assert refused == DeviceRefused(DeviceInfo(ALICE_PHONE.key, "phone"))
    answer = p.data_to_send()
    assert answer == b"\x01\x2f\x00\x00\x00\x01\x01"  # PAIR_ABORT(1), nothing else
    assert GROUP_SECRET not in answer
    j.receive_data(answer)
    with pytest.raises(CodeNoLongerValid):
        j.next_event()
    assert j.state is PairingState.ERROR


def test_a_void_code_is_refused_before_any_guess() -> None:
    p, j = pairer("abcd-efgh"), joiner("abcd-efgh")
    p.receive_data(j.data_to_send())
    p.refuse()
    answer = p.data_to_send()
    assert not p.replied and answer == b"\x01\x2f\x00\x00\x00\x01\x01"
    j.receive_data(answer)
    with pytest.raises(CodeNoLongerValid):
        j.next_event()
    with pytest.raises(LocalProtocolError):
        j.refuse()  # only a pairer refuses


def test_tampered_welcome_is_rejected() -> None:
    p, j = pairer("abcd-efgh"), joiner("abcd-efgh")
    pump(j, p)
    pump(p, j)
    pump(j, p)
    welcome = bytearray(p.data_to_send())
    welcome[-1] ^= 0x80
    j.receive_data(bytes(welcome))
    with pytest.raises(RemoteProtocolError, match="authentication"):
        j.next_event()


def test_codes_are_normalised_and_validated() -> None:
    assert normalize_pairing_code(" AbCd-EfGh ") == b"abcdefgh"
    assert normalize_pairing_code("il0o-abcd") == b"1100abcd"
    for bad in ("abc", "abcd-efghi", "abcd-efgu"):
        with pytest.raises(LocalProtocolError):
            normalize_pairing_code(bad)


def test_pairer_must_hand_over_a_group_including_itself() -> None:
    with pytest.raises(LocalProtocolError):
        Pairing(PAIRER, "abcd-efgh", ALICE_LAPTOP.seed, seeded_rng("p"))
    with pytest.raises(LocalProtocolError, match="itself"):
        Pairing(
            PAIRER,
            "abcd-efgh",
            ALICE_PHONE.seed,
            seeded_rng("p"),
            group=GROUP,
        )


def test_a_listener_tells_sessions_from_pairings() -> None:
    j = joiner("abcd-efgh")
    assert classify_opening(j.data_to_send()) == "pairing"
    assert classify_opening(b"\x01\x01") == "session"
    assert classify_opening(b"\x01") is None
    with pytest.raises(RemoteProtocolError):
        classify_opening(b"\x02\x01")
    with pytest.raises(RemoteProtocolError):
        classify_opening(b"\x01\x10")
