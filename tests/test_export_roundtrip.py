"""Export then import into a fresh home reproduces every document, not only the texts."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crdt.export import export_json, export_markdown, readable_content
from crdt.importers import apply_plan, read_source
from node.core import open_core
from node.home import Home


async def _populate(home: Home) -> None:
    async with open_core(home) as core:
        first = await core.reflect("I keep choosing rest over the gym, and I feel guilty.",
                                   tags=["body"], at=datetime(2026, 1, 5, 9, tzinfo=UTC))
        await core.mirror(first)
        await core.reflect("Work again ate my evening; I said yes when I meant no.",
                           tags=["work"], at=datetime(2026, 2, 3, 21, tzinfo=UTC))
        private = await core.reflect("A private worry about my father.", private=True,
                                     at=datetime(2026, 2, 4, 8, tzinfo=UTC))
        await core.mirror(private)
        core.settings.set("favourite_colour", "green")
        await core.store.wait_durable()


async def _snapshot(home: Home) -> dict[str, tuple[str, str, dict[str, object]]]:
    async with open_core(home, create=False) as core:
        out = {}
        for info in core.store.documents():
            stored = await core.store.open_doc(info.doc_id, kind=info.kind, create=False)
            out[info.doc_id] = (info.kind, info.sync_class.value,
                                readable_content(stored.doc.get_update()))
        return out


async def test_export_then_import_reproduces_every_document(tmp_path: Path) -> None:
    source, fresh = Home(tmp_path / "a"), Home(tmp_path / "b")
    await _populate(source)
    async with open_core(source, create=False) as core:
        data = await export_json(core.store)
    kinds = {d["kind"] for d in data["documents"]}
    assert {"journal", "settings"} <= kinds and len(kinds) > 2  # derived documents too
    assert data["settings"]["favourite_colour"] == "green"
    assert sum(1 for r in data["reflections"] if r["mirrorback"]) == 2
    path = tmp_path / "all.json"
    path.write_text(json.dumps(data))

    async with open_core(fresh) as core:
        report = await apply_plan(core.store, read_source(path))
        assert report.imported == 3 and report.documents == len(data["documents"])
    before, after = await _snapshot(source), await _snapshot(fresh)
    assert after == before
    # every document's content equals the exported state, root by root
    for doc in data["documents"]:
        assert after[doc["doc_id"]][2] == readable_content(base64.b64decode(doc["state"]))

    async with open_core(fresh) as core:  # importing again changes nothing
        again = await apply_plan(core.store, read_source(path))
        assert again.imported == 0 and again.already_present == 3
    assert await _snapshot(fresh) == before


async def test_import_keeps_private_shards_local(tmp_path: Path) -> None:
    source = Home(tmp_path / "a")
    await _populate(source)
    async with open_core(source, create=False) as core:
        data = await export_json(core.store)
    tampered = set()
    for doc in data["documents"]:
        if doc["doc_id"].startswith(("journal-private/", "local/")):
            doc["sync_class"] = "commons"  # a tampered file must not widen them
            tampered.add(doc["doc_id"])
    assert any(d.startswith("journal-private/") for d in tampered), tampered
    path = tmp_path / "all.json"
    path.write_text(json.dumps(data))
    fresh = Home(tmp_path / "b")
    async with open_core(fresh) as core:
        await apply_plan(core.store, read_source(path))
        classes = {info.doc_id: info.sync_class.value for info in core.store.documents()}
    assert tampered <= classes.keys()
    assert {classes[doc_id] for doc_id in tampered} == {"local"}


async def test_markdown_export_is_one_readable_file_per_month(tmp_path: Path) -> None:
    home = Home(tmp_path / "a")
    await _populate(home)
    async with open_core(home, create=False) as core:
        files = await export_markdown(core.store)
    assert sorted(files) == ["2026-01.md", "2026-02.md"]
    assert "rest over the gym" in files["2026-01.md"] and "**Mirrorback**" in files["2026-01.md"]
    assert "private" in files["2026-02.md"]


def test_cli_export_json_then_import_in_a_new_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from node.cli.main import main

    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "x.json"
    assert main(["--home", str(a), "reflect", "--no-mirrorback", "--tag", "t", "one"]) == 0
    assert main(["--home", str(a), "export", "--format", "json", str(out)]) == 0
    assert main(["--home", str(b), "import", str(out)]) == 0
    capsys.readouterr()
    assert main(["--home", str(b), "list", "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)
    assert (item["text"], item["tags"]) == ("one", ["t"])
