"""`python -m lab ...`: see lab/cli/."""

import logging
import os
import sys

# Quiet TensorFlow's C++ start-up chatter; the lab prints what matters.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lab.cli import main  # noqa: E402

code = main()
# Leave without the interpreter's teardown: with TensorFlow loaded it takes about 0.8 s of a 30 s
# lesson on two cores (issue 15). Every file the command wrote is closed by now; the streams and
# the log handlers are flushed here.
logging.shutdown()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except OSError:  # a reader that went away (`| head`): nothing left to say to it
    pass
os._exit(code)
