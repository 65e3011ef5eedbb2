"""T1: three nodes converge whatever the network does (TESTPLAN T1).

Hypothesis draws a history of operations — edits, delivering frames out of
order, duplicating and dropping them, partitions, heals, restarts from SQLite —
and plays it on three nodes that run the real sans-IO protocol objects over
real document stores, connected by an in-memory network
(``queues[(src, dst)]: list[bytes]``). A session that sees a frame replayed,
reordered or missing fails its AEAD check and is torn down, exactly as a node
would; the next heal reconnects it. After the history, every link is healed and
probed with heartbeats until quiet: all nodes must then hold identical
documents, and every edit that was acknowledged (durable) must be there
(Jepsen's set test).

The fast profile (CI) runs a few dozen histories; ``-m slow`` runs many more.
"""

from __future__ import annotations

import itertools
import random
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

from crdt import DocStore, StoredDoc, SyncClass, UpdateSource, open_store
from protocol import (
    INITIATOR,
    NEED_DATA,
    RESPONDER,
    Catalogue,
    CatalogueEntry,
    CatalogueReceived,
    Connection,
    Credentials,
    DeltaRequest,
    HandshakeComplete,
    Heartbeat,
    ProtocolError,
    StateVector,
    StateVectorReceived,
    Update,
    state_vector_digest,
)

NODES = 3
DOCS = ("journal/2026-01", "journal/2026-02")
GROUP_SECRET = bytes(range(32))
EMPTY_SV = Doc().get_state()

Op = tuple[str, int, int]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, NODES - 1), st.integers(0, len(DOCS) - 1)),
        st.tuples(st.just("deliver"), st.integers(0, 5), st.integers(0, 7)),
        st.tuples(st.just("duplicate"), st.integers(0, 5), st.integers(0, 7)),
        st.tuples(st.just("drop"), st.integers(0, 5), st.integers(0, 7)),
        st.tuples(st.just("partition"), st.integers(0, NODES - 1), st.just(0)),
        st.tuples(st.just("heal"), st.just(0), st.just(0)),
        st.tuples(st.just("restart"), st.integers(0, NODES - 1), st.just(0)),
        st.tuples(st.just("flush"), st.just(0), st.just(0)),
    ),
    max_size=60,
)
PAIRS = [(i, j) for i in range(NODES) for j in range(NODES) if i != j]


@dataclass
class Link:
    """A session between two nodes: a Connection on each side."""

    a: int
    b: int
    conns: dict[int, Connection]
    origin: dict[int, str]
    catalogued: set[int] = field(default_factory=set)


