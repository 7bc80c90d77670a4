"""Moved to zorg.live.core.wire (the pure core); this name stays for the
imports, doctests and ZCML that use it: it is the same module."""

import sys

from zorg.live.core import wire

sys.modules[__name__] = wire
