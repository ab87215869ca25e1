"""``python -m gdbnb``: see :mod:`gdbnb.cli`."""

import sys

from .cli import main

sys.exit(main())
