"""Fixes glibc's mmap threshold: flat host memory over long epochs, and no mmap per XLA:CPU scratch buffer."""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 8 << 20


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
