"""A record folded from a journal its writer had not yet seen change is repaired.

Two processes on one home (here two cores on one file, each with its own
client id): one deletes or edits a reflection while the other, not yet
refreshed, folds a new reflection into a record whose evidence still quotes
the old words. Without repair the merge may keep those words live in the
record after the delete said they were gone (found by tests/test_multi_writer.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from crdt.export import readable_content
from crdt.insights import Scope
from node.core import MirrorCore, open_core
from node.engine.derive import Touched
from node.home import Home

GONE = "zqvarnothelm"


def home_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


async def live_text(core: MirrorCore) -> str:
    """Every document's content as this core holds it, as one string."""
    out = []
    for info in core.store.documents():
        stored = await core.store.open_doc(info.doc_id, kind=info.kind, create=False)
        out.append(json.dumps(readable_content(stored.doc.get_update())))
    return "\n".join(out)


async def test_a_stale_fold_after_a_delete_is_repaired_by_its_writer(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    async with open_core(home) as stale:
        gone = await stale.reflect(f"Work left me tired today, thinking of {GONE}.")
        async with open_core(home) as deleter:
            await deleter.delete(gone.id)
            assert GONE not in await live_text(deleter)
            # The stale core has not looked at the file since: its work record still
            # quotes the deleted reflection, and folding a new one writes it again.
            await stale.reflect("Work left me tired again.")
            assert GONE not in await live_text(stale)
            await deleter.store.refresh()
            assert GONE not in await live_text(deleter)
        assert GONE.encode() not in home_bytes(home.path)
    async with open_core(home, create=False) as fresh:
        assert GONE not in await live_text(fresh)
        assert [r.text for r in await fresh.journal.all()] == ["Work left me tired again."]


async def test_a_stale_fold_before_a_delete_is_repaired_by_the_deleter(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    async with open_core(home) as writer:
        gone = await writer.reflect(f"Work left me tired today, thinking of {GONE}.")
        async with open_core(home) as deleter:
            await deleter.store.refresh()
            # The deleter's delete and re-derivation are computed before it sees the
            # other core's newer fold, which quotes the reflection too.
            await writer.reflect("Work left me tired again.")
            await deleter.delete(gone.id)
            assert GONE not in await live_text(deleter)
            await writer.store.refresh()
            assert GONE not in await live_text(writer)
        assert GONE.encode() not in home_bytes(home.path)


async def test_an_edit_seen_late_is_repaired_and_the_index_follows(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    async with open_core(home) as stale:
        first = await stale.reflect(f"Work left me tired, thinking of {GONE}.")
        async with open_core(home) as editor:
            await editor.edit(first.id, text="Work left me calm.")
            await stale.reflect("Work left me tired again.")
            assert GONE not in await live_text(stale)
        assert GONE.encode() not in home_bytes(home.path)
        index = await stale.understanding.index()
        assert GONE not in (index.get(first.id) or "")


async def test_nothing_is_rewritten_when_the_evidence_holds(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    async with open_core(home) as core:
        await core.reflect("Work left me tired today.")
        await core.reflect("My mother called about work.")
        assert await core.understanding.repair_stale() is False
        everything = {scope: Touched() for scope in Scope}
        assert await core.understanding.repair_stale(everything) is False
