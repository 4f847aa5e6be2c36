"""``python -m stgraph.cli``, the same as the ``stgraph`` command."""
import sys

from . import main

sys.exit(main())
