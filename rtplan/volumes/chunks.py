"""Work on index ranges shared among threads (the compiled kernels release the GIL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np


def run_in_chunks(fn, n: int, *, threads: int, min_chunk: int) -> None:
    """Call ``fn(start, stop)`` over ``[0, n)`` cut into at most ``threads`` chunks of at
    least ``min_chunk`` items each, on a thread pool when there is more than one.

    ``fn`` must write disjoint results for disjoint ranges.

    Examples
    --------
    >>> seen = []
    >>> run_in_chunks(lambda a, b: seen.append((int(a), int(b))), 10, threads=2, min_chunk=4)
    >>> sorted(seen)
    [(0, 5), (5, 10)]
    """
    k = max(1, min(threads, n // min_chunk))
    if k == 1:
        fn(0, n)
        return
    edges = np.linspace(0, n, k + 1).astype(np.int64)
    with ThreadPoolExecutor(k) as pool:
        list(pool.map(fn, edges[:-1], edges[1:]))
