"""The Commons server: a node in a server role hosting public, author-signed documents.

- :mod:`commons_server.hub` — what is accepted, kept, deleted and shown.
- :mod:`commons_server.hub_documents` — a protocol session: the node's SyncSession
  with the hub as its documents, over :mod:`commons_server.websocket`.
- :mod:`commons_server.app` — the ASGI app: protocol, web view, JSON API.
- :mod:`commons_server.index` — what the documents say, indexed in memory for pages.
- :mod:`commons_server.moderation` — tombstones, blocks, hides and the public log,
  in one local document.

Storage is the node's own DocStore (``mirror.db`` in the server's home): the
documents with the owner-signed envelopes they arrived in.
- :mod:`commons_server.server` — hypercorn's trio worker and ``mirror-commons``.

``spec/commons.md`` is the normative description.
"""
