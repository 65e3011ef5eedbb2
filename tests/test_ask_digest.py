"""Asking the journal and the digest: offline, and with a model through the real litellm
client against the fake model server on 127.0.0.1 (tests/helpers_llm.py).

What is held: an answer quotes only what the reflections say and cites ids that
exist; a model's answer that cites an id it was not given, or quotes words a
reflection does not hold, is not shown; a private reflection never reaches a
model that is not on this machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from crdt.journal import Reflection
from node.app import Mirror
from node.app.insight import answer_question
from node.app.insight import digest_of as digest_result
from node.config import Config
from node.core import MirrorCore, open_core
from node.engine.ask import read_question, verify_citations
from node.engine.digest import Period
from node.home import Home
from node.llm.client import LLMTarget, may_read_private
from node.llm.keys import ENV_KEY
from node.repl.commands import run_view
from node.views.insight import render_digest
from tests.helpers import run_mirror
from tests.helpers_llm import FakeLLM, fake_llm
from tests.persona_eval import load_personas

DEADLINE_S = 30
NOW = datetime(2026, 4, 29, 12, tzinfo=UTC)
CANARY = "Quillfeather"
ADVICE = re.compile(r"\byou should\b|\btry to\b|\bi recommend\b|\bconsider\b|\bmake sure\b",
                    re.IGNORECASE)


async def digest_of(core: MirrorCore, period: Period = "week", *, until: datetime | None = None
                    ) -> tuple[str, dict[str, Any]]:
    """(text, data) as the command shows and prints them."""
    result = await digest_result(core, period, until=until)
    return render_digest(result), result.data


def priya() -> list[Reflection]:
    return list(next(p for p in load_personas() if p.name == "priya").reflections)


async def _core(home: Home, config: Config | None = None) -> AsyncIterator[MirrorCore]:
    home.ensure()
    if config is not None:
        home.save_config(config)
    async with open_core(home) as core:
        await core.journal.add_many(priya())
        await core.journal.add_many([Reflection(
            "privatecanary", datetime(2026, 4, 26, 21, tzinfo=UTC),
            f"{CANARY} and I walked by the sea. I felt calm, properly calm, for once.",
            private=True)])
        await core.understanding.rebuild()
        yield core


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[MirrorCore]:
    async for c in _core(Home(tmp_path / "home")):
        yield c


def _quotes_hold(answer: Any, reflections: dict[str, Reflection]) -> None:
    for c in answer.citations:
        assert c.rid in reflections, c
        quote = c.quote.rstrip("…")
        assert " ".join(quote.split()) in " ".join(reflections[c.rid].text.split()), c


async def _all(core: MirrorCore) -> dict[str, Reflection]:
    return {r.id: r for r in await core.journal.all()}


# --------------------------------------------------------------------------- reading


def test_the_question_is_read() -> None:
    q = read_question("When did I last feel calm?", now=NOW)
    assert (q.moment, q.feelings, q.feeling_words) == ("last", ("calm",), ("calm",))
    q = read_question("how often did I feel guilty in March?", now=NOW)
    assert q.moment == "count" and q.feelings == ("shame",)
    assert q.since == datetime(2026, 3, 1, tzinfo=UTC) and q.until == datetime(2026, 4, 1,
                                                                                tzinfo=UTC)
    q = read_question("When did I first write about Leah?", now=NOW)
    assert q.moment == "first" and q.people == ("leah",)
    q = read_question("what was on my mind last week", now=NOW)
    assert q.moment == "any" and q.since == datetime(2026, 4, 22, tzinfo=UTC)
    q = read_question("How did I feel in March?", now=NOW)
    assert q.any_feeling and q.feelings == ()


# --------------------------------------------------------------------------- offline


async def test_when_did_i_last_feel_calm_finds_the_newest_calm_reflection(
    core: MirrorCore,
) -> None:
    answer = await answer_question(core, "when did I last feel calm?", now=NOW)
    assert answer.method == "offline" and answer.citations
    first = answer.citations[0]
    assert first.rid == "privatecanary" and first.private  # this device's own journal
    assert "privateca"[:8] in answer.text and "🔒" in answer.text
    _quotes_hold(answer, await _all(core))
    dates = [c.created_at for c in answer.citations]
    assert dates == sorted(dates, reverse=True)


async def test_a_count_and_a_period(core: MirrorCore) -> None:
    answer = await answer_question(core, "how often did I say yes to Carol?", now=NOW)
    assert answer.citations and "Carol" in " ".join(c.quote for c in answer.citations)
    march = await answer_question(core, "how did I feel in March?", now=NOW)
    assert march.citations
    assert all(c.created_at.month == 3 for c in march.citations)
    _quotes_hold(march, await _all(core))


async def test_words_the_journal_never_uses_get_an_honest_nothing(core: MirrorCore) -> None:
    answer = await answer_question(core, "what do I think about quantum chromodynamics?",
                                   now=NOW)
    assert answer.citations == () and "Nothing in your journal" in answer.text


async def test_a_general_question_is_answered_from_the_most_relevant_reflections(
    core: MirrorCore,
) -> None:
    answer = await answer_question(core, "what did I write about the stairlift and money?",
                                   now=NOW)
    assert "stairlift" in answer.citations[0].quote
    assert not ADVICE.search(answer.text)


# --------------------------------------------------------------------------- citations


def test_citations_are_checked() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    given = {"abcdefgh2345": Reflection("abcdefgh2345", t, "I felt calm by the river."),
             "mnpqrstv6789": Reflection("mnpqrstv6789", t, "Work again, so tired.")}
    ok = verify_citations("You felt “calm by the river” [abcdefgh2345]. Then “so tired” "
                          "[mnpqrstv].", given)
    assert ok.ok and ok.cited == ("abcdefgh2345", "mnpqrstv6789")
    assert not verify_citations("You felt calm [zzzzzzzzzzzz].", given).ok
    assert not verify_citations("[abcdefgh2345] “calm by the lake”.", given).ok
    assert not verify_citations("You wrote “so tired”.", given).ok  # a quote with no id
    assert not verify_citations("You were calm.", given).ok  # nothing cited
    assert not verify_citations("[abc] you were calm", given).ok  # too short to be an id


def test_only_a_model_on_this_machine_may_read_private_reflections() -> None:
    assert may_read_private(LLMTarget("ollama_chat/tiny", "http://127.0.0.1:11434"))
    assert may_read_private(LLMTarget("ollama_chat/tiny", "http://localhost:11434"))
    assert may_read_private(LLMTarget("ollama_chat/tiny", "http://[::1]:11434"))
    assert not may_read_private(LLMTarget("ollama_chat/tiny", "http://192.168.1.20:11434"))
    assert not may_read_private(LLMTarget("openai/tiny", "http://127.0.0.1:9/v1", remote=True))
    assert not may_read_private(LLMTarget("openai/gpt-4o-mini", "", remote=True))


# --------------------------------------------------------------------------- with a model


def _prompt(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []))


def grounded_reply(body: dict[str, Any]) -> str:
    """A model that answers from the first reflection it was given, quoting it exactly."""
    m = re.search(r"\[([0-9a-z]{12})\] \(\d{4}-\d\d-\d\d\)\n([^.!?\n]+)", _prompt(body))
    if not m:
        return "None of these reflections answer that."
    return f"You wrote “{m.group(2).strip()}” [{m.group(1)}]."


def _local(fake: FakeLLM) -> Config:
    return Config(engine_mode="local_llm", engine_model="ollama_chat/tiny",
                  engine_api_base=fake.base, engine_timeout_s=5.0)


async def test_a_model_answer_is_used_when_its_citations_hold(tmp_path: Path) -> None:
    with fake_llm(reply=grounded_reply) as fake:
        async for core in _core(Home(tmp_path / "home"), _local(fake)):
            with trio.fail_after(DEADLINE_S):
                answer = await answer_question(core, "when did I last feel calm?", now=NOW)
            reflections = await _all(core)
    assert answer.method == "model" and answer.note == ""
    assert answer.citations and answer.citations[0].rid in answer.text
    _quotes_hold(answer, reflections)
    # a model on 127.0.0.1 is on this machine: it may read the private reflection
    assert CANARY in _prompt(fake.chats()[0].body)


@pytest.mark.parametrize("reply", [
    "You felt calm by the sea [zzzzzzzzzzzz].",  # an id it was not given
    "You wrote “I felt serene and whole” [privatecanary].",  # words no reflection holds
    "You felt calm, I think.",  # nothing cited
])
async def test_a_model_answer_that_does_not_hold_is_not_shown(
    tmp_path: Path, reply: str
) -> None:
    with fake_llm(reply=reply) as fake:
        async for core in _core(Home(tmp_path / "home"), _local(fake)):
            with trio.fail_after(DEADLINE_S):
                answer = await answer_question(core, "when did I last feel calm?", now=NOW)
                offline = await core.understanding.ask("when did I last feel calm?", now=NOW)
    assert answer.method == "offline" and "was not used" in answer.note
    assert reply not in answer.text
    assert answer.citations == offline.citations


async def test_a_remote_model_never_sees_a_private_reflection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, "sk-test-key-0000")
    with fake_llm(reply=grounded_reply) as fake:
        config = Config(mirror_mode="cloud", engine_mode="remote_llm",
                        engine_model="openai/tiny", engine_api_base=fake.base + "/v1",
                        engine_timeout_s=5.0)
        async for core in _core(Home(tmp_path / "home"), config):
            with trio.fail_after(DEADLINE_S):
                answer = await answer_question(core, "when did I last feel calm?", now=NOW)
                text, data = await digest_of(core, "week", until=NOW)
                only = await answer_question(core, f"when did I last see {CANARY}?", now=NOW)
    for request in fake.requests:
        assert CANARY not in json.dumps(request.body), request.path
    assert answer.method == "model" and answer.private_left_out == 1
    assert all(not c.private for c in answer.citations)
    assert CANARY.lower() not in json.dumps(data).lower() or data["method"] == "offline"
    assert only.method == "offline" and "private" in only.note  # nothing it may see


async def test_the_model_is_not_reachable_the_offline_answer_stands(tmp_path: Path) -> None:
    from tests.helpers_llm import unused_port

    config = Config(engine_mode="local_llm", engine_model="ollama_chat/tiny",
                    engine_api_base=f"http://127.0.0.1:{unused_port()}", engine_timeout_s=3.0)
    async for core in _core(Home(tmp_path / "home"), config):
        with trio.fail_after(DEADLINE_S):
            answer = await answer_question(core, "when did I last feel calm?", now=NOW)
    assert answer.method == "offline" and "did not answer" in answer.note
    assert answer.citations


# --------------------------------------------------------------------------- the digest


async def test_the_digest_of_a_week_and_a_month(core: MirrorCore) -> None:
    until = datetime(2026, 4, 29, tzinfo=UTC)
    week, data = await digest_of(core, "week", until=until)
    assert data["method"] == "offline" and data["reflections"] == 3  # two, and the private one
    month, mdata = await digest_of(core, "month", until=until)
    assert mdata["reflections"] > data["reflections"]
    ids = set(await _all(core))
    for d in (data, mdata):
        assert d["cites"] and set(d["cites"]) <= ids
        assert d["question"].endswith("?") and d["question"].count("?") == 1
        for group in ("themes", "feelings", "tensions", "loops"):
            for line in d[group]:
                assert line["cites"] and set(line["cites"]) <= ids
    assert "A question to sit with:" in week and "Themes:" in month
    assert mdata["tensions"] and all(t["note"] for t in mdata["tensions"])
    assert not ADVICE.search(week + month)
    empty, edata = await digest_of(core, "week", until=until + timedelta(days=60))
    assert edata["reflections"] == 0 and "Nothing written this week" in empty


def narrating(valid: bool) -> Any:
    def reply(body: dict[str, Any]) -> str:
        ids = re.findall(r"see ([0-9a-z]{8})", _prompt(body))
        if not valid:
            return "This week you wrote “I climbed a mountain” (zz99zz99)."
        return f"This week held a pull between staying and leaving ({ids[0]})."
    return reply


@pytest.mark.parametrize("valid", [True, False])
async def test_a_model_may_retell_the_digest_within_its_bounds(
    tmp_path: Path, valid: bool
) -> None:
    with fake_llm(reply=narrating(valid)) as fake:
        async for core in _core(Home(tmp_path / "home"), _local(fake)):
            with trio.fail_after(DEADLINE_S):
                text, data = await digest_of(core, "month", until=NOW)
    assert fake.chats()
    if valid:
        assert data["method"] == "model" and text.startswith("This week held a pull")
    else:
        assert data["method"] == "offline" and "was not used" in text
        assert "climbed a mountain" not in text and "Themes:" in text


# --------------------------------------------------------------------------- front ends


async def test_the_repl_asks_and_digests(core: MirrorCore) -> None:
    answered = await run_view(Mirror(core), "ask", "when did I last feel guilty?")
    assert "The last time you wrote about feeling guilty" in answered
    assert "Your month" in await run_view(Mirror(core), "digest", "month")  # up to now
    from node.errors import UsageError

    with pytest.raises(UsageError):
        await run_view(Mirror(core), "digest", "fortnight")
    with pytest.raises(UsageError):
        await run_view(Mirror(core), "ask", "   ")


def test_the_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for r in priya()[-6:]:
        out = run_mirror(home, "reflect", "--no-mirrorback", "--at", r.created_at.isoformat(),
                         r.text)
        assert out.returncode == 0, out.stderr
    out = run_mirror(home, "ask", "when", "did", "I", "last", "feel", "tired?", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["method"] == "offline" and data["citations"]
    assert "tired" in data["citations"][0]["quote"].lower()
    out = run_mirror(home, "digest", "--month", "--until", "2026-04-28")
    assert out.returncode == 0 and "Your month" in out.stdout, out.stderr
    bad = run_mirror(home, "ask", " ")
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "ask a question" in bad.stderr
    bad = run_mirror(home, "digest", "--week", "--month")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
