"""Thread pools the process keeps, one per name, made on first use.

An export starts no threads of its own for its uploads, encoders or requests sent
together: it uses these, so a small export does not pay for starting and stopping
threads. Each user keeps its own bound on how much of a pool it takes at once.
Imports nothing of the package.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def shared_pool(name: str, threads: int) -> ThreadPoolExecutor:
    """The process's pool called ``name`` (its threads are named after it)."""
    with _pools_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(threads, thread_name_prefix=name)
        return pool
