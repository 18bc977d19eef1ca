"""``python -m sleepstream``: the command line."""

import sys

from sleepstream.engine.app.cli import main

sys.exit(main())
