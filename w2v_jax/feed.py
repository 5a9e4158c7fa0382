"""The training input, one entry for one host or many: each step's global token batch placed on the devices, with
where it leaves every host's stream and how many of the epoch's words have been read.

Several hosts each read their own shard. Their shards hold different numbers of batches, so before an epoch
they agree on a plan (one numpy pass over each shard, identical to the training input): the step count, and each
step's positions and words. A host that runs out pads with all-SEP batches, which train nothing, so every host
calls the collective step equally often.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Sharding

from w2v_jax import input_pipeline
from w2v_jax.errors import UserError
from w2v_jax.input_pipeline import SEP
from w2v_jax.prepare import Data, HostShard
from w2v_jax.vocab import Vocab


class Fed(NamedTuple):
  """One step's input."""

  tokens: jax.Array  # [B, L] the global batch (this host's blocks among them), placed as the step takes it
  positions: list  # after this batch: every process's [stream index, word position]
  words: int  # the epoch's corpus tokens read after this batch, by all hosts


def epoch_input(config: ml_collections.ConfigDict, data: Data, epoch: int, positions: list,
                sharding: Sharding) -> Iterator[Fed]:
  """The rest of `epoch` from a checkpoint's positions ([]: the epoch's start), placed with `sharding`."""
  start = host_position(positions, data.shard)
  host_blocks = config.batch_size // config.block_length // jax.process_count()
  batches = epoch_batches(config, data.vocab, data.stream, epoch, *start, host_blocks * config.block_length)

  def place(tokens: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(sharding, tokens)

  if jax.process_count() == 1:  # the batch itself says where it ends
    for batch in batches:
      yield Fed(place(batch["tokens"]), [[int(batch["end_index"]), int(batch["raw_end"])]], int(batch["raw_end"]))
    return
  plan = epoch_plan(config, data, epoch, start, host_blocks)
  for batch, after, words in zip(pad_batches(batches, plan.steps, host_blocks, config.block_length), plan.positions,
                                 plan.words):
    yield Fed(place(batch["tokens"]), after.tolist(), int(words))


def epoch_batches(config: ml_collections.ConfigDict, vocab: Vocab, stream: input_pipeline.TokenCache, epoch: int,
                  start_index: int, start_pos: int, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """The rest of an epoch's batches (of this host's batch_size tokens) from the token cache (up to the end
  of this host's shard), via tf.data (or numpy without TensorFlow)."""
  args = (vocab, config.sample, config.seed, epoch, batch_size, config.block_length, start_index, start_pos)
  if config.input == "tfdata":
    ds = input_pipeline.tf_batches(input_pipeline.tf_cached_ids(stream, start_index), *args)
    return ds.as_numpy_iterator()
  return input_pipeline.numpy_batches(stream, *args)


def host_position(positions: list, shard: HostShard) -> tuple[int, int]:
  """This process's (stream index, word position) in a checkpoint's per-process positions."""
  if not positions:
    return shard.start, shard.words_start
  if len(positions) != jax.process_count():
    raise UserError(f"the latest checkpoint is mid-epoch with {len(positions)} process(es)' stream positions; "
                    f"resume it with {len(positions)} process(es) (a checkpoint taken at an epoch end resumes "
                    "with any number)")
  return tuple(positions[jax.process_index()])


class EpochPlan(NamedTuple):
  """The rest of an epoch on all hosts: positions [steps, processes, 2] (each host's stream index and
  word position after each step) and words [steps] (this epoch's corpus tokens read by all hosts)."""

  positions: np.ndarray
  words: np.ndarray

  @property
  def steps(self) -> int:
    return len(self.words)


def epoch_plan(config: ml_collections.ConfigDict, data: Data, epoch: int, start: tuple[int, int],
               host_blocks: int) -> EpochPlan:
  """Counts this host's remaining batches of the epoch and agrees with the other hosts on the plan."""
  batches = input_pipeline.numpy_batches(data.stream, data.vocab, config.sample, config.seed, epoch,
                                         host_blocks * config.block_length, config.block_length, *start)
  ends = np.asarray([[b["end_index"], b["raw_end"]] for b in batches], np.int64).reshape(-1, 2)
  return agree_plan(ends, start, data.shard.words_start)


def agree_plan(local_ends: np.ndarray, start: tuple[int, int], shard_words_start: int) -> EpochPlan:
  """Gathers every host's batch ends ([n, 2] end_index, raw_end) into the common step plan.

  A host with fewer batches stays at its last position for the padding steps. start is this host's
  position before the first batch; shard_words_start the word position of its shard's first token.
  """
  n = multihost_utils.process_allgather(np.int64(len(local_ends))) if jax.process_count() > 1 else [len(local_ends)]
  steps = int(np.max(n))
  padded = np.empty([steps, 2], np.int64)
  padded[:len(local_ends)] = local_ends
  padded[len(local_ends):] = local_ends[-1] if len(local_ends) else start
  # One allgather carries both the ends and, as a last row, the shard's first word position.
  with_origin = np.concatenate([padded, [[shard_words_start, shard_words_start]]])
  if jax.process_count() > 1:
    everyone = np.asarray(multihost_utils.process_allgather(with_origin))  # [processes, steps + 1, 2]
  else:
    everyone = with_origin[None]
  positions = everyone[:, :steps].transpose(1, 0, 2)
  words = (positions[:, :, 1] - everyone[:, steps:, 1].T).sum(axis=1)
  return EpochPlan(positions, words)


def pad_batches(batches: Iterator[dict], steps: int, blocks: int, block_length: int) -> Iterator[dict]:
  """The host's batches, then all-SEP batches (which train nothing) up to the common step count."""
  count = 0
  for batch in batches:
    count += 1
    yield batch
  for _ in range(steps - count):
    yield {"tokens": np.full([blocks, block_length], SEP, np.int32)}
