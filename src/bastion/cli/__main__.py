"""``python -m bastion.cli``: the console script without its installed entry point."""

from __future__ import annotations

import sys

from bastion.cli import main

sys.exit(main())
