"""``python -m truthnet``: the same as the ``truthnet`` command."""

from .cli import main

raise SystemExit(main())
