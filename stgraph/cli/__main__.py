"""``python -m stgraph.cli``, the same as the ``stgraph`` command."""
import sys

from . import main

if __name__ == "__main__":  # importing the module (doctest collection, API docs) runs no command
    sys.exit(main())
