"""Tools for the people who maintain Mirror (not part of a running node): signing
releases (``mirror-release``, :mod:`.release`)."""
