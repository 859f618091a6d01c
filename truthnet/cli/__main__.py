"""``python -m truthnet.cli``: the ``truthnet`` command."""

import sys

from . import main

sys.exit(main())
