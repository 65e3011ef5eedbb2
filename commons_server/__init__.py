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

Errors (each carries the HTTP ``status`` it is answered with, where it has one;
the apps turn them into ``serving.HttpError`` at the edge)::

    Exception
    ├── Refused                 (hub) a well-formed request not allowed: 403
    │   ├── RateLimited         over an author's or address's rate: 429
    │   ├── Blocked             the author is blocked by the operator
    │   ├── Gone                withdrawn (or its thread was): 410
    │   └── NotOperator         a moderation request not signed by the operator
    ├── SetupError              (server) the server cannot start
    ├── StoreRefusal            (blind.storage) a request the blind store refuses: 400
    │   ├── QuotaExceeded       over a log's, group's or the store's quota: 507
    │   ├── SnapshotConflict    a snapshot not covering what the log holds: 409
    │   ├── CursorAhead         a pull after what the log has reached: 409
    │   └── LogRetired          the group moved to a newer epoch: 410
    ├── StoreFileError          (blind.storage) not a blind store this code reads
    ├── QuotaRefusal            (blind.quotas) growth refused by a quota: 507
    └── BudgetTimeout           (blind.budget) a request waited too long for its bytes

Commons document errors (``crdt.commons.CommonsError``), store errors
(``crdt.StoreError``) and protocol errors come from the layers below.
"""
