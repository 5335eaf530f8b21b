"""Training on several processes or machines: torchrun, DistributedDataParallel, gloo.

The one training loop (:mod:`rnnkit.train.loop`, under language models, classifiers and
forecasters) takes its distributed plumbing from here:

- :func:`init` joins the process group that ``torchrun`` (or ``--nproc``) describes in the
  environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``...), with gloo
  on CPU, and sets the threads of each rank (cores divided by the ranks on this machine,
  unless ``--threads`` says otherwise) before any kernel runs. Without those variables it
  does what a single process always did.
- :class:`Context` is what a loop asks: rank, world size, whether it is rank 0 (the only
  one that prints and writes), and the few collectives the loops need: one all-reduce per
  step that agrees on the mean loss, an interruption and rank 0's clock; sums for
  evaluation; gathers for the checkpoint (carried states and random-number states).
- :func:`launch` starts the elastic launcher (``torch.distributed.run``) on this machine
  for ``--nproc N``, with ``--max-restarts``.

A collective that fails (a rank died, or waited longer than ``--dist-timeout``) becomes a
:class:`DistributedFailure`: one line naming the rank, never a silent hang.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
from dataclasses import dataclass

import torch

from rnnkit.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 600.0  # seconds a collective may wait for the other ranks


class DistributedFailure(UserError):
    """A collective failed: another rank died, hung or stopped."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def under_launcher() -> bool:
    """Whether this process is a worker that torchrun (or ``--nproc``) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def restart_count() -> int:
    """How many times the elastic launcher restarted this group (0: the first start)."""
    return _env_int("TORCHELASTIC_RESTART_COUNT", 0)


@dataclass
class Context:
    """Where this process stands in its group; a single process is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    timeout: float = DEFAULT_TIMEOUT

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- sharding ------------------------------------------------------------------------

    def check_global_batch(self, batch_size: int, what: str = "streams") -> None:
        """Refuse a global batch the ranks cannot share equally."""
        if not self.enabled:
            return
        if batch_size < self.world_size:
            raise UserError(
                f"--batch-size {batch_size} (the global batch) has fewer {what} than the "
                f"{self.world_size} processes, and each process needs at least one; use at "
                f"most {batch_size} processes or a larger --batch-size"
            )
        if batch_size % self.world_size:
            raise UserError(
                f"--batch-size {batch_size} is the global batch and must divide evenly among "
                f"the {self.world_size} processes; use a multiple of {self.world_size}"
            )

    def block(self, count: int) -> range:
        """This rank's contiguous block of ``count`` items (blocks differ by at most one)."""
        return range(self.rank * count // self.world_size,
                     (self.rank + 1) * count // self.world_size)

    # ---- collectives ---------------------------------------------------------------------

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over all ranks (float64)."""
        if not self.enabled:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def agree(self, loss_share: float, interrupted: bool, elapsed: float
              ) -> tuple[float, bool, float]:
        """One all-reduce per step: the summed loss shares (the global mean loss), whether any
        rank was interrupted, and rank 0's clock (so budgets and schedules agree)."""
        total, stop, clock = self.all_reduce_sum(
            [loss_share, float(interrupted), elapsed if self.is_main else 0.0])
        return total, stop > 0, clock

    def gather_objects(self, value) -> list:
        """``value`` of every rank, in rank order (every rank gets the list)."""
        if not self.enabled:
            return [value]
        import torch.distributed as dist

        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def gather_state(self, state):
        """The carried recurrent state of every rank's streams, joined along the batch
        (dimension 1): the state a single process with the global batch would hold."""
        if not self.enabled or state is None:
            return state
        import torch.distributed as dist

        parts = list(state) if isinstance(state, tuple) else [state]
        joined = []
        for part in parts:
            pieces = [torch.empty_like(part) for _ in range(self.world_size)]
            dist.all_gather(pieces, part.contiguous())
            joined.append(torch.cat(pieces, dim=1))
        return tuple(joined) if isinstance(state, tuple) else joined[0]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel when there are several ranks."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # no find_unused_parameters: every parameter takes part in every forward (weight drop
        # is rebuilt inside forward from the one leaf W_hh), and the flag costs a graph walk
        return DistributedDataParallel(model)

    def failure(self, error: BaseException, step: int, run_dir) -> BaseException:
        """A one-line error for a collective that failed on this rank; any other error is
        given back as it was (a bug keeps its traceback)."""
        import torch.distributed as dist

        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        lowered = text.lower()
        markers = ("gloo", "timed out", "timeout", "connection", "closed", "reset by peer",
                   "broken pipe")
        if not isinstance(error, dist.DistError) and not any(m in lowered for m in markers):
            return error
        if "timed out" in lowered or "timeout" in lowered:
            reason = (f"waited longer than the collective timeout ({self.timeout:g} s, "
                      f"--dist-timeout) for the other ranks: one of them hung or was stopped")
        elif "closed" in lowered or "reset" in lowered or "broken pipe" in lowered:
            reason = "lost the connection to another rank: it stopped or died"
        else:
            reason = f"a collective failed ({text})"
        return DistributedFailure(
            f"rank {self.rank} of {self.world_size} at step {step}: {reason}; stopped. The last "
            f"checkpoint in {run_dir} is intact"
        )

    def install_signal_handlers(self, handler):
        """Ctrl-C and SIGTERM set ``handler``; returns what to restore. Under a launcher
        both signals may arrive twice (the terminal's and the launcher's): each only asks
        for a stop, which the ranks agree on at the next step."""
        signals = (signal.SIGINT, signal.SIGTERM)
        return {number: signal.signal(number, handler) for number in signals}


class NoMetrics:
    """The metrics log of ranks other than 0: they write nothing."""

    def truncate_after(self, step: int) -> None:
        pass

    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random numbers (dropout masks) after the shared model init."""
    return seed * 1_000_003 + 7919 * rank


def rng_states(dist: Context) -> dict:
    """The random-number state to save: rank 0's as ``torch_rng`` (what one process resumes
    with) and, under torchrun, every rank's as ``rank_rngs``."""
    rng = torch.get_rng_state()
    if not dist.enabled:
        return {"torch_rng": rng}
    states = dist.gather_objects(rng)
    return {"torch_rng": states[0], "rank_rngs": states}


