"""LLM engines through the real litellm client, against fake servers on 127.0.0.1.

Each test starts its own fake Ollama or OpenAI-compatible server (port 0) and
bounds every wait with ``trio.fail_after`` so that a hang fails the test
instead of stalling the suite. Timeouts here are deadlines, not measurements.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from crdt.journal import Reflection
from node.config import Config
from node.core import MirrorCore, open_core
from node.engine.base import MirrorbackRequest, complete, complete_with_notices
from node.engine.offline import compose_mirrorback
from node.home import Home, setup_logging
from node.llm.client import LLMError, LLMTarget, chat, describe_failure, stream_chat
from node.llm.engine import LLMEngine
from node.llm.keys import ENV_KEY, ApiKeyError, read_key_file, resolve_api_key
from tests.helpers import REPO
from tests.helpers_llm import DEFAULT_REPLY, FakeLLM, fake_llm, unused_port

DEADLINE_S = 30  # a bound on every wait: a hang fails the test, it never stalls it
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TEXT = (
    "Money is tight. I keep tracking every cent in a spreadsheet, but the rent still eats "
    "everything."
)
KEY = "sk-canary-4f1e9b7c2d"
MESSAGES = [{"role": "user", "content": "hello"}]


def reflection(text: str = TEXT, *, private: bool = False) -> Reflection:
    return Reflection(id="r1abcdefgh00", created_at=T0, text=text, private=private)


def engine(target: LLMTarget, **kw: object) -> LLMEngine:
    return LLMEngine("local_llm", lambda: target, model=target.model, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "suffix", "path"),
    [
        ("ollama_chat/tiny", "", "/api/chat"),
        ("ollama/tiny", "", "/api/generate"),
        ("openai/tiny", "/v1", "/v1/chat/completions"),
    ],
)
async def test_streams_and_whole_answers_through_real_litellm(
    model: str, suffix: str, path: str
) -> None:
    with fake_llm() as fake:
        target = LLMTarget(model, fake.base + suffix, timeout_s=10)
        with trio.fail_after(DEADLINE_S):
            pieces = [p async for p in stream_chat(target, MESSAGES)]
            whole = await chat(target, MESSAGES)
    assert len(pieces) > 1  # it really streamed
    assert "".join(pieces) == DEFAULT_REPLY == whole
    chats = fake.chats()
    assert [r.path for r in chats] == [path, path]
    assert chats[0].body.get("stream") is True and not chats[1].body.get("stream")


async def test_mirrorback_streams_in_pieces_with_the_prompt_file_and_past_patterns(
    tmp_path: Path,
) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "mirrorback.md").write_text("OVERRIDE-MARKER {patterns}", encoding="utf-8")
    past = [Reflection(f"p{i:011d}", T0.replace(day=1 + i % 27), "Rent again. Money is tight.")
            for i in range(3)]
    with fake_llm() as fake:
        eng = engine(LLMTarget("ollama_chat/tiny", fake.base, timeout_s=10), prompts_dir=prompts)
        with trio.fail_after(DEADLINE_S):
            pieces = [p async for p in eng.stream(MirrorbackRequest(reflection(), past))]
    assert len(pieces) > 1 and "".join(pieces) == DEFAULT_REPLY
    system = fake.chats()[0].body["messages"][0]["content"]
    assert system.startswith("OVERRIDE-MARKER")
    assert "money" in system.lower() and "3 of the last 3" in system
    assert TEXT in fake.chats()[0].body["messages"][1]["content"]
    assert eng.model == "ollama_chat/tiny"


def test_the_shipped_prompt_states_the_rules() -> None:
    from node.prompts import load_prompt

    text = load_prompt("mirrorback.md").lower()
    rules = ("own words", "no advice", "no diagnosis", "no flattery", "at most one open question")
    for rule in rules:
        assert rule in text


async def _fallback_reply(fake_base: str, **kw: object) -> tuple[str, str, LLMEngine]:
    """(the mirrorback, the one notice that came with it, the engine)."""
    eng = engine(LLMTarget("ollama_chat/tiny", fake_base, timeout_s=1), **kw)
    with trio.fail_after(DEADLINE_S):
        text, notices = await complete_with_notices(eng, MirrorbackRequest(reflection()))
    assert len(notices) == 1, notices
    return text, notices[0].text, eng


async def test_a_hanging_server_gives_one_line_and_the_offline_mirrorback() -> None:
    with fake_llm("hang") as fake:
        text, notice, eng = await _fallback_reply(fake.base)
    assert notice.startswith("the model did not answer") and "no answer within 1 s" in notice
    assert "\n" not in notice
    assert text == compose_mirrorback(TEXT)  # the notice is not part of the mirrorback
    assert eng.model == "offline-v1 (fallback)"


async def test_a_server_that_is_not_running_gives_the_offline_mirrorback() -> None:
    text, notice, _ = await _fallback_reply(f"http://127.0.0.1:{unused_port()}")
    assert notice.startswith("the model did not answer") and "not reachable" in notice
    assert text == compose_mirrorback(TEXT)


@pytest.mark.parametrize(("model", "suffix"), [("ollama_chat/tiny", ""), ("openai/tiny", "/v1")])
async def test_a_server_answering_garbage_gives_the_offline_mirrorback(
    model: str, suffix: str
) -> None:
    with fake_llm("malformed") as fake:
        eng = engine(LLMTarget(model, fake.base + suffix, timeout_s=5))
        with trio.fail_after(DEADLINE_S):
            text, notices = await complete_with_notices(eng, MirrorbackRequest(reflection()))
    assert [n.text.startswith("the model did not answer") for n in notices] == [True]
    assert text == compose_mirrorback(TEXT)


async def test_an_engine_failure_is_shown_once_logged_and_never_saved_or_exported(
    tmp_path: Path,
) -> None:
    from node.app.exporting import write_export

    home = Home(tmp_path / "home")
    home.ensure()
    home.save_config(Config(engine_mode="local_llm", engine_model="ollama_chat/tiny",
                            engine_api_base=f"http://127.0.0.1:{unused_port()}",
                            engine_timeout_s=2.0))
    setup_logging(home)
    shown: list[str] = []
    async with open_core(home) as core:
        with trio.fail_after(DEADLINE_S):
            r = await core.reflect(TEXT)
            printed = await core.mirror(r, shown.append)
            _, saved = await core.journal.find(r.id)
            await write_export(core.store, "json", tmp_path / "export.json")
            await write_export(core.store, "markdown", tmp_path / "markdown")
    assert len(shown) == 1 and "not reachable" in shown[0]
    assert printed == compose_mirrorback(TEXT)
    assert saved.mirrorback is not None and saved.mirrorback.text == compose_mirrorback(TEXT)
    assert saved.mirrorback.model == "offline-v1 (fallback)"  # what wrote it, as metadata
    assert "not reachable" in home.log_path.read_text()
    exported = [tmp_path / "export.json", *(tmp_path / "markdown").rglob("*.md")]
    for path in exported:
        text = path.read_text()
        assert "did not answer" not in text and "not reachable" not in text, path


async def test_a_model_that_stops_mid_answer_gives_a_notice_not_a_saved_note(
    tmp_path: Path,
) -> None:
    with fake_llm("stall") as fake:
        async for core in _local_core(tmp_path, fake, timeout_s=1.0):
            shown: list[str] = []
            with trio.fail_after(DEADLINE_S):
                r = await core.reflect(TEXT)
                text = await core.mirror(r, shown.append)
                _, saved = await core.journal.find(r.id)
    pieces = [DEFAULT_REPLY[i : i + len(DEFAULT_REPLY) // 4]
              for i in range(0, len(DEFAULT_REPLY), len(DEFAULT_REPLY) // 4)]
    assert text == "".join(pieces[:-1]).strip()  # what the model said before it stopped
    assert len(shown) == 1 and shown[0].startswith("the model stopped")
    assert saved.mirrorback is not None and saved.mirrorback.text == text


async def test_without_fallback_the_failure_is_one_clear_error() -> None:
    with fake_llm("hang") as fake:
        eng = engine(LLMTarget("ollama_chat/tiny", fake.base, timeout_s=1), fallback=False)
        with trio.fail_after(DEADLINE_S), pytest.raises(LLMError) as info:
            await complete(eng, MirrorbackRequest(reflection()))
    assert "no answer within 1 s" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["I want to kill myself tonight.", "He hit me again last night and I'm scared to go home."],
)
async def test_crisis_language_never_reaches_the_model(text: str) -> None:
    with fake_llm() as fake:
        eng = engine(LLMTarget("ollama_chat/tiny", fake.base, timeout_s=5))
        with trio.fail_after(DEADLINE_S):
            reply = await complete(eng, MirrorbackRequest(reflection(text)))
    assert fake.requests == []
    assert "emergency number" in reply and reply.count("?") <= 1


# --------------------------------------------------------------------------- remote, keys


def _remote(fake: FakeLLM, home: Path) -> LLMEngine:
    from node.engines import engine_for

    config = Config(mirror_mode="cloud", engine_mode="remote_llm", engine_model="openai/tiny",
                    engine_api_base=fake.base + "/v1", engine_timeout_s=5.0).validate()
    eng = engine_for(config, Home(home))
    assert isinstance(eng, LLMEngine)
    return eng


async def test_remote_engine_sends_the_key_and_never_a_private_reflection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, KEY)
    with fake_llm() as fake:
        eng = _remote(fake, tmp_path)
        with trio.fail_after(DEADLINE_S):
            private = await complete(eng, MirrorbackRequest(reflection(private=True)))
            assert fake.requests == []  # a private reflection stays on the device
            assert private == compose_mirrorback(TEXT)
            shared = await complete(eng, MirrorbackRequest(reflection()))
    assert shared == DEFAULT_REPLY
    assert fake.requests[0].headers.get("authorization") == f"Bearer {KEY}"


def test_failure_lines_never_carry_the_key() -> None:
    """Whatever a library puts in its exception, the line a person sees has no key."""
    target = LLMTarget("openai/tiny", api_base="http://127.0.0.1:9/v1", api_key=KEY)

    class BadRequestError(Exception):
        pass

    line = describe_failure(target, BadRequestError(f"server said: invalid key {KEY}"))
    assert KEY not in line and "[key]" in line
    assert KEY not in describe_failure(target, PermissionError(f"401 for {KEY}"))


def test_key_file_must_be_readable_by_the_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    path = tmp_path / "llm.key"
    with pytest.raises(ApiKeyError, match="no API key"):
        resolve_api_key(tmp_path)
    path.write_text(KEY + "\n", encoding="utf-8")
    path.chmod(0o644)
    with pytest.raises(ApiKeyError, match="chmod 600"):
        read_key_file(path)
    path.chmod(0o600)
    assert resolve_api_key(tmp_path) == KEY
    monkeypatch.setenv(ENV_KEY, "sk-from-env")
    assert resolve_api_key(tmp_path) == "sk-from-env"


async def test_the_key_is_never_written_to_documents_exports_logs_or_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole cycle in cloud mode — one refused call, one good one, extraction,
    evolve, export — then every file of the home is scanned for the key."""
    from node.app.exporting import write_export
    from node.app.settings import set_engine

    monkeypatch.setenv(ENV_KEY, KEY)
    home = Home(tmp_path / "home")
    home.ensure()
    home.save_config(Config(mirror_mode="cloud"))
    setup_logging(home, verbose=True)
    with fake_llm("unauthorized") as fake:
        async with open_core(home) as core:
            await set_engine(core, "remote", model="openai/tiny", api_base=fake.base + "/v1",
                             timeout_s=5)
            with trio.fail_after(DEADLINE_S):
                r = await core.reflect(TEXT)
                notices: list[str] = []
                await core.mirror(r, notices.append)
                [refused] = notices
                fake.mode = "ok"
                await core.mirror(await core.reflect("Rent again, and the spreadsheet."))
                await core.understanding.evolve()
            await write_export(core.store, "json", tmp_path / "export.json")
    # litellm names the refusal (AuthenticationError: a fixed line) or passes the
    # server's text on, which echoes the key: then it must arrive redacted.
    assert KEY not in refused
    assert "API key was refused" in refused or "[key]" in refused
    assert any(rq.headers.get("authorization") == f"Bearer {KEY}" for rq in fake.requests)
    scanned = 0
    for path in [*home.path.rglob("*"), tmp_path / "export.json"]:
        if path.is_file():
            scanned += 1
            assert KEY.encode() not in path.read_bytes(), path
    assert scanned >= 4


