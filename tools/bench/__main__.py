"""`python -m tools.bench`: see tools/bench/__init__.py, or `python -m tools.bench --help`."""

import sys

from tools.bench.cli import main

sys.exit(main())
