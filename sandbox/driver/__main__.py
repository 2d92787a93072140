"""`python3 /opt/assistd/driver`: runs the driver (see __init__.py)."""

import os
import sys

# Run as a directory, Python puts this directory first on sys.path, where its modules
# (files, session, ...) would shadow user code's imports of the same names: put the parent
# there instead and import the driver as the package it is.
_here = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == _here:
    sys.path[0] = os.path.dirname(_here)

from driver.main import main  # noqa: E402

sys.exit(main())
