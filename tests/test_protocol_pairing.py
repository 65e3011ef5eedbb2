"""Pairing with a short code: right code joins, wrong code fails cleanly on both sides."""

from __future__ import annotations

import pytest

from protocol import (
    JOINER,
    NEED_DATA,
    PAIRER,
    DeviceInfo,
    DeviceJoined,
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
