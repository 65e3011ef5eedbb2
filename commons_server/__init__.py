"""The Commons server: a node in a server role hosting public, author-signed documents.

- :mod:`commons_server.hub` — what is accepted, kept, deleted and shown.
- :mod:`commons_server.session` — the sync protocol over a WebSocket.
- :mod:`commons_server.app` — the ASGI app: protocol, web view, JSON API.
- :mod:`commons_server.store` — the SQLite database of signed envelopes.
- :mod:`commons_server.server` — hypercorn's trio worker and ``mirror-commons``.

``spec/commons.md`` is the normative description.
"""
