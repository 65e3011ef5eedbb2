"""The application layer: every operation a person can do, typed, for every front end.

::

    front ends      node.cli (mirror …)   node.repl (the prompt)   node.ui (the browser)
                          \\                    |                     /
    application                     node.app.Mirror  (this package)
                                           |
    node services        node.core.MirrorCore · node.engine · node.sync · node.commons
                                           |
    data                        crdt (documents, the store)

Open one with :func:`open_mirror`; see :class:`Mirror` for the operations and
:mod:`node.app.results` for what they return.
"""

from __future__ import annotations

from ..core import Arrival
from .mirror import Mirror, open_mirror
from .results import (
    DeleteResult,
    Device,
    DeviceRemoval,
    DigestResult,
    EditResult,
    EvolveResult,
    ExportResult,
    JoinResult,
    MoodTimeline,
    PairingAttemptReport,
    PairingOffer,
    PairingResult,
    ReflectionList,
    RelatedResult,
    SafetyCheck,
    ScrubOutcome,
    SettingsView,
    ShareResult,
    Status,
    SyncStatus,
    WriteResult,
)

__all__ = [
    "Arrival",
    "DeleteResult",
    "Device",
    "DeviceRemoval",
    "DigestResult",
    "EditResult",
    "EvolveResult",
    "ExportResult",
    "JoinResult",
    "Mirror",
    "MoodTimeline",
    "PairingAttemptReport",
    "PairingOffer",
    "PairingResult",
    "ReflectionList",
    "RelatedResult",
    "SafetyCheck",
    "ScrubOutcome",
    "SettingsView",
    "ShareResult",
    "Status",
    "SyncStatus",
    "WriteResult",
    "open_mirror",
]
