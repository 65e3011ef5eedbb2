"""``python -m commons_server`` runs ``mirror-commons``."""

import sys

from .server import main

sys.exit(main())
