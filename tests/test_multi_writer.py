"""Several writer processes on one home: compaction verifies, reload equals live,
and what was deleted is gone from every file (issue 14, part 2).

The everyday case: the REPL open, ``mirror serve`` running, a ``mirror
reflect`` from a script — each a process with its own pycrdt client id,
writing the same journal shard. Each run starts N real writer processes
(``tests/journal_writer.py``: MirrorCore, as the CLI uses it) and drives them
through a seeded schedule: each round gives some of the idle writers a command
(reflect with a mirrorback, edit, delete, refresh, compact) and waits for a
seeded subset of the busy ones, so commands of different processes overlap
in ever different ways while the schedule itself is reproducible. Every edit
and delete carries a unique marker word out of the journal.

Checked every time:
- every command succeeds; a compaction never fails ("re-encoded state differs");
- a delete or edit that ran alone and reports a complete scrub has left its
  marker in no file of the home at that moment (database, WAL, logs, anything);
  one that overlapped other writers' commands may find a record one of them
  wrote from a journal it had not yet seen change: that writer repairs it
  when it looks again, so those markers are checked once all are idle;
- at the end every process's live documents (state vectors and content) equal
  what a fresh process loads, the journal equals the model, and no removed
  marker is in any live document;
- a final compaction and scrub succeed while the others stay open; after it no
  deleted marker is in any file and every kept one still is.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from node.core import open_core
from node.home import Home
from tests.helpers import REPO, mirror_env

WRITER_DEADLINE_S = 120
THEMES = ["work", "my mother", "sleep", "the garden", "money", "my friend", "running"]
FEELINGS = ["tired", "anxious", "calm", "hopeful", "angry", "grateful"]


def home_bytes(home: Path) -> bytes:
    """Every byte of every file in the home (the store, its WAL, logs, the rest)."""
    out = []
    for path in sorted(home.rglob("*")):
        if path.is_file():
            try:
                out.append(path.read_bytes())
            except FileNotFoundError:  # a WAL or lock file that just went away
                continue
    return b"".join(out)


class Writer:
    """One journal_writer process: send a command, read its one-line answer."""

    def __init__(self, process: trio.Process, name: str) -> None:
        self.process = process
        self.name = name
        self._buffer = b""
        self.busy: dict[str, Any] | None = None  # the command it is working on

    @classmethod
    async def start(cls, home: Path, name: str) -> Writer:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tests.journal_writer", str(home)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=mirror_env(home),
            cwd=REPO,
        )
        writer = cls(process, name)
        ready = await writer.answer()
        assert "ready" in ready, ready
        return writer

    async def send(self, command: dict[str, Any]) -> None:
        assert self.busy is None and self.process.stdin is not None
        self.busy = command
        await self.process.stdin.send_all(json.dumps(command).encode() + b"\n")

    async def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        with trio.fail_after(WRITER_DEADLINE_S):
            while b"\n" not in self._buffer:
                chunk = await self.process.stdout.receive_some(1 << 20)
                if not chunk:
                    raise AssertionError(f"{self.name} exited ({await self.process.wait()})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        self.busy = None
        data = json.loads(line)
        assert isinstance(data, dict)
        return data

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.send(command)
        return await self.answer()

    async def close(self) -> int:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        with trio.fail_after(WRITER_DEADLINE_S):
            return await self.process.wait()


@dataclass
class Model:
    """What the journal must hold: reflection id -> text, and the markers gone."""

    texts: dict[str, str] = field(default_factory=dict)
    markers: dict[str, str] = field(default_factory=dict)  # id -> its current marker
    gone: set[str] = field(default_factory=set)
    scrubs_complete: int = 0
    scrubs_incomplete: int = 0
    commands: int = 0


def marker(rng: random.Random) -> str:
    return "zq" + "".join(rng.choice("bcdfghjklmnprstvwxz") for _ in range(9))


def text_with(rng: random.Random, word: str) -> str:
    return (f"Today {rng.choice(THEMES)} left me {rng.choice(FEELINGS)}, "
            f"and I keep thinking about {word}.")


async def run_schedule(home: Path, seed: int, processes: int, rounds: int) -> Model:
    rng = random.Random(seed)
    model = Model()
    writers = [await Writer.start(home, f"writer-{i}") for i in range(processes)]
    in_flight: set[str] = set()  # reflections an unanswered command is about

    def settle(writer: Writer, command: dict[str, Any], answer: dict[str, Any]) -> None:
        model.commands += 1
        assert "error" not in answer, (writer.name, command, answer)
        op = command["op"]
        if op == "reflect":
            model.texts[answer["id"]] = command["text"]
            model.markers[answer["id"]] = command["marker"]
        elif op in ("edit", "delete"):
            rid = command["id"]
            in_flight.discard(rid)
            model.gone.add(model.markers.pop(rid))
            if op == "edit":
                model.texts[rid] = command["text"]
                model.markers[rid] = command["marker"]
            else:
                del model.texts[rid]
        if op in ("edit", "delete"):
            if answer["scrub"] == "complete":
                model.scrubs_complete += 1
                if command.get("alone"):
                    old = command["old_marker"].encode()
                    assert old not in home_bytes(home), (writer.name, command)
            else:
                model.scrubs_incomplete += 1
                assert "mirror scrub" in answer["scrub"]

    async def wait_for(writer: Writer) -> None:
        command = writer.busy
        assert command is not None
        settle(writer, command, await writer.answer())

    for _ in range(rounds):
        idle = [w for w in writers if w.busy is None]
        chosen = rng.sample(idle, rng.randint(1, len(idle)))
        for writer in chosen:
            settled = [rid for rid in model.texts if rid not in in_flight]
            roll = rng.random()
            if roll < 0.5 or not settled:
                word = marker(rng)
                command = {"op": "reflect", "text": text_with(rng, word), "marker": word}
            elif roll < 0.65:
                rid = rng.choice(settled)
                word = marker(rng)
                command = {"op": "edit", "id": rid, "text": text_with(rng, word),
                           "marker": word, "old_marker": model.markers[rid]}
                in_flight.add(rid)
            elif roll < 0.8:
                rid = rng.choice(settled)
                command = {"op": "delete", "id": rid, "old_marker": model.markers[rid]}
                in_flight.add(rid)
            elif roll < 0.9:
                command = {"op": "refresh"}
            else:
                command = {"op": "compact"}
            command["alone"] = len(chosen) == 1 and len(idle) == len(writers)
            await writer.send(command)
        busy = [w for w in writers if w.busy is not None]
        for writer in rng.sample(busy, rng.randint(1, len(busy))):
            await wait_for(writer)
    for writer in writers:
        if writer.busy is not None:
            await wait_for(writer)

    # Reload equals live: every process's documents equal a fresh load.
    states = [(await w.ask({"op": "state"}))["documents"] for w in writers]
    fresh = await Writer.start(home, "fresh")
    reloaded = (await fresh.ask({"op": "state"}))["documents"]
    for writer, state in zip(writers, states, strict=True):
        assert state == reloaded, f"{writer.name}'s live documents differ from a reload"
    journal = {}
    for doc_id, doc in reloaded.items():
        if doc_id.startswith("journal"):
            for rid, entry in doc["content"].get("reflections", {}).items():
                journal[rid] = entry["text"]
    assert journal == model.texts
    live = json.dumps(reloaded)
    assert [m for m in sorted(model.gone) if m in live] == []

    # Compaction verifies and a scrub completes while every other process is open.
    compacted = await writers[0].ask({"op": "compact"})
    assert "error" not in compacted, compacted
    assert (await writers[-1].ask({"op": "scrub"})) == {"scrub": "complete"}
    data = home_bytes(home)
    assert [m for m in sorted(model.gone) if m.encode() in data] == []
    assert [m for m in model.markers.values() if m.encode() not in data] == []
    after = [(await w.ask({"op": "state"}))["documents"] for w in [*writers, fresh]]
    assert all(state == reloaded for state in after)

    for writer in [*writers, fresh]:
        assert await writer.close() == 0
    return model


async def check_runs(tmp_path: Path, seeds: range, processes: int, rounds: int) -> None:
    for seed in seeds:
        home = tmp_path / f"home-{seed}"
        async with open_core(Home(home)):
            pass  # created once, before the writers race to open it
        model = await run_schedule(home, seed, processes, rounds)
        assert model.gone and model.texts  # the schedule deleted and kept something
        print(f"seed {seed}: {processes} processes, {rounds} rounds, {model.commands} "
              f"commands, {len(model.texts)} reflections kept, {len(model.gone)} markers "
              f"removed, scrubs complete/incomplete {model.scrubs_complete}/"
              f"{model.scrubs_incomplete}")
        async with open_core(Home(home), create=False) as core:
            kept = {r.id: r.text for r in await core.journal.all()}
        assert kept == model.texts


async def test_several_writer_processes_compact_reload_and_scrub(tmp_path: Path) -> None:
    await check_runs(tmp_path, range(2), processes=4, rounds=30)


@pytest.mark.slow
async def test_several_writer_processes_many_schedules(tmp_path: Path) -> None:
    await check_runs(tmp_path, range(100, 110), processes=6, rounds=80)
