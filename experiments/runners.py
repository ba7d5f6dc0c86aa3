"""Run independent tasks in parallel: local processes, or Ray tasks on a cluster.

Both runners call ``on_done(task, result)`` in the driver as each task finishes (in completion order)
and ``on_error(task, exc)`` when one raises; the driver alone writes files, so Ray workers need no
shared filesystem and a killed driver loses only the tasks in flight.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from blendsim.errors import EXIT_INTERRUPTED, UserError

T = TypeVar("T")
R = TypeVar("R")
OnDone = Callable[[Any, Any], None]
OnError = Callable[[Any, BaseException], None]


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_local(
    fn: Callable[..., R], tasks: Sequence[tuple[Any, ...]], jobs: int, on_done: OnDone, on_error: OnError
) -> None:
    """``fn(*task)`` for every task; in this process when ``jobs == 1``, else in ``jobs`` processes."""
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    if jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            try:
                result = fn(*task)
            except Exception as exc:  # a bug in one task must not lose the others
                on_error(task, exc)
            else:
                on_done(task, result)
        return
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), initializer=_quiet_on_interrupt)
    try:
        pending: dict[Future[R], tuple[Any, ...]] = {pool.submit(fn, *t): t for t in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task = pending.pop(fut)
                error = fut.exception()
                if error is not None:
                    on_error(task, error)
                else:
                    on_done(task, fut.result())
    except BaseException:  # Ctrl-C or a driver error: stop the workers too, they hold no results
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        raise
    finally:  # drop queued tasks, do not wait for running ones
        pool.shutdown(wait=False, cancel_futures=True)


def _quiet_on_interrupt() -> None:
    """A worker's Ctrl-C (the terminal sends it to the whole process group) ends it without a
    traceback; the driver reports the interrupt once."""
    signal.signal(signal.SIGINT, lambda _sig, _frame: os._exit(EXIT_INTERRUPTED))


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast with one line when a ``host:port`` or ``ray://host:port`` address does not answer."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"bad Ray address {address!r}; give host:port, ray://host:port, 'auto' or 'local'")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(
            f"Ray cluster at {address!r} does not answer ({exc.strerror or exc}); "
            "start one with `ray start --head` or drop --ray"
        ) from None


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray, an optional extra: pip install 'blendsim[ray]'") from None
    return ray


def run_ray(
    fn: Callable[..., R], tasks: Sequence[tuple[Any, ...]], address: str, on_done: OnDone, on_error: OnError
) -> None:
    """``fn(*task)`` as one Ray task per task on the cluster at ``address`` (blendsim must be importable
    on its workers). One clear line when Ray is missing or the cluster does not answer."""
    ray = import_ray()
    check_reachable(address)
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot connect to the Ray cluster at {address!r}: {first}") from None
    try:
        remote = ray.remote(fn)
        pending = {remote.remote(*t): t for t in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:
                    on_error(task, exc)
                else:
                    on_done(task, result)
    finally:
        ray.shutdown()
