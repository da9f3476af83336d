"""Training on several processes: torchrun starts them, DistributedDataParallel keeps them in step.

``train.<task>.processes: N`` (N > 1) makes a training stage start itself again under
``torchrun --standalone --nproc-per-node N`` (:func:`launch`); a stage that torchrun started
itself works the same. Every rank holds the whole model and every decision the steps take;
each trains on its share of every global batch (``train.<task>.batch`` stays the global batch):

- gradients are averaged by DistributedDataParallel in training and by :meth:`World.reduce`
  for growth, weighted by each share's size, so N processes step as one process would on the
  whole batch;
- scores are computed by every rank on the whole split, so accept/reject decisions agree;
- latency is measured by rank 0 alone and broadcast (:meth:`World.first`), so the ranks do not
  slow each other down and take the same decision;
- after every epoch the ranks check that their weights and masks are identical
  (:meth:`World.check_identical`) and take rank 0's buffers (batch-norm statistics);
- rank 0 alone writes outputs and resume files (:attr:`World.writer`).

The CPU backend is gloo (training in this project runs on the CPU; ``device`` names where the
result is timed). One process is the default and touches none of this.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from symbiotic.errors import UserError

ENV = "WORLD_SIZE"  # set by torchrun in every process it starts


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` processes (one: rank 0 of 1, nothing shared)."""

    rank: int = 0
    size: int = 1

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def writer(self) -> bool:
        """Only rank 0 writes: outputs, resume files, the stage's last line."""
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` rows; shares differ by at most one row."""
        return slice(self.rank * n // self.size, (self.rank + 1) * n // self.size)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` for training: as it is in one process, else in DistributedDataParallel
        (which starts every rank from rank 0's weights and buffers)."""
        return _Wrapped(model) if self.active else model

    def global_weight(self, value: float, weight: float) -> tuple[float, float]:
        """(the weighted mean of ``value`` over the ranks, the summed weight): one batch's loss
        as one process would see it, and the total that the shares' gradients are scaled by."""
        if not self.active:
            return value, weight
        both = torch.tensor([value * weight, weight], dtype=torch.float64)
        dist.all_reduce(both)
        total = float(both[1])
        return (float(both[0]) / total if total > 0 else value), total

    def share(self, weight: float, total: float) -> float:
        """The factor on this rank's mean loss that makes DDP's gradient average the gradient of
        the whole batch's weighted mean (shares of unequal size count by their size)."""
        return self.size * weight / total if self.active and total > 0 else 1.0

    def reduce(self, tensors: list[torch.Tensor], weight: float) -> None:
        """Replace each tensor by the weighted mean of the ranks' tensors (growth gradients)."""
        if not self.active:
            return
        _, total = self.global_weight(0.0, weight)
        for t in tensors:
            t.mul_(weight / total if total > 0 else 1.0 / self.size)
            dist.all_reduce(t)

    def first(self, fn):
        """``fn()`` run by rank 0 alone, its result given to every rank: timings, which the
        ranks would otherwise disturb and disagree on."""
        if not self.active:
            return fn()
        box = [fn() if self.writer else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (each rank's RNG state for a resume file)."""
        if not self.active:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def check_identical(self, model: nn.Module) -> None:
        """Stop if the ranks' weights or masks differ (they must: same start, same averaged
        gradients, same decisions), then give every rank rank 0's buffers: batch-norm
        statistics are the one state each rank updates from its own share."""
        if not self.active:
            return
        digest = _digest(model)
        digests = self.gather(digest)
        if any(d != digests[0] for d in digests):
            bad = [r for r, d in enumerate(digests) if d != digests[0]]
            raise RuntimeError(f"ranks {bad} hold other weights or masks than rank 0: the processes "
                               f"went out of step (a bug; please report it)")
        for buf in model.buffers():
            dist.broadcast(buf, src=0)


class _Wrapped(DistributedDataParallel):
    """DistributedDataParallel that also answers the model's own attributes (``model.config``)."""

    def __init__(self, model: nn.Module):
        super().__init__(model)  # buffers (masks, batch-norm statistics) follow rank 0 each forward

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _digest(model: nn.Module) -> list[float]:
    """A fingerprint of the weights and masks: two sums per tensor, in float64 (a difference in
    any element changes the second; running statistics are left out, see check_identical)."""
    out = []
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if "running_" in name or "num_batches_tracked" in name:
            continue
        flat = t.detach().double().flatten()
        out += [float(flat.sum()), float((flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64)).sum())]
    return out


_current = World()


def current() -> World:
    """The world this process trains in (one process until :func:`start` joins a larger one)."""
    return _current


def start(processes: int, where: str) -> World:
    """Join the process group torchrun set up, checked against ``processes`` (params
    ``where``), or stay alone. A count that disagrees with torchrun's is refused at once."""
    global _current
    started = int(os.environ.get(ENV, "1"))
    if started != processes:
        raise UserError(f"torchrun started {started} processes but {where} is {processes}",
                        f"set {where}: {started} (dvc exp run -S {where}={started}), or let the stage "
                        f"start its own processes: python stages/<stage>.py ... without torchrun")
    if processes > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
        _current = World(dist.get_rank(), dist.get_world_size())
        if not _current.writer:
            sys.stdout = open(os.devnull, "w")  # rank 0 prints the stage's line; the rest stay quiet
    return _current


def launch(processes: int) -> None:
    """Start this stage again under torchrun with ``processes`` processes, unless torchrun
    started it already; return only when no launch was needed (else exit with its status)."""
    if processes <= 1 or ENV in os.environ:
        return
    threads = max(1, torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),  # torchrun would force 1, and warn
           "SYMBIOTIC_TTY": "1" if sys.stderr.isatty() else ""}  # rank 0's bars reach a terminal
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "--", sys.argv[0], *sys.argv[1:]]  # "--": the stage's --log is not torchrun's --log-dir
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    sys.exit(_relay(proc))


def _relay(proc: subprocess.Popen) -> int:
    """Pass the ranks' stderr through until the first ``error:`` line; after it only the launcher's
    report of the failed ranks would follow, so the user sees the one line (exit status 2)."""
    seen = False
    for chunk in iter(lambda: os.read(proc.stderr.fileno(), 65536), b""):
        if seen:
            continue
        at = chunk.find(b"error: ")
        if at >= 0 and (at == 0 or chunk[at - 1:at] in (b"\n", b"\r")):
            end = chunk.find(b"\n", at)
            chunk, seen = chunk[:end + 1 if end >= 0 else len(chunk)], True
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
    code = proc.wait()
    return 2 if seen and code != 0 else code