class Network:
    def __init__(self, tmp: Path, seed: int) -> None:
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.seeds = [self.rng.randbytes(32) for _ in range(NODES)]
        self.creds: list[Credentials] = []
        keys = []
        for seed_bytes in self.seeds:
            c = Credentials(seed_bytes, GROUP_SECRET, 0, set())
            keys.append(c.device_key)
        known = frozenset(keys)
        self.creds = [Credentials(s, GROUP_SECRET, 0, known) for s in self.seeds]
        self.stores: list[DocStore | None] = [None] * NODES
        self.stacks: list[AsyncExitStack | None] = [None] * NODES
        self.links: dict[tuple[int, int], Link] = {}
        self.queues: dict[tuple[int, int], list[bytes]] = {p: [] for p in PAIRS}
        self.acknowledged: set[str] = set()
        self.counter = itertools.count()
        self.down: set[int] = set()  # nodes cut off by a partition

    # ---------------------------------------------------------------- nodes

    async def start(self, i: int) -> None:
        stack = AsyncExitStack()
        store = await stack.enter_async_context(
            open_store(self.tmp / f"node{i}.db", compact_after_updates=8)
        )
        for doc_id in DOCS:
            await store.open_doc(doc_id, kind="journal", sync_class=SyncClass.DEVICES)
        store.add_listener(
            lambda stored, update, source, i=i: self.forward(i, stored, update, source)
        )
        self.stores[i], self.stacks[i] = store, stack

    async def stop(self, i: int) -> None:
        for key in [k for k in self.links if i in k]:
            self.cut(key)
        stack = self.stacks[i]
        assert stack is not None
        await stack.aclose()
        self.stores[i] = self.stacks[i] = None

    def store(self, i: int) -> DocStore:
        store = self.stores[i]
        assert store is not None
        return store

    async def edit(self, i: int, d: int) -> None:
        store = self.store(i)
        stored = store.loaded(DOCS[d])
        assert stored is not None
        value = f"n{i}-e{next(self.counter)}"
        stored.doc.get("reflections", type=Map)[value] = value
        await store.wait_durable()
        self.acknowledged.add(value)

    # ---------------------------------------------------------------- links

    def connect(self, a: int, b: int) -> None:
        key = (min(a, b), max(a, b))
        if key in self.links or a in self.down or b in self.down:
            return
        lo, hi = key
        link = Link(
            lo,
            hi,
            {
                lo: Connection(INITIATOR, self.creds[lo], self.rng.randbytes),
                hi: Connection(RESPONDER, self.creds[hi], self.rng.randbytes),
            },
            {n: f"link:{lo}-{hi}@{n}:{self.rng.random()}" for n in key},
        )
        self.links[key] = link
        self.queues[(lo, hi)].clear()
        self.queues[(hi, lo)].clear()
        self.emit(lo, hi, link.conns[lo].data_to_send())

    def cut(self, key: tuple[int, int]) -> None:
        self.links.pop(key, None)
        self.queues[key].clear()
        self.queues[(key[1], key[0])].clear()

    def emit(self, src: int, dst: int, data: bytes) -> None:
        if data:
            self.queues[(src, dst)].append(data)

    def forward(self, i: int, stored: StoredDoc, update: bytes, source: UpdateSource) -> None:
        """Live updates: every committed change goes to every open link but its source."""
        for key, link in list(self.links.items()):
            # before our catalogue went out, the catalogue exchange carries the change
            if i not in key or i not in link.catalogued:
                continue
            if source == UpdateSource.of(link.origin[i]):
                continue  # never echo a change back to the link it came from
            other = key[0] if key[1] == i else key[1]
            try:
                self.emit(i, other, link.conns[i].send(Update(stored.doc_id, "devices", update)))
            except ProtocolError:
                self.cut(key)

    async def deliver(self, src: int, dst: int, index: int) -> None:
        queue = self.queues[(src, dst)]
        if not queue:
            return
        data = queue.pop(index % len(queue))
        key = (min(src, dst), max(src, dst))
        link = self.links.get(key)
        if link is None:
            return
        conn = link.conns[dst]
        try:
            conn.receive_data(data)
            while (event := conn.next_event()) is not NEED_DATA:
                await self.handle(dst, src, link, event)
            self.emit(dst, src, conn.data_to_send())
        except ProtocolError:
            self.cut(key)  # as a node would: drop the session, reconnect later

    async def handle(self, me: int, peer: int, link: Link, event: Any) -> None:
        conn = link.conns[me]
        store = self.store(me)
        if isinstance(event, HandshakeComplete):
            entries = []
            for doc_id in DOCS:
                stored = store.loaded(doc_id)
                assert stored is not None
                digest = state_vector_digest(stored.doc.get_state())
                entries.append(CatalogueEntry(doc_id, "devices", digest))
            link.catalogued.add(me)
            self.emit(me, peer, conn.send(Catalogue(tuple(entries))))
        elif isinstance(event, CatalogueReceived):
            items = []
            for doc_id in event.differing:
                stored = store.loaded(doc_id)
                sv = stored.doc.get_state() if stored else EMPTY_SV
                items.append(StateVector(doc_id, "devices", sv))
            self.emit(me, peer, conn.send(DeltaRequest(tuple(items))))
        elif isinstance(event, StateVectorReceived):
            stored = store.loaded(event.doc_id)
            assert stored is not None
            delta = stored.doc.get_update(event.state_vector)
            self.emit(me, peer, conn.send(Update(event.doc_id, "devices", delta)))
        elif isinstance(event, Update):
            stored = store.loaded(event.doc_id)
            assert stored is not None
            with stored.doc.transaction(origin=link.origin[me]):
                stored.doc.apply_update(event.update)
            await store.wait_durable()

    # ---------------------------------------------------------------- ops

    async def run(self, op: Op) -> None:
        kind, x, y = op
        if kind == "edit":
            await self.edit(x, y)
        elif kind in {"deliver", "duplicate", "drop"}:
            src, dst = PAIRS[x % len(PAIRS)]
            queue = self.queues[(src, dst)]
            if not queue:
                return
            if kind == "deliver":
                await self.deliver(src, dst, y)
            elif kind == "duplicate":
                queue.insert(y % (len(queue) + 1), queue[y % len(queue)])
            else:
                queue.pop(y % len(queue))
        elif kind == "partition":
            self.down.add(x)
            for key in [k for k in self.links if x in k]:
                self.cut(key)
        elif kind == "heal":
            self.down.clear()
            for a, b in PAIRS:
                self.connect(a, b)
        elif kind == "restart":
            await self.stop(x)
            await self.start(x)
        elif kind == "flush":
            await self.quiesce(probe=False)

    async def quiesce(self, *, probe: bool) -> None:
        """Deliver everything in order until no frame is left (bounded).

        With *probe*, also reconnect missing links and send each live session a
        heartbeat, as a node's keeper would: a frame lost earlier shows up as a
        failed AEAD check on the heartbeat, and that session is redone.
        """
        for _ in range(50):
            await self.drain()
            if not probe:
                return
            missing = [(a, b) for a, b in PAIRS if (min(a, b), max(a, b)) not in self.links]
            if missing:
                for a, b in missing:
                    self.connect(a, b)
                continue
            links_before = dict(self.links)
            for key, link in list(self.links.items()):
                for me in key:
                    other = key[0] if key[1] == me else key[1]
                    try:
                        self.emit(me, other, link.conns[me].send(Heartbeat(next(self.counter) + 1)))
                    except ProtocolError:
                        self.cut(key)
            await self.drain()
            if self.links == links_before:
                return
        raise AssertionError("the network did not quiesce")

    async def drain(self) -> None:
        for _ in range(10_000):
            busy = [pair for pair in PAIRS if self.queues[pair]]
            if not busy:
                return
            for pair in busy:
                await self.deliver(*pair, 0)
        raise AssertionError("frames keep coming")

    def contents(self, i: int) -> dict[str, Any]:
        store = self.store(i)
        out = {}
        for doc_id in DOCS:
            stored = store.loaded(doc_id)
            assert stored is not None
            out[doc_id] = stored.doc.get("reflections", type=Map).to_py() or {}
        return out


