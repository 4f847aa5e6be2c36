"""``python -m stgraph``, the same as the ``stgraph`` command."""
import sys

from .cli import main

if __name__ == "__main__":  # importing the module (doctest collection, API docs) runs no command
    sys.exit(main())
