"""Keeps host memory flat over long runs: large buffers go straight to the OS instead of the malloc heap."""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 128 << 10


def pin_mmap_threshold() -> bool:
  """Fixes glibc's mmap threshold at 128 KiB; returns whether it could (glibc only).

  glibc raises the threshold each time a large block is freed, after which the per-chunk numpy arrays
  of the input pipeline come from the heap, which fragments and grows with the number of chunks: RSS
  then rose 11% from a 17M- to a 170M-word epoch; with the threshold fixed, 4% (BENCHMARKS.md).
  """
  try:  # the running process's own symbols: libc's, without find_library's ldconfig subprocess
    return ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
  except (OSError, AttributeError):  # not glibc
    return False
