"""Host work in a thread of its own, overlapping work that releases the GIL (XLA's compile and steps, I/O)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable


def in_background(fn: Callable, *args) -> concurrent.futures.Future:
  """fn(*args) started in a new thread; the future holds its result or raises its error."""
  executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=fn.__name__)
  future = executor.submit(fn, *args)
  executor.shutdown(wait=False)
  return future
