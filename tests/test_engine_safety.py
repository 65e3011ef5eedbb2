"""Crisis language — self-harm and harm from others — found offline, with near misses."""

from __future__ import annotations

import pytest

from node.engine.offline import compose_mirrorback
from node.engine.safety import detect_crisis

HARM_FROM_OTHERS = [
    "He hit me again last night and I am scared.",
    "My ex threatened to kill me if I tell anyone.",
    "I'm not safe at home anymore.",
    "She said she would kill me, and I believe her.",
    "He choked me during the argument.",
    "My partner won't let me leave the flat.",
]
SELF_HARM = ["I want to kill myself.", "I keep thinking everyone is better off without me."]
NEAR_MISSES = [
    "It hit me that I have changed a lot this year.",
    "My brother hit me with a pillow and we laughed.",
    "My sister beat me at chess again.",
    "This deadline is killing me.",
    "The realisation hit me hard on the train.",
    "I could kill for a coffee right now.",
    "We watched a film where he threatens the villain.",
]
BANNED = ("you should", "try to", "diagnos", "disorder", "great job", "proud of you")


@pytest.mark.parametrize("text", HARM_FROM_OTHERS)
def test_harm_from_others_gets_care_and_resources(text: str) -> None:
    signal = detect_crisis(text)
    assert signal is not None and signal.category == "harm_from_others"
    reply = compose_mirrorback(text)
    assert "emergency number" in reply and "1-800-799-7233" in reply
    assert reply.count("?") <= 1 and text.rstrip(".") in reply
    assert not any(b in reply.lower() for b in BANNED)


@pytest.mark.parametrize("text", SELF_HARM)
def test_self_harm_comes_first(text: str) -> None:
    signal = detect_crisis(text + " He hit me too.")
    assert signal is not None and signal.category == "self_harm"


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_get_an_ordinary_mirrorback(text: str) -> None:
    assert detect_crisis(text) is None
    assert "emergency" not in compose_mirrorback(text)