def restore_rng(state: dict, dist: Context, seed: int) -> None:
    """Each rank's saved random-number state when the world size is the same, else rank 0
    takes the saved one and the others fresh seeds of their own."""
    saved = state.get("rank_rngs")
    if dist.enabled and saved and len(saved) == dist.world_size:
        torch.set_rng_state(saved[dist.rank])
    elif dist.is_main:
        torch.set_rng_state(state["torch_rng"])
    else:
        torch.manual_seed(rank_seed(seed, dist.rank) + int(state.get("step", 0)))


SINGLE = Context()
_current: Context | None = None
_joined = False  # set once this process joins a group of ranks (see joined_a_group)


def current() -> Context:
    """This process's context: the one :func:`init` made, else a single process."""
    return _current or SINGLE


def init(threads: int = 0, timeout: float = DEFAULT_TIMEOUT) -> Context:
    """Join the group the environment describes (if any) and set the threads.

    A single process (no ``WORLD_SIZE`` above 1) only sets ``threads`` when it is given,
    exactly as before. A rank sets ``threads`` or, by default, the cores divided by the
    ranks on this machine (torchrun itself sets ``OMP_NUM_THREADS=1``).
    """
    global _current, _joined
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        if threads:
            torch.set_num_threads(threads)
        _current = SINGLE
        return SINGLE
    if _current is not None and _current.enabled:
        return _current
    local_world_size = _env_int("LOCAL_WORLD_SIZE", 1)
    torch.set_num_threads(threads or max(1, cores() // max(local_world_size, 1)))
    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo: rnnkit's trainers run on the CPU (nccl needs the model and batches on CUDA)
        wait = datetime.timedelta(seconds=timeout)
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # the launcher's store outlives a restart of the group: without a prefix of its
            # own, a restarted rank can read the address a dead rank published and fail to
            # connect (gloo's connectFullMesh, "Connection refused")
            store = dist.PrefixStore(
                f"rnnkit/attempt-{restart_count()}",
                dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                              world_size, is_master=False, timeout=wait))
            dist.init_process_group("gloo", store=store, rank=_env_int("RANK", 0),
                                    world_size=world_size, timeout=wait)
        else:
            dist.init_process_group("gloo", timeout=wait)
    _joined = True
    _current = Context(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_world_size=local_world_size, timeout=timeout)
    if not _current.is_main:  # rank 0 alone reports progress; warnings still show everywhere
        logging.getLogger("rnnkit").setLevel(logging.WARNING)
    logger.debug("rank %d of %d, %d threads", _current.rank, world_size, torch.get_num_threads())
    return _current


def joined_a_group() -> bool:
    """Whether this process joined a group of several ranks (even one it has left since)."""
    return _joined


def shutdown() -> None:
    """Leave the process group (at the end of a command that finished normally)."""
    global _current
    if _current is not None and _current.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    _current = None


# ---- the launcher of --nproc -------------------------------------------------------------

LAUNCHER_FLAGS = ("--nproc", "--max-restarts")


def worker_argv(argv: list[str]) -> list[str]:
    """``argv`` without the launcher's own flags (``--nproc N``, ``--max-restarts N``)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        name = item.split("=", 1)[0]
        if name in LAUNCHER_FLAGS:
            skip = "=" not in item
            continue
        kept.append(item)
    return kept


def launch(argv: list[str], nproc: int, max_restarts: int = 0) -> int:
    """Run ``python -m rnnkit ARGV`` on ``nproc`` ranks of this machine under the elastic
    launcher (``torchrun --standalone``); the exit status of the ranks."""
    if nproc < 1:
        raise UserError(f"--nproc must be a positive number of processes, got {nproc}")
    if max_restarts < 0:
        raise UserError(f"--max-restarts must be >= 0, got {max_restarts}")
    if under_launcher():
        raise UserError("--nproc starts its own launcher; under torchrun drop --nproc "
                        "(torchrun's --nproc-per-node sets the processes)")
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    for name in list(logging.root.manager.loggerDict):  # the ranks report their own errors
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run",
                            "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = parse_args([f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
                       "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0",
                       f"--rdzv-id={uuid.uuid4()}", "-m", "rnnkit", *worker_argv(argv)])
    if args.master_port is None:
        args.master_port = 29500
    config, command, command_args = config_from_args(args)
    try:
        elastic_launch(config=config, entrypoint=command)(*command_args)
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()  # the first to fail: the cause
        code = failure.exitcode
        if code != 2:  # 2: a user error the rank printed itself
            logger.error("rank %d failed first (%s)", rank,
                         f"exit status {code}" if code > 0 else f"signal {-code}")
        return code if code > 0 else 128 - code  # a rank killed by signal N: 128 + N
    except SignalException as error:
        return 128 + int(error.sigval)
    return 0
