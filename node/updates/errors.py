"""Why an update was refused.

::

    MirrorError (node.errors)        one line for the person, exit status 1
    └── UpdateError                  anything about releases, keys and installing
        ├── ManifestError            the manifest (or key file) is unreadable or malformed
        ├── UntrustedKeyError        signed by a key that is not in trusted-keys.json
        ├── SignatureError           the signature does not match the manifest
        ├── HashMismatchError        the wheel is not the file the manifest names
        ├── DowngradeError           the release is older than what is installed
        └── SourceError              the manifest or wheel could not be fetched

Every refusal is a one-line message that says what to do next.
"""

from __future__ import annotations

from ..errors import MirrorError


class UpdateError(MirrorError):
    pass


class ManifestError(UpdateError):
    pass


class UntrustedKeyError(UpdateError):
    pass


class SignatureError(UpdateError):
    pass


class HashMismatchError(UpdateError):
    pass


class DowngradeError(UpdateError):
    pass


class SourceError(UpdateError):
    pass
