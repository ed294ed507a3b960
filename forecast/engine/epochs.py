"""Epoch losses of units still training, carried to the command that logs them as they come.

Wherever a unit trains (in the command's process, a worker process, a Ray task), each epoch of each
network hands a row (``model, fold, series, seed, restart, epoch, train_loss, val_loss``) to a
channel: called directly in the command's process, a queue of a multiprocessing manager for worker
processes, a Ray queue (an actor) for Ray tasks. The command drains the channel while it waits for
units and logs the rows at once; the rows never change what a unit computes.
"""

from __future__ import annotations

import contextlib
import os
import queue
from typing import Callable

from .workers import worker_init

Rows = Callable[[list[dict]], None]


class Direct:
    """The channel of units trained in the command's own process: each row logged as it is put."""

    def __init__(self, log: Rows):
        self.log = log

    def put(self, row: dict) -> None:
        self.log([row])


def tagged(channel, **tags) -> Callable[[dict], None] | None:
    """The ``on_epoch`` hook of one network's training: its rows, with ``tags``, put on ``channel``."""
    if channel is None:
        return None
    return lambda row: channel.put({**tags, **row})


class RayRows:
    """A Ray queue's actor as a channel: a task's ``put`` does not wait for the queue (its rows still arrive in
    order); the command takes every row waiting in one call."""

    def __init__(self, actor):
        self.actor, self.last = actor, None

    def __getstate__(self):                 # sent to tasks: the actor, not this process's last call
        return {"actor": self.actor, "last": None}

    def put(self, row: dict) -> None:
        self.last = self.actor.put_nowait.remote(row)

    def flush(self) -> None:
        """Wait until this process's rows are in the queue (a task's last act: none is lost at the end)."""
        if self.last is not None:
            import ray

            ray.get(self.last)

    def take(self) -> list[dict]:
        import ray

        return ray.get(self.actor.get_nowait_batch.remote(ray.get(self.actor.qsize.remote())))


def drain(channel, log: Rows) -> None:
    """Log every row waiting on ``channel``, without waiting for more."""
    rows = []
    if isinstance(channel, RayRows):
        rows = channel.take()
    else:
        with contextlib.suppress(queue.Empty, EOFError, OSError):
            while True:
                rows.append(channel.get_nowait())
    if rows:
        log(rows)


@contextlib.contextmanager
def process_channel(context, log: Rows | None):
    """A queue worker processes can put rows on (a manager's, so it travels with each unit); None without
    ``log``. Drained once more at the end; the manager's process stops with it."""
    if log is None:
        yield None
        return
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=context)
    manager.start(worker_init, (os.getpid(),))       # ignores Ctrl-C, dies with the command however it dies
    try:
        channel = manager.Queue()
        yield channel
        drain(channel, log)
    finally:
        manager.shutdown()


@contextlib.contextmanager
def ray_channel(log: Rows | None):
    """A Ray queue (an actor taking no CPU) tasks can put rows on; None without ``log``; removed at the end."""
    if log is None:
        yield None
        return
    import ray
    from ray.util.queue import Queue

    channel = RayRows(Queue(actor_options={"num_cpus": 0}).actor)
    try:
        yield channel
        drain(channel, log)
    finally:
        with contextlib.suppress(Exception):
            ray.kill(channel.actor)
