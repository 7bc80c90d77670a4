"""``python -m zorg.live serve etc/zope.conf``."""

import sys

from zorg.live.server.runner import main

sys.exit(main())
