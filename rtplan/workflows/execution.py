"""One job per patient, in this process, on a local process pool or on a Dask cluster.

Every cohort workflow (``agree``, ``dvh``, ``check``) runs its per-patient function through
:func:`run_each`, so they share these conventions.

Conventions
-----------
Order
    Results come back in the order of the inputs, wherever and in whatever order the jobs
    ran, so a run's rows do not depend on ``jobs`` or on the cluster.
Memory
    At most two jobs per worker are in flight; a result is handed to the caller as soon as
    all earlier ones have been, so a cohort is streamed, never held whole.
Paths
    Paths are made absolute (:func:`absolute_paths`, without resolving symbolic links)
    before they are sent anywhere: a worker's current folder is not the caller's.
Local pool
    ``jobs=1`` runs in this process; ``jobs>1`` in worker processes started by a fork
    server (they inherit no threads -- SimpleITK's, tqdm's -- of the caller).
Dask
    ``scheduler`` is the address of a ``dask.distributed`` scheduler whose workers see the
    same files and have rtplan installed.  Before anything is sent, the scheduler must
    answer an identity request within ``timeout_s`` (default 10 s); otherwise -- nothing
    listening, connection refused, a host that does not answer, a server that accepts and
    never replies, not a Dask scheduler -- a one-line :class:`~rtplan.errors.InputError`
    names the address (the command line exits 2).
Warnings
    An :class:`~rtplan.errors.RtplanWarning` a job emits in a worker process or on a Dask
    worker is recorded there and emitted again here, in input order,
    so that the caller (and the command line's one place that shows them) sees it as if the
    job had run in this process.
Progress
    :func:`progress_bar` draws a tqdm bar on stderr only when stderr is a terminal: logs
    and pipes get no bar.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import partial

from rtplan.defaults import DEFAULT_TIMEOUT_S
from rtplan.errors import InputError, RtplanWarning

#: Seconds a Dask scheduler has to answer before the run gives up.


def absolute_paths(paths: Sequence[str | os.PathLike]) -> list[str]:
    """``paths`` as absolute path strings (symbolic links are kept, not resolved)."""
    return [os.path.abspath(os.fspath(p)) for p in paths]


def progress_bar(total: int, *, unit: str = "patient", desc: str | None = None, show: bool = True):
    """A tqdm progress bar on stderr, drawn only when ``show`` and stderr is a terminal."""
    from tqdm import tqdm

    enabled = show and sys.stderr.isatty()
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, disable=not enabled)


def connect_dask(address: str, timeout_s: float = DEFAULT_TIMEOUT_S):
    """A ``dask.distributed.Client`` on ``address``, or a one-line :class:`InputError`.

    The scheduler is first asked for its identity over a plain connection, under one
    deadline of ``timeout_s`` seconds (``Client`` alone can wait forever on a server that
    accepts the connection and never replies).
    """
    import asyncio

    try:
        from dask.distributed import Client
        from distributed.comm import connect
    except ImportError:
        raise InputError("--scheduler needs dask.distributed: pip install 'rtplan[dask]'") from None
    if not timeout_s > 0:
        raise InputError(f"the scheduler timeout must be > 0 s, got {timeout_s}")

    async def identity():
        comm = await connect(address, timeout=timeout_s)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            comm.abort()

    problem = None
    try:
        reply = asyncio.run(asyncio.wait_for(identity(), timeout_s))
        if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
            problem = "it is not a Dask scheduler"
    except (TimeoutError, asyncio.TimeoutError):
        problem = f"no answer within {timeout_s:g} s"
    except Exception as exc:  # noqa: BLE001 - bad address, refused, reset: all one message
        problem = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    if problem is None:
        try:
            return Client(address, timeout=timeout_s, set_as_default=False)
        except Exception as exc:  # noqa: BLE001
            problem = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    raise InputError(f"cannot use the Dask scheduler at {address}: {problem}")


def worker_count(jobs: int | None, n_items: int) -> int:
    """Local worker processes: ``jobs`` (default: CPU count), at most one per item.

    Raises
    ------
    InputError
        ``jobs`` below 1.
    """
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    return max(1, min(jobs or os.cpu_count() or 1, n_items))


def run_each(
    func: Callable,
    items: Sequence,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = False,
    unit: str = "patient",
    **kwargs,
) -> Iterator:
    """``func(item, **kwargs)`` for every item, yielded in input order (module conventions).

    ``func`` must be a module-level function (it is pickled) that reports its own failures
    in its result rather than raising.

    Parameters
    ----------
    func : callable
    items : sequence
        Picklable arguments (paths must already be absolute: :func:`absolute_paths`).
    jobs : int, optional
        Local worker processes (default: CPU count; 1 runs in this process).
    scheduler : str, optional
        Dask scheduler address; overrides ``jobs``.
    timeout_s : float
        Seconds the scheduler has to answer (:func:`connect_dask`).
    progress : bool
        Show a progress bar (on a terminal only).
    unit : str
        Progress bar unit.
    """
    job = partial(func, **kwargs) if kwargs else func
    with progress_bar(len(items), unit=unit, show=progress) as bar:
        workers = 0 if scheduler else worker_count(jobs, len(items))
        if workers == 1:
            results = map(job, items)
        else:
            remote = partial(_recording_warnings, job)
            if scheduler:
                recorded = _dask(remote, items, scheduler, timeout_s)
            else:
                recorded = _local(remote, items, workers)
            results = _warned_again(recorded)
        for result in results:
            bar.update(1)
            yield result


def _recording_warnings(job, item) -> tuple:
    """``job(item)`` in a worker, with the :class:`RtplanWarning` texts it emitted (other
    warnings take their usual course in the worker)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RtplanWarning)
        result = job(item)
    ours = [str(w.message) for w in caught if issubclass(w.category, RtplanWarning)]
    for w in caught:
        if not issubclass(w.category, RtplanWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result, ours


def _warned_again(recorded) -> Iterator:
    """The results of :func:`_recording_warnings`, their warnings emitted in this process."""
    for result, ours in recorded:
        for text in ours:
            warnings.warn(text, RtplanWarning, stacklevel=2)
        yield result


def _windowed(submit, items, window) -> Iterator:
    """Submit up to ``window`` items ahead; yield results in order (``future.result()``)."""
    pending: deque = deque()
    it = iter(items)
    for item in it:
        pending.append(submit(item))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        for item in it:
            pending.append(submit(item))
            break
        yield result


def _local(job, items, workers) -> Iterator:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from _windowed(partial(pool.submit, job), items, 2 * workers)


def _dask(job, items, address, timeout_s) -> Iterator:
    client = connect_dask(address, timeout_s)
    with client:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        yield from _windowed(lambda item: client.submit(job, item, pure=False), items, 2 * workers)
