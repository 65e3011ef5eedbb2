"""Other processes of this device, as far as a file in the home names them by pid."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether a process with *pid* runs now (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
