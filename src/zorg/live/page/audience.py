"""Moved to zorg.live.core.audience (the pure core); this name stays for the
imports, doctests and ZCML that use it: it is the same module."""

import sys

from zorg.live.core import audience

sys.modules[__name__] = audience
