"""Issue 16 part 5: private reflections are used only locally.

Every path that may call a model — the mirrorback, the LLM extraction, the
narrated evolution note, asking the journal and the digest — is driven through
the real litellm client against the fake model server (tests/helpers_llm.py),
with one private reflection holding a canary word among shared ones. A model
that is not on this machine must never receive the canary: a remote API, and a
model server named by a host name (the engine decides "this machine" from the
address in the config, without DNS, so a name is not this machine even when it
happens to resolve to loopback here). A model on a loopback address may read it
(the control that shows the check can fail).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from node.app import Mirror
from node.config import Config
from node.core import MirrorCore, open_core
from node.home import Home
from node.llm.keys import ENV_KEY
from tests.helpers_llm import FakeLLM, fake_llm

DEADLINE_S = 60
NOW = datetime(2026, 4, 29, 12, tzinfo=UTC)
CANARY = "Quillfeather"
SHARED_WORD = "Marbleton"
EXTRACTION_REPLY = '{"items": [], "tensions": [], "loops": []}'

SHARED = [
    (datetime(2026, 4, 20, 21, tzinfo=UTC),
     f"Long day at {SHARED_WORD}. Work ate the evening again and I felt tired and flat."),
    (datetime(2026, 4, 22, 21, tzinfo=UTC),
     "My boss asked for the report at nine at night. I said yes and felt resentful."),
    (datetime(2026, 4, 24, 21, tzinfo=UTC),
     "Quiet evening with a book. I felt calm for once, and rested."),
]
PRIVATE = (datetime(2026, 4, 26, 21, tzinfo=UTC),
           f"{CANARY} and I walked by the sea. I felt calm, properly calm, and I cried.")


def a_name_for_this_machine() -> str:
    """A host name (not "localhost") that resolves to 127.0.0.1 here, or skip."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        address = ""
    if name == "localhost" or address != "127.0.0.1":
        pytest.skip(f"the host name {name!r} does not resolve to 127.0.0.1 here "
                    f"({address or 'unresolved'}); the fake server listens on loopback only")
    return name


def remote(fake: FakeLLM) -> Config:
    return Config(mirror_mode="cloud", engine_mode="remote_llm", engine_model="openai/tiny",
                  engine_api_base=fake.base + "/v1", engine_timeout_s=10.0,
                  engine_extraction="llm")


def named_server(fake: FakeLLM) -> Config:
    """A model server elsewhere (a LAN box, a GPU machine), named by its host name."""
    return Config(mirror_mode="hybrid", engine_mode="local_llm", engine_model="ollama_chat/tiny",
                  engine_api_base=fake.base.replace("127.0.0.1", a_name_for_this_machine()),
                  engine_timeout_s=10.0, engine_extraction="llm")


def loopback(fake: FakeLLM) -> Config:
    return Config(engine_mode="local_llm", engine_model="ollama_chat/tiny",
                  engine_api_base=fake.base, engine_timeout_s=10.0, engine_extraction="llm")


def reply(body: dict[str, Any]) -> str:
    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    if '"items"' in prompt or "JSON" in prompt:
        return EXTRACTION_REPLY
    return "You wrote about the evening. What stays with you from it?"


async def every_model_path(home: Home, config: Config) -> AsyncIterator[MirrorCore]:
    home.ensure()
    home.save_config(config)
    async with open_core(home) as core:
        with trio.fail_after(DEADLINE_S):
            for at, text in SHARED:
                r = await core.reflect(text, at=at)
                [_ async for _ in core.stream_mirrorback(r)]
            at, text = PRIVATE
            r = await core.reflect(text, private=True, at=at)
            [_ async for _ in core.stream_mirrorback(r)]
            await core.understanding.rebuild()
            app = Mirror(core)  # the operations every front end calls
            await app.evolve()
            await app.ask("when did I last feel calm?", now=NOW)
            await app.ask(f"when did I last see {CANARY}?", now=NOW)
            await app.digest("week", until=NOW)
        yield core


def sent(fake: FakeLLM) -> str:
    return "\n".join(json.dumps(r.body) for r in fake.requests)


@pytest.mark.parametrize("where", [remote, named_server], ids=["remote-api", "named-server"])
async def test_a_private_reflection_never_reaches_a_model_off_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: Any
) -> None:
    monkeypatch.setenv(ENV_KEY, "sk-test-key-0000")
    with fake_llm(reply=reply) as fake:
        config = where(fake)
        async for core in every_model_path(Home(tmp_path / "home"), config):
            saved = await core.journal.all()
    bodies = sent(fake)
    assert SHARED_WORD in bodies  # the model was asked: the shared reflections reached it
    assert len(fake.chats()) >= len(SHARED)
    assert CANARY not in bodies and CANARY.lower() not in bodies.lower()
    private = next(r for r in saved if r.private)
    assert private.mirrorback is not None and private.mirrorback.engine == config.engine_mode
    assert private.mirrorback.model.startswith("offline")  # written here, not by the model


async def test_a_model_on_loopback_may_read_a_private_reflection(tmp_path: Path) -> None:
    """The control: the same paths with a model on 127.0.0.1 do show it the canary."""
    with fake_llm(reply=reply) as fake:
        async for core in every_model_path(Home(tmp_path / "home"), loopback(fake)):
            saved = await core.journal.all()
    assert CANARY in sent(fake)
    private = next(r for r in saved if r.private)
    assert private.mirrorback is not None and private.mirrorback.model == "ollama_chat/tiny"
