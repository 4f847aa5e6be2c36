"""``python -m stgraph``, the same as the ``stgraph`` command."""
import sys

from .cli import main

sys.exit(main())
