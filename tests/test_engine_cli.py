"""The engine's commands through the real ``mirror`` program and the REPL's dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

from node.app import Mirror
from node.core import open_core
from node.home import Home
from node.repl.commands import run_view
from tests.helpers import run_mirror

ENTRIES = [
    "Money is tight. I keep tracking every cent in a spreadsheet, but the rent eats everything.",
    "My boss moved the deadline again and I feel anxious.",
    "I want to see my friends tonight, but I need to rest.",
]


def test_engine_commands_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for day in range(1, 4):
        for text in ENTRIES:
            out = run_mirror(home, "reflect", "--no-mirrorback", "--at", f"2026-03-0{day}", text)
            assert out.returncode == 0, out.stderr
    patterns = json.loads(run_mirror(home, "patterns", "--json").stdout)
    assert {"theme:money", "person:my boss"} <= {p["key"] for p in patterns}
    tensions = run_mirror(home, "tensions").stdout
    assert "scarcity vs control" in tensions and "rest vs connection" in tensions
    graph = run_mirror(home, "graph").stdout
    assert graph.startswith("you\n") and "├─ themes" in graph
    assert run_mirror(home, "graph", "rename", "money", "cash").returncode == 0
    assert "cash" in run_mirror(home, "graph").stdout
    bad = run_mirror(home, "graph", "delete", "no-such-node")
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "no node" in bad.stderr
    evolve = run_mirror(home, "evolve", "--since", "2026-03-02", "--json")
    note = json.loads(evolve.stdout)
    assert (note["reflections"], note["previous_reflections"]) == (6, 3) and note["text"]
    listed = json.loads(run_mirror(home, "list", "--json").stdout)
    rid = next(r["id"] for r in listed if r["text"] == ENTRIES[-1])
    related = json.loads(run_mirror(home, "related", rid[:6], "--json").stdout)
    assert related and related[0]["text"] == ENTRIES[-1] and related[0]["id"] != rid
    out = run_mirror(home, "engine", "local", "--model", "ollama_chat/tiny",
                     "--api-base", "http://127.0.0.1:9")
    assert out.returncode == 0 and "ollama_chat/tiny" in out.stdout
    out = run_mirror(home, "engine", "local", "--api-base", "https://api.example.com")
    assert out.returncode != 0 and "LAN" in out.stderr
    assert "engine: offline" in run_mirror(home, "engine", "offline").stdout
    assert "learned again from 9" in run_mirror(home, "reindex").stdout


async def test_repl_commands_render_the_same_views(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    async with open_core(home) as core:
        for text in ENTRIES * 3:
            await core.reflect(text)
        assert "Loops" in await run_view(Mirror(core), "patterns", "")
        assert "scarcity vs control" in await run_view(Mirror(core), "tensions", "")
        assert (await run_view(Mirror(core), "graph", "")).startswith("you")
        assert "Related to" in await run_view(Mirror(core), "related", "")
        assert "From " in await run_view(Mirror(core), "evolve", "")
        assert "engine: offline" in await run_view(Mirror(core), "engine", "")
