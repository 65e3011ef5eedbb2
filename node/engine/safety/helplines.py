"""Crisis lines by country: the table in ``helplines.json``, and the lines a reply shows.

A person chooses their country once (``mirror config country DE``, ``/config
country DE`` in the REPL; the ``country`` key of ``config.json``). With none
chosen, or one the table does not list, a reply names the local emergency
number and the international directory findahelpline.com, which lists lines in
most countries — never a number that could be the wrong country's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

INTERNATIONAL_DIRECTORY = "findahelpline.com"


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    aliases: tuple[str, ...]
    emergency: str
    crisis: tuple[str, ...]  # "Name: how to reach it"
    violence: tuple[str, ...]


@dataclass(frozen=True)
class Helplines:
    countries: Mapping[str, Country]
    international_crisis: str
    international_violence: str

    def find(self, text: str) -> Country | None:
        """The country named by *text*: a code ("de"), a name or an alias ("Deutschland")."""
        key = " ".join(text.strip().lower().split())
        if not key:
            return None
        if key.upper() in self.countries:
            return self.countries[key.upper()]
        for country in self.countries.values():
            names = {country.name.lower(), country.name.lower().removeprefix("the "),
                     *country.aliases}
            if key in names:
                return country
        return None


@cache
def helplines() -> Helplines:
    raw = json.loads(resources.files(__package__).joinpath("helplines.json").read_text("utf-8"))
    countries = {
        code: Country(code, c["name"], tuple(a.lower() for a in c.get("aliases", ())),
                      c["emergency"], tuple(c["crisis"]), tuple(c.get("violence", ())))
        for code, c in raw["countries"].items()
    }
    intl = raw["international"]
    return Helplines(countries, intl["crisis"], intl["violence"])


def _joined(items: tuple[str, ...]) -> str:
    return "; ".join(items)


def where_help_is(country: str = "", *, violence: bool = False) -> str:
    """The lines for *country*, as a clause: "in Germany: TelefonSeelsorge: 0800 …;
    in an emergency, 112 (police 110)", or the international directory."""
    found = helplines().find(country) if country else None
    if found is None:
        table = helplines()
        return table.international_violence if violence else table.international_crisis
    lines = found.violence if violence else found.crisis
    if not lines:
        lines = (f"{INTERNATIONAL_DIRECTORY} lists free, confidential support services",)
    return f"in {found.name}: {_joined(lines)}; in an emergency, {found.emergency}"
