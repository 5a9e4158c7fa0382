"""host_memory: the malloc setting takes effect on glibc; huge pages keep the tables' contents."""

from __future__ import annotations

import platform
import re

import jax.numpy as jnp
import numpy as np
import pytest

from w2v_jax import host_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_pin_mmap_threshold_takes_effect() -> None:
  """mallopt accepts the fixed threshold (it returns 1 on success)."""
  assert host_memory.pin_mmap_threshold() is True


def _thp_available() -> bool:
  """Transparent huge pages not off, and a kernel with MADV_COLLAPSE (Linux 6.1)."""
  try:
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
      enabled = "[never]" not in f.read()
  except OSError:
    return False
  version = re.match(r"(\d+)\.(\d+)", platform.release())
  return enabled and version is not None and (int(version[1]), int(version[2])) >= (6, 1)


def test_huge_pages_keep_the_table_and_move_whole_pages() -> None:
  """use_huge_pages moves whole 2 MiB pages inside the buffer (some, where the kernel allows), values intact."""
  values = np.random.default_rng(0).standard_normal((40_000, 100), dtype=np.float32)  # 16 MB
  table = jnp.asarray(values)
  moved = host_memory.use_huge_pages(table, jnp.zeros(3))
  assert moved % (2 << 20) == 0 and moved <= table.nbytes
  if _thp_available():
    assert moved >= table.nbytes - 2 * (2 << 20)
  np.testing.assert_array_equal(np.asarray(table + 0), values)


def test_huge_pages_of_mesh_placed_tables_leave_their_devices_readable() -> None:
  """Arrays placed on a mesh (as the trainer places every table) can be advised twice: their shards' device sets,
  which JAX shares between calls, are read, not emptied."""
  from w2v_jax import parallel
  from w2v_jax.model import Tables

  mesh = parallel.make_mesh(1)
  tables = parallel.shard_tables(Tables(jnp.ones((1000, 8)), jnp.zeros((1000, 8))), mesh, "replicated")
  for _ in range(2):
    host_memory.use_huge_pages(tables.input, tables.output)
  assert all(shard.data.devices() for shard in tables.input.addressable_shards)
