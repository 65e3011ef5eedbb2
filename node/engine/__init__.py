"""Engines that write mirrorbacks.

- ``base``: the ``Engine`` protocol and ``MirrorbackRequest`` every engine takes.
- ``offline``: ``OfflineEngine`` and ``compose_mirrorback``, no model, no network.
- ``text``: ``analyze(text) -> Analysis`` — feelings, people, themes, keyphrases,
  tensions and questions, each with character spans as evidence.
- ``analysis``: ``Analysis`` and its parts (``Span``, ``Feeling``, ``Person``, ...).
- ``safety``: ``detect_crisis`` and ``crisis_reply``, run before any engine writes.
- ``recurrence``: what an entry shares with the recent past (``recurring_threads``).
- ``lexicon``: the English word lists in ``data/``, parsed once.

Importing this package imports none of them, so choosing an engine stays cheap.
"""
