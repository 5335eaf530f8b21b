"""The flags that train on several processes, shared by ``train``, ``classify train`` and
``forecast train``: ``--nproc N`` starts the elastic launcher (``torch.distributed.run``) on
this machine and ``--max-restarts`` lets it restart a failed group (``--dist-timeout``, how
long a collective waits, sits with each command's training flags). Under
``torchrun ... -m rnnkit`` the commands need neither.
"""

from __future__ import annotations

import os
import sys


def add_arguments(parser) -> None:
    parser.add_argument("--nproc", type=int, default=None, metavar="N",
                        help="train on N processes of this machine (torchrun, gloo); "
                             "--batch-size is then the global batch (default: 1, this process)")
    parser.add_argument("--max-restarts", type=int, default=0, metavar="N",
                        help="with --nproc: restart the processes up to N times after one "
                             "fails; they resume from the last checkpoint (default 0)")


def launched(args) -> int | None:
    """With ``--nproc N`` (N > 1): run the command on N ranks and give their exit status;
    otherwise None (run here)."""
    if args.nproc is None or args.nproc == 1 and not args.max_restarts:
        return None
    from rnnkit.train.distributed import launch

    return launch(args.argv, args.nproc, args.max_restarts)


def quiet_unless_rank_zero() -> None:
    """Ranks other than 0 print nothing on stdout (errors still go to stderr)."""
    from rnnkit.train.distributed import current

    if not current().is_main:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the process
