"""LLM extraction: the answer is hostile input — parsed, repaired, validated or rejected."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from crdt.journal import Reflection
from node.config import Config
from node.core import open_core
from node.engine.extract import extract
from node.home import Home
from node.llm.client import LLMTarget
from node.llm.extraction import MalformedAnswer, llm_extract, parse_answer, validate
from tests.helpers_llm import fake_llm

DEADLINE_S = 30
TEXT = "Money is tight. I keep tracking every cent, but the rent still eats everything."
R = Reflection("abcdabcdabcd", datetime(2026, 3, 1, tzinfo=UTC), TEXT)
GOOD = {
    "themes": [{"name": "Money", "quote": "Money is tight"}, "rent"],
    "values": [{"name": "security", "quote": "not in the text at all"}],
    "tensions": [{"a": "scarcity", "b": "control", "quote": "tracking every cent"}],
    "unknown": [1, 2, 3],
    "people": "not a list",
}


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps(GOOD),
        "Sure! Here it is:\n```json\n" + json.dumps(GOOD) + "\n```\nHope that helps.",
        "The findings are " + json.dumps(GOOD) + " as requested.",
        json.dumps(GOOD)[:-1] + ",}",  # a trailing comma, repaired
    ],
)
def test_answers_are_found_and_repaired(answer: str) -> None:
    assert parse_answer(answer)["themes"][1] == "rent"


@pytest.mark.parametrize("answer", ["", "no json here", "[1, 2]", "{unclosed", '{"a": }'])
def test_malformed_answers_are_rejected(answer: str) -> None:
    with pytest.raises(MalformedAnswer):
        parse_answer(answer)


def test_only_findings_that_quote_the_reflection_survive() -> None:
    items = {(i.kind, i.key): i for i in validate(GOOD, R)}
    assert set(items) == {("theme", "money"), ("theme", "rent"), ("tension", "scarcity vs control")}
    assert items[("theme", "rent")].evidence.quote == "rent"  # repaired: the name is in the text
    tension = items[("tension", "scarcity vs control")]
    assert tension.poles == ("scarcity", "control") and tension.evidence.rid == R.id
    assert TEXT[tension.evidence.start : tension.evidence.end] == "tracking every cent"


async def test_model_findings_are_added_to_the_offline_ones() -> None:
    answer = json.dumps({"values": [{"name": "security", "quote": "the rent"}]})
    with fake_llm(reply=answer) as fake:
        target = LLMTarget("ollama_chat/tiny", fake.base, timeout_s=10)
        with trio.fail_after(DEADLINE_S):
            x = await llm_extract(target, R, extract(R))
    assert x.source == "offline+llm"
    assert ("value", "security") in {(i.kind, i.key) for i in x.items}
    assert ("theme", "money") in {(i.kind, i.key) for i in x.items}  # offline kept
    assert fake.chats()[0].body.get("format") == "json" or "json" in str(fake.chats()[0].body)


async def test_a_model_answering_malformed_json_leaves_the_offline_findings(
    tmp_path: Path,
) -> None:
    def reply(body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        return "{not: valid json, [" if "JSON object" in system else "A mirrorback."

    home = Home(tmp_path / "home")
    home.ensure()
    with fake_llm(reply=reply) as fake:
        home.save_config(Config(engine_mode="local_llm", engine_model="ollama_chat/tiny",
                                engine_api_base=fake.base, engine_timeout_s=10.0,
                                engine_extraction="llm"))
        async with open_core(home) as core:
            with trio.fail_after(DEADLINE_S):
                await core.reflect(TEXT)
            patterns = await core.understanding.patterns(minimum=1)
    assert ("theme:money") in {p.key for p in patterns}
    assert any("JSON object" in r.body["messages"][0]["content"] for r in fake.chats())
