"""host_memory: the malloc setting that keeps RSS flat over long epochs takes effect on glibc."""

from __future__ import annotations

import platform

import pytest

from w2v_jax import host_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_pin_mmap_threshold_takes_effect() -> None:
  """mallopt accepts the fixed threshold (it returns 1 on success)."""
  assert host_memory.pin_mmap_threshold() is True