# --------------------------------------------------------------------------- the core


async def _local_core(
    tmp_path: Path, fake: FakeLLM, *, model: str = "ollama_chat/tiny", timeout_s: float = 5.0
) -> AsyncIterator[MirrorCore]:
    home = Home(tmp_path / "home")
    home.ensure()
    home.save_config(Config(engine_mode="local_llm", engine_model=model,
                            engine_api_base=fake.base, engine_timeout_s=timeout_s))
    async with open_core(home) as core:
        yield core


async def test_core_streams_the_mirrorback_and_records_the_model(tmp_path: Path) -> None:
    with fake_llm() as fake:
        async for core in _local_core(tmp_path, fake):
            with trio.fail_after(DEADLINE_S):
                r = await core.reflect(TEXT)
                pieces = [p async for p in core.stream_mirrorback(r)]
                _, saved = await core.journal.find(r.id)
    assert len(pieces) > 1
    assert saved.mirrorback is not None and saved.mirrorback.text == DEFAULT_REPLY
    assert (saved.mirrorback.engine, saved.mirrorback.model) == ("local_llm", "ollama_chat/tiny")


def test_local_mode_refuses_a_model_server_off_the_lan() -> None:
    from node.errors import ConfigError

    with pytest.raises(ConfigError, match="this machine or the LAN"):
        Config(engine_mode="local_llm", engine_api_base="https://api.example.com").validate()
    Config(engine_mode="local_llm", engine_api_base="http://192.168.1.20:11434").validate()
    Config(mirror_mode="hybrid", engine_mode="local_llm",
           engine_api_base="https://gpu.example.com").validate()


def test_litellm_is_imported_only_when_a_model_is_called(tmp_path: Path) -> None:
    script = f"""
import sys, trio
from node.home import Home
from node.config import Config
from node.core import open_core
from pathlib import Path
home = Home(Path({str(tmp_path / 'h')!r})); home.ensure()
home.save_config(Config(engine_mode="local_llm", engine_timeout_s=60.0,
                        engine_api_base="http://127.0.0.1:9"))
async def main():
    async with open_core(home) as core:
        r = await core.reflect("Work again, and I feel tired.")
        await core.understanding.patterns(); await core.understanding.tensions()
        assert "litellm" not in sys.modules, "imported before any model call"
        await core.mirror(r)
        assert "litellm" in sys.modules
import node.cli, node.cli.engine, node.llm.engine, node.engines
assert "litellm" not in sys.modules
trio.run(main)
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIRROR_", "LITELLM_"))}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
