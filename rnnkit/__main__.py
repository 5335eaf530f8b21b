"""``python -m rnnkit``: the ``rnnkit`` command, for launchers that start a module
(``torchrun -m rnnkit ...``) and environments without the console script on PATH."""

from rnnkit.cli import run

if __name__ == "__main__":
    run()
