"""``python -m rnnkit``: the ``rnnkit`` command, for launchers that start a module
(``torchrun -m rnnkit ...``) and environments without the console script on PATH."""

import sys

from rnnkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
