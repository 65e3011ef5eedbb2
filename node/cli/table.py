"""The command table: each ``mirror`` command, the ``module:function`` that runs it and
its one-line help.

``mirror --help`` reads only this table; a command imports only its own module
(:func:`node.cli.main.main`). A command module declares its arguments in
``add_commands(add)``; ``tests/test_cli_table.py`` holds the two to each other.
"""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):  # a NamedTuple, not a dataclass: dataclasses costs --help ~10 ms
    """One CLI command: its name and the `module:function` that runs it."""

    name: str
    target: str  # "module:function"
    help: str
    opens_home: bool = True  # False: it works on the home's files (backup, restore, encrypt)
    config_tolerant: bool = False  # runs, and explains or repairs, with an invalid config.json

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def function(self) -> str:
        return self.target.partition(":")[2]


DEFAULT = "repl"  # ``mirror`` with no command

COMMANDS: tuple[Command, ...] = (
    Command("init", "node.cli.journal:cmd_init",
            "create the home if needed and show where it is"),
    Command("reflect", "node.cli.journal:cmd_reflect",
            "save a reflection and show its mirrorback"),
    Command("list", "node.cli.journal:cmd_list",
            "list reflections, oldest first (★ starred, 🔒 private); dates can be natural: "
            "--from \"2 weeks ago\", --on yesterday"),
    Command("search", "node.cli.conventions:cmd_search",
            "full-text search of your reflections and their tags, best match first (exit "
            "status 1 when nothing is found)"),
    Command("tags", "node.cli.conventions:cmd_tags",
            "every tag and how many reflections carry it"),
    Command("star", "node.cli.conventions:cmd_star",
            "star a reflection (list --starred shows the starred ones)"),
    Command("unstar", "node.cli.conventions:cmd_unstar",
            "take the star off a reflection"),
    Command("onthisday", "node.cli.conventions:cmd_onthisday",
            "what you wrote on this day in earlier years"),
    Command("stats", "node.cli.conventions:cmd_stats",
            "entries per week, streaks of days, words"),
    Command("show", "node.cli.journal:cmd_show",
            "show one reflection and its mirrorback"),
    Command("edit", "node.cli.journal:cmd_edit",
            "change a reflection's text (in $EDITOR, or with --text) or tags; the engine learns "
            "it again. The editor's draft is kept in the home's drafts/ folder, readable by you "
            "only, and removed afterwards"),
    Command("delete", "node.cli.journal:cmd_delete",
            "delete a reflection and all the engine learned from it"),
    Command("export", "node.cli.journal:cmd_export",
            "export everything: JSON (one file), Markdown (one .md file, or a folder with one "
            "file per month)"),
    Command("compact", "node.cli.journal:cmd_compact",
            "fold each document's update log into a verified snapshot"),
    Command("scrub", "node.cli.journal:cmd_scrub",
            "remove what was deleted or edited away from this device's store file (after a delete"
            " or edit that could not finish it)"),
    Command("status", "node.cli.journal:cmd_status",
            "show the home, the modes and what is stored", config_tolerant=True),
    Command("mode", "node.cli.journal:cmd_mode",
            "show or set the mirror mode (local, hybrid, cloud)", config_tolerant=True),
    Command("repl", "node.cli.prompt:cmd_repl",
            "start the interactive prompt (the default)"),
    Command("serve", "node.cli.sync:cmd_serve",
            "run this node headless: listen, discover, sync"),
    Command("pair", "node.cli.sync:cmd_pair",
            "show a short code that lets another device join"),
    Command("join", "node.cli.sync:cmd_join",
            "join the group of a device that shows a pairing code"),
    Command("devices", "node.cli.sync:cmd_devices",
            "list the devices of your group, or remove one"),
    Command("share", "node.cli.sync:cmd_share",
            "opt a document in or out of syncing with your devices"),
    Command("sync", "node.cli.sync:cmd_sync",
            "show sync status (peers, last sync, pending), or turn background sync in the prompt "
            "on or off"),
    Command("engine", "node.cli.engine:cmd_engine",
            "show or set the engine: offline, local (a model server on this machine or the LAN) "
            "or remote (an API with your own key)", config_tolerant=True),
    Command("patterns", "node.cli.engine:cmd_patterns",
            "recurring themes and trigger → response loops"),
    Command("tensions", "node.cli.engine:cmd_tensions",
            "tensions over time, one sparkline each"),
    Command("graph", "node.cli.engine:cmd_graph",
            "the identity graph as a tree; add, rename, merge or delete nodes"),
    Command("evolve", "node.cli.engine:cmd_evolve",
            "an evolution note: this period against the one before"),
    Command("related", "node.cli.engine:cmd_related",
            "past reflections related to one (default: the newest)"),
    Command("reindex", "node.cli.engine:cmd_reindex",
            "learn again from every reflection, e.g. after an import (keeps your graph edits; "
            "deletes and edits need none)"),
    Command("import", "node.cli.data:cmd_import",
            "import reflections: Day One (zip or JSON), jrnl JSON, a folder of Markdown files, or"
            " a Mirror JSON export"),
    Command("backup", "node.cli.data:cmd_backup",
            "write an encrypted backup of this home to one file", opens_home=False),
    Command("restore", "node.cli.data:cmd_restore",
            "restore an encrypted backup into a new or empty home (the home given by --home or "
            "MIRROR_HOME)", opens_home=False),
    Command("encrypt", "node.cli.data:cmd_encrypt",
            "encrypt this home's store at rest with a passphrase", opens_home=False),
    Command("update", "node.cli.update:cmd_status",
            "follow a fork's signed releases; nothing is installed unless you ask"),
    Command("store", "node.cli.store:cmd_store",
            "blind stores: keep your devices in sync through a server that cannot read what it "
            "keeps (add, list, remove, sync)"),
    Command("commons", "node.cli.commons:cmd_commons",
            "the Commons: public threads, posts, comments and reactions"),
    Command("publish", "node.cli.commons:cmd_publish",
            "publish a summary of a pattern or tension (asks first)"),
    Command("published", "node.cli.commons:cmd_published",
            "what you published, where and when (the consent ledger)"),
    Command("unpublish", "node.cli.commons:cmd_unpublish",
            "withdraw a published item: the server deletes it"),
    Command("relay", "node.cli.relay:cmd_relay",
            "list, add or remove the relays that connect your devices when they are not on the "
            "same LAN"),
    Command("mood", "node.cli.mood:cmd_mood",
            "your mood week by week: a sparkline of how your reflections feel"),
    Command("config", "node.cli.mood:cmd_config",
            "show or change settings: country (whose crisis lines a crisis reply names)"),
    Command("ask", "node.cli.ask:cmd_ask",
            "ask your journal a question; the answer quotes your reflections and cites their ids"),
    Command("ui", "node.cli.ui:cmd_ui",
            "open the local web interface in your browser (served on 127.0.0.1 only; the "
            "printed link works once)"),
    Command("digest", "node.cli.ask:cmd_digest",
            "what the week (or month) held: themes, feelings, tensions moving, a question to sit "
            "with"),
)

BY_NAME = {c.name: c for c in COMMANDS}
