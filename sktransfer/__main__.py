"""``python -m sktransfer``: the ``sktransfer`` command."""

import sys

from .cli import main

sys.exit(main())
