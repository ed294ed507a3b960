"""Ray as the cluster engine (``--executor ray``): work that outgrows one machine runs as Ray tasks.

``ray_session`` joins a running cluster (``--ray-address``, else ``$RAY_ADDRESS``) or starts a Ray for
the command alone, every process of it listening on 127.0.0.1 only (a Ray head open on the network
runs any code sent to it), and stops what it started, however the command ends. On joining it checks,
within seconds and before anything trains, that the head answers and that every node runs this
version of the toolkit and of torch (the same build and CPU type is what makes a unit's results the
same on any node).

``run_tasks`` runs a function over items as tasks: the data they share goes to the object store once,
not once per task; results come back in the order they finish; a task whose node is lost runs again
elsewhere (``TASK_RETRIES``), while a task that fails for a reason of its own fails the command at once
with a one-line error naming it; stopping the command (Ctrl-C, SIGTERM, an error) cancels every task
still pending or running. The driver does all the scoring, writing and tracking: tasks never write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import ForecastError, Interrupted

LOOPBACK = "127.0.0.1"
TASK_RETRIES = 3          # a task whose node is lost (not one whose own code failed) runs again elsewhere
CONNECT_SECONDS = 3.0     # an address that does not answer within this is unreachable
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RaySession:
    """The Ray a command runs on: joined (``started`` False) or started for it on this machine."""

    address: str
    started: bool
    nodes: int
    machines: int          # distinct node addresses: several nodes on one machine are one machine
    cpus: int
    gpus: int

    def describe(self) -> str:
        where = "a local Ray on 127.0.0.1" if self.started else f"the Ray cluster at {self.address}"
        return (f"ray: {where}: {self.nodes} node(s) on {self.machines} machine(s), {self.cpus} CPU(s)"
                + (f", {self.gpus} GPU(s)" if self.gpus else ""))


def ray_module():
    try:
        import ray
    except ImportError:
        raise ForecastError("--executor ray needs Ray: pip install 'forecast[ray]' (on every node of the cluster), "
                            "or use --executor local") from None
    return ray


def cluster_address(given: str | None) -> str | None:
    """The cluster to join: ``--ray-address``, else ``$RAY_ADDRESS``; None: start a local Ray."""
    return (given or os.environ.get("RAY_ADDRESS") or "").strip() or None


@contextlib.contextmanager
def ray_session(address: str | None, cpus: int, echo: Callable[[str], None] = print) -> Iterator[RaySession]:
    """Ray for one command: joined at ``address`` (checked first), else started here with ``cpus`` CPUs."""
    address = cluster_address(address)
    if address:
        check_reachable(address)
    else:
        # Before Ray is imported (it reads this then) and starts: every process of a local Ray binds 127.0.0.1.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        # Ray's token authentication stays on; only its notice that it is on is not the user's business.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    ray = ray_module()
    started = time.perf_counter()
    try:
        if address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
        else:
            # "local": a Ray of the command's own, never one that happens to run on this machine already.
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, _node_ip_address=LOOPBACK,
                     logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except ForecastError:
        raise
    except Exception as err:
        shown = f"--ray-address {address}" if address else "a local Ray"
        raise ForecastError(f"{shown}: Ray did not start ({type(err).__name__}: {_first_line(err)})") from None
    try:
        session = _describe(ray, address, not address)
        check_versions(ray)
        echo(f"{session.describe()} (ready in {time.perf_counter() - started:.1f}s)")
        yield session
    finally:
        ray.shutdown()          # a joined cluster keeps running; a Ray started here stops with its processes


def check_reachable(address: str) -> None:
    """A one-line error within seconds when nothing answers at ``address`` (``host:port``, ``ray://host:port``;
    ``auto``, a Ray already running on this machine, is Ray's own to find)."""
    if address == "auto":
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ForecastError(f"--ray-address {address}: expected HOST:PORT of the cluster's head (or ray://HOST:PORT)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise ForecastError(f"--ray-address {address}: nothing answers there ({err.strerror or type(err).__name__}); "
                            f"start the cluster (`ray start --head` on its head node) or fix the address; "
                            f"without one the command starts a local Ray") from None


def check_versions(ray) -> None:
    """Every alive node imports this toolkit's version and this torch build, or a one-line error naming it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = _versions()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = ray.remote(num_cpus=0)(_versions)
    found = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
                     for n in nodes])
    for node, there in zip(nodes, found):
        if tuple(there) != here:
            raise ForecastError(f"Ray node {node['NodeManagerAddress']} runs forecast {there[0]} with torch {there[1]}, "
                                f"this command forecast {here[0]} with torch {here[1]}: install the same versions on "
                                f"every node (README: On a Ray cluster)")


def _versions() -> tuple[str, str]:
    """This process's toolkit and torch versions, as installed."""
    from importlib.metadata import version

    import torch

    return version("forecast"), torch.__version__


def _describe(ray, address: str | None, started: bool) -> RaySession:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    return RaySession(address or ray.get_runtime_context().gcs_address, started, len(nodes),
                      len({n["NodeManagerAddress"] for n in nodes}), int(total.get("CPU", 0)), int(total.get("GPU", 0)))


def task_gpus(accelerator: str) -> float:
    """GPUs a task asks Ray for: one with ``--accelerator gpu`` (or cuda), none otherwise."""
    return 1.0 if accelerator in ("gpu", "cuda") else 0.0


def run_tasks(fn: Callable, items: list, shared: tuple, name: Callable[[object], str], gpus: float = 0.0,
              retries: int = TASK_RETRIES, on_wait: Callable[[], None] | None = None) -> Iterator[tuple[object, object]]:
    """``(item, fn(item, *shared))`` for every item, in the order the tasks finish; ``shared`` goes to the object
    store once. A task's own failure raises a one-line ``ForecastError`` starting with ``name(item)`` as soon as
    it is known; whatever ends the iteration early cancels the tasks left. ``on_wait``: called while waiting
    (about every half second), for progress the tasks themselves do not report."""
    ray = ray_module()
    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=retries, retry_exceptions=False)(_call)
    shared_ref = ray.put(shared)
    pending = {task.remote(fn, item, shared_ref): item for item in items}
    try:
        while pending:
            done, _ = _stoppable(lambda: ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS))
            if on_wait is not None:
                on_wait()
            for ref in done:
                item = pending.pop(ref)
                try:
                    result = _stoppable(lambda: ray.get(ref))
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None) or err
                    raise ForecastError(f"{name(item)}: {_first_line(cause)}") from None
                except ray.exceptions.RayError as err:       # retries spent: its nodes kept failing
                    raise ForecastError(f"{name(item)}: the cluster lost it {retries + 1} times "
                                        f"({type(err).__name__}); check the cluster's nodes") from None
                yield item, result
    finally:
        cancel(ray, list(pending))


def _stoppable(call: Callable):
    """``call()``; Ctrl-C or SIGTERM arriving inside Ray's compiled wait comes out as a ``SystemError`` caused by
    the stop: raise the stop itself, so the command stops as it does anywhere else."""
    try:
        return call()
    except SystemError as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, (KeyboardInterrupt, Interrupted)):
            raise cause from None
        raise


def cancel(ray, refs: list) -> None:
    """Stop tasks, running ones included (their worker processes are killed)."""
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)


def _call(fn: Callable, item, shared: tuple):
    return fn(item, *shared)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


@contextlib.contextmanager
def executor(kind: str, address: str | None, jobs: int, echo: Callable[[str], None] = print):
    """``None`` for the local executor (worker processes); a ``RaySession`` for ``ray``, held for the command."""
    if kind != "ray":
        if address:
            raise ForecastError("--ray-address is for --executor ray; add --executor ray, or drop the address")
        yield None
        return
    with ray_session(address, jobs, echo) as session:
        yield session
