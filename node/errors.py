"""Errors the node shows to the person: one tree, drawn whole.

::

    MirrorError                     a one-line message for the person; exit status 1
    ├── ConfigError                 the config file is missing a value or holds a wrong one
    ├── HomeError                   the home directory cannot be used
    ├── ScrubIncompleteError        deleted, but the old words are still in the home's file
    ├── UsageError                  a command was given wrong arguments (exit status 2)
    ├── BackupError                 (backup) a backup cannot be made or read
    ├── EditorError                 (drafts) the editor could not be run, or gave up
    ├── ApiKeyError                 (llm.keys) no usable key for a remote model
    ├── LLMError                    (llm.client) the model could not answer
    ├── UpdateError                 (updates.errors) releases, keys and installing
    │   ├── ManifestError           the manifest (or key file) is unreadable or malformed
    │   ├── UntrustedKeyError       signed by a key that is not in trusted-keys.json
    │   ├── SignatureError          the signature does not match the manifest
    │   ├── HashMismatchError       the wheel is not the file the manifest names
    │   ├── DowngradeError          the release is older than what is installed
    │   └── SourceError             the manifest or wheel could not be fetched
    ├── DiscoveryError              (discovery_tags) zeroconf failed
    │   └── PairingNotFound         no device offering this pairing code was found
    ├── CommonsUnavailable          (commons) the Commons server could not be reached
    ├── CommonsRefused              (commons) the Commons server refused, with its reason
    ├── PairingFailed               (sync.pairing) pairing did not happen; nothing changed
    ├── RelayUnavailable            (sync.relay) no configured relay accepted the connection
    ├── SessionError                (sync.session) a sync session ended abnormally (logged,
    │                               not shown); ``protocol_error`` is the protocol's error
    └── BlindStoreError             (sync.blind_client) talking to a blind store failed
        ├── StoreUnavailable        not reachable, or answered 5xx: try again later
        ├── StoreRefused            refused (quota, conflict, bad token)
        ├── StoreRetired            this epoch's log was retired (a forwarding notice comes)
        └── RemovedFromGroup        the store refuses this device: its group moved on

Store errors (``crdt.StoreError``) are also shown as one line; protocol errors
(``protocol.ProtocolError``) end a session and reach the person, if at all, inside
a SessionError. Third-party exceptions are translated where they enter (node.sync:
``node.sync.boundary.map_exceptions``). Anything else is a bug: its traceback goes
to the log file in the home, and the person sees one line pointing there.
tests/test_public_names.py checks that this tree lists every subclass.
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