async def play(ops: list[Op], seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        net = Network(Path(tmp), seed)
        for i in range(NODES):
            await net.start(i)
        try:
            for op in ops:
                await net.run(op)
            await net.run(("heal", 0, 0))
            await net.quiesce(probe=True)
            await net.quiesce(probe=True)
            first = net.contents(0)
            for i in range(1, NODES):
                assert net.contents(i) == first, f"node {i} differs from node 0"
            present = {v for doc in first.values() for v in doc}
            assert net.acknowledged <= present, f"lost: {sorted(net.acknowledged - present)}"
            # and it all survives a restart from SQLite
            await net.stop(0)
            await net.start(0)
            assert net.contents(0) == first
        finally:
            for i in range(NODES):
                if net.stores[i] is not None:
                    await net.stop(i)


@given(ops=OPS, seed=st.integers(0, 2**32 - 1))
async def test_nodes_converge_and_keep_every_acknowledged_edit(ops: list[Op], seed: int) -> None:
    await play(ops, seed)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(ops=OPS, seed=st.integers(0, 2**32 - 1))
async def test_nodes_converge_long(ops: list[Op], seed: int) -> None:
    await play(ops, seed)


async def test_a_known_hard_history() -> None:
    """Edits during a partition, reordered and duplicated frames, a restart mid-way."""
    ops: list[Op] = [
        ("heal", 0, 0), ("edit", 0, 0), ("deliver", 0, 1), ("deliver", 1, 0),
        ("duplicate", 0, 0), ("partition", 2, 0), ("edit", 2, 1), ("edit", 1, 0),
        ("deliver", 2, 3), ("drop", 1, 0), ("restart", 1, 0), ("edit", 1, 1),
        ("heal", 0, 0), ("deliver", 3, 1), ("edit", 0, 1), ("flush", 0, 0),
    ]
    await play(ops, seed=1)
