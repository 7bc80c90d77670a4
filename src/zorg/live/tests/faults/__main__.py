import sys

from zorg.live.tests.faults.soak import main

sys.exit(main())
