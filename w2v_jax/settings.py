"""What a training config means: its checks (one line naming the field) and the values resolved from it once."""

from __future__ import annotations

import os

import jax
import ml_collections

from w2v_jax import distributed, parallel
from w2v_jax.errors import UserError

MODELS = ("skipgram", "cbow")


def resolve_alpha(config: ml_collections.ConfigDict) -> float:
  """The starting learning rate: config.alpha, else word2vec.c's default for the model."""
  if config.alpha is not None:
    return float(config.alpha)
  return 0.05 if config.model == "cbow" else 0.025


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects nonsense values with one line naming the field, before any work is done."""
  checks = [
      (config.model in MODELS, "model", f"must be one of {', '.join(MODELS)}"),
      (config.dim >= 1, "dim", "must be >= 1"),
      (config.window >= 1, "window", "must be >= 1"),
      (config.negative >= 1, "negative", "must be >= 1 (training uses negative sampling)"),
      (config.negative_draws >= 0, "negative_draws", "must be >= 0 (0: negative)"),
      (config.negative_group >= 1 and config.block_length % config.negative_group == 0, "negative_group",
       f"must be >= 1 and divide block_length ({config.block_length})"),
      (config.ns_exponent >= 0, "ns_exponent", "must be >= 0"),
      (config.sample >= 0, "sample", "must be >= 0 (0 turns subsampling off)"),
      (config.min_count >= 1, "min_count", "must be >= 1"),
      (config.max_vocab_size >= 0, "max_vocab_size", "must be >= 0 (0 means no cap)"),
      (config.vocab_processes >= 1, "vocab_processes", "must be >= 1"),
      (config.epochs >= 1, "epochs", "must be >= 1"),
      (resolve_alpha(config) > 0, "alpha", "must be > 0"),
      (0 <= config.min_alpha <= resolve_alpha(config), "min_alpha", "must be in [0, alpha]"),
      (config.block_length > 2 * config.window, "block_length", "must be > 2 * window"),
      (config.batch_size >= config.block_length and config.batch_size % max(config.block_length, 1) == 0,
       "batch_size", f"must be a positive multiple of block_length ({config.block_length})"),
      (config.update_size >= 0 and config.update_size % max(config.block_length, 1) == 0
       and (config.update_size >= config.batch_size or config.batch_size % max(config.update_size, 1) == 0),
       "update_size", "must be 0 or a multiple of block_length that divides batch_size (or exceeds it: one update)"),
      (config.num_devices >= 0, "num_devices", "must be >= 0 (0: all devices)"),
      (config.table_layout in parallel.TABLE_LAYOUTS, "table_layout", f"must be one of {parallel.TABLE_LAYOUTS}"),
      (config.damping >= 0, "damping", "must be >= 0 (0: plain summed SGD)"),
      (config.curvature_rank >= 0, "curvature_rank", "must be >= 0 (0, or dim and above: every direction)"),
      (config.curvature_words >= 1, "curvature_words", "must be >= 1"),
      (config.curvature_every >= 0, "curvature_every", "must be >= 0 (0: once per step)"),
      (config.log_every_steps >= 1, "log_every_steps", "must be >= 1"),
      (config.tensorboard_every_steps >= 1, "tensorboard_every_steps", "must be >= 1"),
      (config.checkpoint_every_steps >= 0, "checkpoint_every_steps", "must be >= 0 (0: not by steps)"),
      (config.checkpoint_every_secs >= 0, "checkpoint_every_secs", "must be >= 0 (0: not by time)"),
      (config.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1"),
      (config.input in ("tfdata", "numpy"), "input", "must be 'tfdata' or 'numpy'"),
      (-(2**63) <= config.seed < 2**63, "seed", "must be in [-2**63, 2**63) (jax.random.key's range)"),
      (config.coordinator_timeout_secs >= 1, "coordinator_timeout_secs", "must be >= 1"),
  ]
  for ok, field, what in checks:
    if not ok:
      raise UserError(f"config.{field}={config[field]!r} {what}")


def check_memory(config, vocab_size: int) -> None:
  """Refuses tables that cannot fit, in one line, before they are allocated.

  A device holds both [V, D] float32 tables, as much again while the vectors are evaluated, and a step's
  scratch (a rough bound); CPU devices share the host's memory, each holding its own copy when replicated.
  """
  table_bytes = 2 * vocab_size * config.dim * 4
  update_tokens = _update_tokens(config)
  scratch = 4 * (vocab_size + config.dim * (16 * update_tokens + 4 * config.curvature_words + 8 * config.dim))
  devices = jax.local_devices()[:config.num_devices or None]
  limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices]
  if all(limits):
    need, have, where = 2 * table_bytes + scratch, min(limits), f"a {devices[0].platform} device holds"
  else:
    copies = len(devices) if config.table_layout == "replicated" else 1
    need, have, where = (copies + 1) * table_bytes + scratch, _available_host_bytes(), "the host has available"
  if have is not None and need > have:
    raise UserError(f"config.dim={config.dim} with {vocab_size} words needs about {_gib(need)} (the two tables, "
                    f"2 x words x dim x 4 bytes, are {_gib(table_bytes)}; besides: copies for evaluation and per "
                    f"device, a step's buffers) but {where} {_gib(have)}; lower --config.dim or "
                    "--config.max_vocab_size")


def _gib(n: int) -> str:
  return f"{n / 2**30:.1f} GiB" if n < 1000 * 2**30 else f"{n / 2**30:,.0f} GiB"


def _available_host_bytes() -> int | None:
  """The host memory available to a new allocation (Linux's MemAvailable), or None where unknown."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (OSError, ValueError):
    return None


def _update_tokens(config) -> int:
  """The tokens per update config.update_size asks for: 0, or more than the batch, means the whole batch."""
  return min(config.update_size or config.batch_size, config.batch_size)


def update_blocks(config, devices: int) -> int:
  """Blocks per sequential update: update_size (0 or more than the batch: the whole batch), rounded up to
  whole blocks per device."""
  batch_blocks = config.batch_size // config.block_length
  blocks = _update_tokens(config) // config.block_length
  rounded = -(-blocks // devices) * devices
  if batch_blocks % rounded:
    raise UserError(f"config.update_size={config.update_size} on {devices} devices needs updates of {rounded} blocks, "
                    f"which do not divide the batch; use an update_size that is a multiple of "
                    f"{devices * config.block_length} and divides batch_size")
  if rounded != blocks:
    distributed.log(f"update_size {config.update_size} rounded up to {rounded * config.block_length} tokens "
                    f"(one block per device per update)")
  return rounded


def shape_blocks(config, blocks_per_update: int) -> int:
  """Blocks per curvature shape: the most whole updates that hold at most curvature_every tokens (at least one
  update) and divide the batch's updates evenly."""
  batch_blocks = config.batch_size // config.block_length
  updates = batch_blocks // blocks_per_update
  if not config.curvature_every:
    return batch_blocks
  most = max(1, config.curvature_every // (blocks_per_update * config.block_length))
  return max(n for n in range(1, min(most, updates) + 1) if updates % n == 0) * blocks_per_update


def mesh_devices(config: ml_collections.ConfigDict) -> int:
  """The devices of the 1-D data mesh: config.num_devices (0: all, of every process), checked against the batch."""
  available = len(jax.devices())
  if jax.process_count() > 1 and config.num_devices not in (0, available):
    raise UserError(f"config.num_devices={config.num_devices}: with several processes the mesh spans all "
                    f"{available} devices; leave it at 0")
  if config.num_devices > available:
    raise UserError(f"config.num_devices={config.num_devices} but only {available} device(s) are visible")
  n = config.num_devices or available
  if (config.batch_size // config.block_length) % n:
    raise UserError(f"config.batch_size={config.batch_size} gives {config.batch_size // config.block_length} blocks, "
                    f"not divisible by {n} devices; use a multiple of {n * config.block_length}")
  return n
