"""`python -m lab ...`: see lab/cli/."""

import os
import sys

# Quiet TensorFlow's C++ start-up chatter; the lab prints what matters.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lab.cli import main  # noqa: E402

sys.exit(main())
