"""The journal conventions people expect from jrnl and Day One, as pure operations.

Search (:mod:`.search`), natural dates (:mod:`.dates`), filters (:mod:`.query`),
inline ``#tags`` and tag counts (:mod:`.tags`), on this day and stats
(:mod:`.stats`). Each works on :class:`crdt.journal.Reflection` values it is
given: no I/O, no printing, so the CLI, the REPL and the browser share them.
"""
