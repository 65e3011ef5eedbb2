"""What a node does with the Commons: what it keeps (author keys, known servers, the
consent ledger, the cache: :mod:`.home`) and how it syncs with a server (:mod:`.sync`).
The document kinds themselves are portable data, in ``crdt.commons``."""
