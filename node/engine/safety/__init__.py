"""The crisis net: risk of suicide, self-harm and harm from others, found offline.

Every engine runs this first, before any mirrorback is written (``offline``,
``node/llm/engine.py``), and its reply wins.

- ``normalize``: writing as people type it → a token stream (typos, contractions).
- ``rules``: the pattern language and the shipped rules (``rules.json``,
  ``concepts.json``), compiled once.
- ``detect``: :func:`assess` — every finding in context (negation, idiom,
  hypothetical, media, accident, past) and the strongest one.
- ``helplines``: crisis lines by country (``helplines.json``).
- ``reply``: the words a person at risk reads.
"""

from __future__ import annotations

from .detect import Assessment, Finding, assess
from .reply import CrisisSignal, crisis_reply, detect_crisis
from .rules import Tier

__all__ = ["Assessment", "CrisisSignal", "Finding", "Tier", "assess", "crisis_reply",
           "detect_crisis"]
