"""Several processes (hosts): jax.distributed start-up, agreement between the processes, and each host's shard
of the token stream.

Hosts shard the token cache (one stream for all files) into contiguous ranges cut at sentence ends,
of about equal size whatever the files' sizes; a host's batches hold batch_size / process_count
tokens of its own range (feed.py pads the shorter shards).
"""

from __future__ import annotations

import os
import sys
import threading

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from w2v_jax.errors import UserError, first_line
from w2v_jax.input_pipeline import SEP
from w2v_jax.logs import LOGGER

AUTO = "auto"


def check_config(config: ml_collections.ConfigDict) -> None:
  """Rejects inconsistent coordinator_address / num_processes / process_id with one line."""
  address, n, pid = config.coordinator_address, config.num_processes, config.process_id
  if not address:
    if n or pid != -1:
      raise UserError(f"config.num_processes={n} / config.process_id={pid} need config.coordinator_address "
                      f"(host:port of process 0, or '{AUTO}' on a TPU pod or SLURM)")
    return
  if n < 0 or (address != AUTO and n < 1):
    raise UserError(f"config.num_processes={n} must be >= 1 with config.coordinator_address={address!r}")
  in_range = 0 <= pid < n if address != AUTO else pid == -1 or (pid >= 0 and (not n or pid < n))
  if not in_range:
    raise UserError(f"config.process_id={pid} must be in 0..{n - 1} (config.num_processes={n})")


def initialize(config: ml_collections.ConfigDict) -> None:
  """Joins the other processes through jax.distributed, before anything touches a device, waiting at most
  config.coordinator_timeout_secs.

  'auto' lets JAX detect the cluster (TPU pod, SLURM, ...). On CPU, JAX 0.10's default cross-process
  collectives (gloo) need no setting. JAX aborts the process in C++ when its own timeout passes, so a watchdog
  thread ends the wait first, with one error line and status 2 (nothing is written before this point).
  """
  check_config(config)
  address, timeout = config.coordinator_address, config.coordinator_timeout_secs
  if not address:
    return
  who = "the detected cluster's coordinator" if address == AUTO else f"coordinator {address}"
  if config.process_id >= 0:
    who += f" (process {config.process_id} of {config.num_processes})"
  LOGGER.info(f"connecting to {who}, up to {timeout} s")
  watchdog = threading.Timer(timeout, _give_up, [f"no answer from {who} within {timeout} s (config."
                                                 "coordinator_timeout_secs): start every process, check "
                                                 "coordinator_address (process 0's host:port) and the network"])
  watchdog.daemon = True
  watchdog.start()
  try:
    if address == AUTO:
      jax.distributed.initialize(num_processes=config.num_processes or None,
                                 process_id=config.process_id if config.process_id >= 0 else None,
                                 initialization_timeout=timeout + _JAX_TIMEOUT_MARGIN_SECS)
    else:
      jax.distributed.initialize(address, config.num_processes, config.process_id,
                                 initialization_timeout=timeout + _JAX_TIMEOUT_MARGIN_SECS)
  except ValueError as e:  # 'auto' outside a cluster JAX can detect
    raise UserError(f"config.coordinator_address={address!r}: {e} (no TPU pod or SLURM job detected); give "
                    "process 0's host:port with num_processes and process_id") from None
  except jax.errors.JaxRuntimeError as e:  # process 0 cannot serve on the address (port in use, bad host)
    raise UserError(f"config.coordinator_address={address!r}: {first_line(e)}; give a free port on "
                    "process 0's host") from None
  finally:
    watchdog.cancel()


# JAX's own wait is longer than the watchdog's, so that the watchdog, not JAX's abort, ends it.
_JAX_TIMEOUT_MARGIN_SECS = 60


def _give_up(message: str) -> None:
  """The watchdog's end: one error line and exit status 2, as UserError (the main thread is blocked in C++)."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  os._exit(2)


def is_main() -> bool:
  """Whether this process writes logs, metrics and outputs (process 0)."""
  return jax.process_index() == 0


def log(message: str) -> None:
  """An INFO message through the w2v_jax logger, on process 0 only: the other processes stay quiet."""
  if is_main():
    LOGGER.info(message)


def barrier(name: str) -> None:
  """Waits until every process gets here (no-op on one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def any_process(*flags: bool) -> tuple[bool, ...]:
  """Each flag OR-ed over the processes (a collective: every process must call it together)."""
  if jax.process_count() == 1:
    return flags
  gathered = multihost_utils.process_allgather(np.asarray(flags, np.int32))
  return tuple(bool(x) for x in np.asarray(gathered).reshape(-1, len(flags)).any(axis=0))


def to_host(x: jax.Array | np.ndarray) -> np.ndarray:
  """The whole array as numpy on every process (gathered when other processes hold parts of it; a host array as
  it is)."""
  if isinstance(x, np.ndarray) or x.is_fully_addressable or x.is_fully_replicated:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def shard_bounds(stream: np.ndarray, num_shards: int) -> list[tuple[int, int]]:
  """num_shards contiguous [start, end) ranges covering the stream, each cut just after a SEP.

  A cut moves forward from the even split to the next sentence end, so no sentence is split between
  hosts (a shard may be empty when one sentence spans several even splits).
  """
  cuts = [0]
  for k in range(1, num_shards):
    at = max(k * len(stream) // num_shards, cuts[-1])
    cuts.append(_next_sentence_start(stream, at))
  return list(zip(cuts, [*cuts[1:], len(stream)]))


def _next_sentence_start(stream: np.ndarray, at: int, chunk: int = 1 << 20) -> int:
  """The first index >= at that follows a SEP (or the stream end)."""
  if at == 0:
    return 0
  for start in range(at - 1, len(stream), chunk):
    seps = np.flatnonzero(np.asarray(stream[start:start + chunk]) == SEP)
    if len(seps):
      return start + int(seps[0]) + 1
  return len(stream)


def words_before(stream: np.ndarray, index: int, chunk: int = 1 << 22) -> int:
  """Corpus tokens (non-SEP entries) before stream[index]: a shard's first word position."""
  return sum(int(np.count_nonzero(np.asarray(stream[i:min(i + chunk, index)]) != SEP))
             for i in range(0, index, chunk))
