"""Mood: VADER valence with negation and intensity, the weekly timeline, ``mirror mood``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from node.app import Mirror
from node.core import open_core
from node.engine.mood import MoodPoint, mood_sparkline, mood_weeks, valence_of
from node.engine.text import analyze
from node.home import Home
from node.repl.commands import run_view
from tests.helpers import run_mirror

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("I'm not happy.", "I'm happy."),
        ("I am hardly calm.", "I am calm."),
        ("I'm no longer hopeful.", "I'm hopeful."),
        ("I'm happy.", "I'm so, so happy!!!"),  # intensity
        ("I'm sad.", "I'm a little sad."),
        ("I'm so tired of being alive.", "I'm so tired after the hike."),
    ],
)
def test_valence_reads_negation_and_intensity(low: str, high: str) -> None:
    assert valence_of(low).score < valence_of(high).score


@pytest.mark.parametrize("text", ["not happy", "hardly calm", "I don't feel grateful at all"])
def test_negated_feelings_are_not_named(text: str) -> None:
    assert valence_of(text).score < 0
    assert not analyze(text).named_feelings


def test_weeks_are_bucketed_with_gaps_and_a_sparkline() -> None:
    points = [
        MoodPoint(T0, 0.8, feelings=("joy",)),
        MoodPoint(T0 + timedelta(days=1), 0.4, feelings=("joy", "calm")),
        MoodPoint(T0 + timedelta(days=15), -0.6, "check_in", ("sadness",)),
    ]
    weeks = mood_weeks(points, weeks=4)
    assert [w.reflections for w in weeks] == [0, 1 + 1, 0, 1]
    assert weeks[1].valence == pytest.approx(0.6) and weeks[1].lowest == pytest.approx(0.4)
    assert weeks[1].feelings[0] == "joy" and weeks[3].at_risk == 1
    line = mood_sparkline(weeks)
    assert len(line) == 4 and line[0] == line[2] == "·" and line[1] > line[3]
    assert weeks[1].week == "2026-W10" and weeks[1].start.isoformat() == "2026-03-02"
    assert mood_weeks([], weeks=4) == []


def test_mirror_mood_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "home"
    entries = [
        ("2026-03-02", "A lovely day, I feel proud and happy."),
        ("2026-03-03", "Really good walk with Sam, grateful."),
        ("2026-03-17", "I'm not happy. Everything went wrong."),
    ]
    for day, text in entries:
        out = run_mirror(home, "reflect", "--no-mirrorback", "--at", day, text)
        assert out.returncode == 0, out.stderr
    data = json.loads(run_mirror(home, "mood", "--weeks", "3", "--json").stdout)
    assert [w["week"] for w in data["weeks"]] == ["2026-W10", "2026-W11", "2026-W12"]
    assert [w["reflections"] for w in data["weeks"]] == [2, 0, 1]
    assert data["weeks"][0]["valence"] > 0 > data["weeks"][2]["valence"]
    assert data["sparkline"][1] == "·" and len(data["sparkline"]) == 3
    text = run_mirror(home, "mood", "--weeks", "3").stdout
    assert data["sparkline"] in text and "2026-W12" in text
    bad = run_mirror(home, "mood", "--weeks", "0")
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1
    shown = run_mirror(home, "config", "country", "new zealand")
    assert shown.returncode == 0 and "1737" in shown.stdout
    assert json.loads((home / "config.json").read_text())["country"] == "NZ"
    reply = run_mirror(home, "reflect", "i cant keep going anymore").stdout
    assert "1737" in reply and "Are you having thoughts of ending your life" in reply
    assert "US" in run_mirror(home, "config", "country", "--list").stdout
    bad = run_mirror(home, "config", "country", "atlantis")
    assert bad.returncode == 2 and "--list" in bad.stderr and bad.stderr.count("\n") == 1
    assert "not set" in run_mirror(home, "config", "country", "none").stdout


async def test_repl_mood_and_config(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    async with open_core(home) as core:
        assert "No mood yet" in await run_view(Mirror(core), "mood", "")
        await core.reflect("Calm, easy morning. I'm content.", at=T0)
        assert "2026-W10" in await run_view(Mirror(core), "mood", "4")
        shown = await run_view(Mirror(core), "config", "country IE")
        assert "Samaritans: 116 123" in shown and core.config.country == "IE"
        reflection = await core.reflect("i want to die")
        assert "116 123" in await core.mirror(reflection)  # the engine uses it at once
        assert "IE" in await run_view(Mirror(core), "config", "country --list")
