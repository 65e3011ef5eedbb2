"""Engines that write mirrorbacks.

- ``base``: the ``Engine`` protocol and ``MirrorbackRequest`` every engine takes.
- ``offline``: ``OfflineEngine`` and ``compose_mirrorback``, no model, no network.
- ``text``: ``analyze(text) -> Analysis`` — feelings, people, themes, keyphrases,
  tensions and questions, each with character spans as evidence.
- ``analysis``: ``Analysis`` and its parts (``Span``, ``Feeling``, ``Person``, ...).
- ``safety``: the crisis net — ``assess``/``detect_crisis`` (two tiers, in context) and
  ``crisis_reply`` with crisis lines by country; run before any engine writes.
- ``mood``: VADER valence per reflection (a line at risk never reads as good) and the
  weekly mood timeline.
- ``recurrence``: what an entry shares with the recent past (``recurring_threads``).
- ``lexicon``: the English word lists in ``data/``, parsed once.

Importing this package imports none of them, so choosing an engine stays cheap.
"""
