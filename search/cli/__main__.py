"""``python -m search.cli ...``: the ``tpsopt`` command without the console script."""

import sys

from search.cli import main

if __name__ == "__main__":
    sys.exit(main())
