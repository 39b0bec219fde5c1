"""Real worker processes for the multi-process tests: spawn, collect, reap.

Each worker is a spawned Python process (its own interpreter, event loop, connection pools
and single-flight state) running ``target(*args, barrier, results)``: it waits on the shared
``barrier`` so the workers start their burst together, and puts one result on ``results``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any


async def run_workers(
    target: Callable[..., None], args: Sequence[tuple[Any, ...]], *, wait: float = 60
) -> list[Any]:
    """Run one spawned process per item of ``args``; return their results (in the order
    they arrived) once every process has exited with code 0.

    A worker still alive 30 s after its result (a hang) is killed, so none outlives its test.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args))
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, results)) for a in args]
    for proc in procs:
        proc.start()
    try:
        collected = [await asyncio.to_thread(results.get, True, wait) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():  # pragma: no cover - only when a worker hangs
                proc.kill()
    assert [proc.exitcode for proc in procs] == [0] * len(procs)
    return collected
