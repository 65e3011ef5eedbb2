"""Measuring the crisis net on a labelled set: recall on risk lines, false alarms on the rest.

A *row* is ``{"label": "risk" | "none", "kind": str, "text": str}``. A risk line is
found when the net answers it with either tier (a crisis reply or a check-in);
a line labelled ``none`` is a false alarm when it gets either. The figures are
published in docs/safety.md (``bench/safety.py`` prints them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .detect import assess


@dataclass(frozen=True)
class Miss:
    label: str
    kind: str
    text: str
    got: str  # "crisis", "check_in" or "none"
    rule: str = ""


@dataclass(frozen=True)
class Scores:
    risk_lines: int
    found: int
    found_as_crisis: int
    negative_lines: int
    false_alarms: int
    by_kind: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (right, all)
    misses: tuple[Miss, ...] = ()

    @property
    def recall(self) -> float:
        return self.found / self.risk_lines if self.risk_lines else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.negative_lines if self.negative_lines else 0.0


def load_rows(path: Path) -> list[dict[str, str]]:
    rows = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in ("risk", "none") or not isinstance(row.get("text"), str):
            raise ValueError(f"{path}:{n}: a row needs label risk|none and a text")
        rows.append(row)
    return rows


def score(rows: Iterable[Mapping[str, str]]) -> Scores:
    risk = found = crisis = negatives = alarms = 0
    by_kind: dict[str, list[int]] = {}
    misses: list[Miss] = []
    for row in rows:
        top = assess(row["text"]).top
        got = top.tier if top is not None else "none"
        right = (got != "none") == (row["label"] == "risk")
        tally = by_kind.setdefault(f"{row['label']}:{row.get('kind', '')}", [0, 0])
        tally[0] += right
        tally[1] += 1
        if row["label"] == "risk":
            risk += 1
            found += got != "none"
            crisis += got == "crisis"
        else:
            negatives += 1
            alarms += got != "none"
        if not right:
            misses.append(Miss(row["label"], row.get("kind", ""), row["text"], got,
                               top.rule if top is not None else ""))
    return Scores(risk, found, crisis, negatives, alarms,
                  {k: (v[0], v[1]) for k, v in sorted(by_kind.items())}, tuple(misses))
