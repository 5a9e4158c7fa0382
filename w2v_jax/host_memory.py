"""Host memory settings for training on the CPU: glibc's mmap threshold, and huge pages for the tables."""

from __future__ import annotations

import ctypes
import sys

import jax

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 8 << 20
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # Linux madvise advice
_HUGE_PAGE = 2 << 20


def pin_mmap_threshold() -> bool:
  """Fixes glibc's mmap threshold at 8 MiB; returns whether it could (glibc only).

  Left dynamic, glibc raises the threshold after each large free, after which the per-chunk arrays of the
  input pipeline (4M tokens, 16-32 MB) come from a heap that fragments and grows with the number of
  chunks. Fixed too low (TF's GeneratorDataset sets 128 KiB), XLA:CPU's per-step temporaries and its fused
  dots' scratch buffers (~0.4-2 MB) are each a fresh mmap and page faults: the step ran 1.35x slower.
  """
  try:  # the running process's own symbols: libc's, without find_library's ldconfig subprocess
    return ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
  except (OSError, AttributeError):  # not glibc
    return False


def use_huge_pages(*arrays: jax.Array) -> int:
  """Backs the CPU buffers of arrays with 2 MiB pages (Linux transparent huge pages); returns the bytes moved.

  Random row gathers and scatters into a table larger than the TLB's reach miss the TLB on every row; on
  huge pages a 1M x 100 step ran 1.3x faster (BENCHMARKS.md). The tables are donated to every step, so
  they keep these buffers for the whole run. A no-op where the kernel refuses (THP off, before Linux 6.1).
  """
  if not sys.platform.startswith("linux"):
    return 0
  madvise = ctypes.CDLL(None, use_errno=True).madvise
  madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
  done = 0
  for array in arrays:
    if not array.is_fully_addressable:  # a multi-host array: its shards may not be plain buffers of this host
      continue
    for shard in array.addressable_shards:
      if shard.device.platform != "cpu":
        continue
      pointer = shard.data.unsafe_buffer_pointer()
      start = -(-pointer // _HUGE_PAGE) * _HUGE_PAGE  # the whole huge pages inside the buffer
      end = (pointer + shard.data.nbytes) // _HUGE_PAGE * _HUGE_PAGE
      if end > start and madvise(start, end - start, _MADV_HUGEPAGE) == 0 and \
          madvise(start, end - start, _MADV_COLLAPSE) == 0:
        done += end - start
  return done
