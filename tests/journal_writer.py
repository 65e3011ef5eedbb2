"""A writer process for the multi-writer tests: MirrorCore commands, one JSON line each.

Runs ``python -m tests.journal_writer HOME`` and reads commands on stdin
(``{"op": "reflect", "text": ...}``, ``edit``, ``delete``, ``refresh``,
``compact``, ``scrub``, ``state``), answering each with one JSON line on stdout
once it is done (durable: MirrorCore returns only after COMMIT). Edits and
deletes refresh first, as a one-shot ``mirror`` command would read the file
afresh. The same code paths as the CLI and the REPL: reflect with a
mirrorback, the engine learning and forgetting, the scrub after a delete.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import trio

from crdt import CompactionError, DocStore, StoreError
from crdt.export import readable_content
from crdt.update_check import state_vector
from node.core import MirrorCore, open_core
from node.errors import MirrorError, ScrubIncompleteError
from node.home import Home


async def dump(store: DocStore) -> dict[str, Any]:
    """Every document as this process holds it: state vector and readable content."""
    out: dict[str, Any] = {}
    for info in store.documents():
        stored = await store.open_doc(info.doc_id, kind=info.kind, create=False)
        clocks = state_vector(stored.doc.get_state())
        out[info.doc_id] = {
            "sv": {str(client): clock for client, clock in sorted(clocks.items())},
            "content": readable_content(stored.doc.get_update()),
        }
    return out


async def handle(core: MirrorCore, command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    store = core.store
    if op == "reflect":
        reflection = await core.reflect(command["text"])
        await core.mirror(reflection)
        return {"id": reflection.id}
    if op in ("edit", "delete", "scrub"):
        await store.refresh()
        try:
            if op == "edit":
                await core.edit(command["id"], text=command["text"])
            elif op == "delete":
                await core.delete(command["id"])
            else:
                await core.scrub()
        except ScrubIncompleteError as exc:
            return {"scrub": str(exc)}
        return {"scrub": "complete"}
    if op == "refresh":
        await store.refresh()
        return {}
    if op == "compact":
        await store.refresh()
        try:
            results = await store.compact()
        except CompactionError as exc:
            return {"error": f"compaction: {exc}"}
        return {"folded": sum(r.updates_folded for r in results)}
    if op == "state":
        await store.wait_durable()
        await store.refresh()
        return {"documents": await dump(store)}
    return {"error": f"unknown op {op!r}"}


async def main(home: Path) -> None:
    async with open_core(Home(home), create=False) as core:
        print(json.dumps({"ready": core.store.client_id}), flush=True)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            try:
                answer = await handle(core, json.loads(line))
            except (MirrorError, StoreError) as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
