"""Errors the node shows to the person.

::

    MirrorError                 a one-line message for the person; exit status 1
    ├── ConfigError             the config file is missing a value or holds a wrong one
    ├── HomeError               the home directory cannot be used
    ├── ScrubIncompleteError    deleted, but the old words are still in the home's file
    └── UsageError              a command was given wrong arguments (exit status 2)

Store errors (``crdt.StoreError``) are also shown as one line; anything else is
a bug: its traceback goes to the log file in the home, and the person sees one
line pointing there.
"""

from __future__ import annotations


class MirrorError(Exception):
    """A failure the person can act on, shown as one line."""

    exit_status = 1


class ConfigError(MirrorError):
    pass


class HomeError(MirrorError):
    pass


class ScrubIncompleteError(MirrorError):
    """A delete or an edit was saved, but the removed words are still in this
    device's store file; the message says what remains and what to do."""


class UsageError(MirrorError):
    exit_status = 2
