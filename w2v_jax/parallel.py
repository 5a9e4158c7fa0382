"""The data-parallel training step: the batch split over a 1-D 'data' mesh, tables replicated or sharded.

Each device computes the gradients of its blocks; the scatter lists (ids, updates) are all-gathered,
so every step moves O(batch rows x D) bytes and never a whole table. Randomness is drawn for the
global batch with the single-device key, so the result equals `train_step.make_train_step`'s up to
float summation order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from w2v_jax import train_step
from w2v_jax.model import Tables
from w2v_jax.train_step import Curvature, Sampler, StepConfig

AXIS = "data"
TABLE_LAYOUTS = ("replicated", "sharded")


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh over axis 'data' of the first num_devices of jax.devices() (0: all, every process).

  The axis is Auto (make_mesh's default is Explicit): jit's shardings and shard_map place the arrays,
  and XLA may split the global random draw along the batch.
  """
  devices = jax.devices()
  n = num_devices or len(devices)
  if not 1 <= n <= len(devices):
    raise ValueError(f"num_devices={num_devices} but {len(devices)} devices are available")
  return jax.make_mesh((n,), (AXIS,), (AxisType.Auto,), devices=devices[:n])


def _check_layout(layout: str) -> None:
  """Rejects an unknown table layout by name."""
  if layout not in TABLE_LAYOUTS:
    raise ValueError(f"layout={layout!r} must be one of {', '.join(TABLE_LAYOUTS)}")


def table_specs(layout: str) -> Tables:
  """The PartitionSpecs of the two tables: P() each, or split along the vocabulary."""
  _check_layout(layout)
  if layout == "replicated":
    return Tables(P(), P())
  return Tables(P(AXIS, None), P(AXIS, None))


def scratch_spec(layout: str) -> P:
  """The PartitionSpec of the step's scratch [rows]: split along the vocabulary as the tables are."""
  _check_layout(layout)
  return P() if layout == "replicated" else P(AXIS)


def padded_vocab_size(vocab_size: int, mesh: Mesh, layout: str) -> int:
  """The rows the tables hold under this layout: V, or V rounded up to a multiple of the mesh size."""
  _check_layout(layout)
  n = mesh.shape[AXIS] if layout == "sharded" else 1
  return -(-vocab_size // n) * n


def shard_tables(tables: Tables, mesh: Mesh, layout: str) -> Tables:
  """Places the tables on the mesh; "sharded" pads V with zero rows up to a multiple of the mesh size.

  The padding rows are never drawn or touched (ids stay < V); `unshard_tables` drops them.
  """
  rows = padded_vocab_size(tables.input.shape[0], mesh, layout)
  specs = table_specs(layout)

  def place(x: jax.Array, spec: P) -> jax.Array:  # may alias x: the step then donates (deletes) it
    x = jnp.asarray(x)
    if x.shape[0] != rows:
      x = jnp.pad(x, [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1))
    return jax.device_put(x, NamedSharding(mesh, spec))

  return Tables(*(place(x, s) for x, s in zip(tables, specs)))


def shard_scratch(vocab_size: int, mesh: Mesh, layout: str) -> jax.Array:
  """The step's zero scratch (train_step.new_scratch) for tables of vocab_size words, padded and placed as
  shard_tables places them."""
  rows = padded_vocab_size(vocab_size, mesh, layout)
  return jax.device_put(train_step.new_scratch(rows), NamedSharding(mesh, scratch_spec(layout)))


def replicate(x, mesh: Mesh) -> jax.Array:
  """x on every device of the mesh; make the metrics accumulator with it, else the step compiles twice.

  (An uncommitted jnp.zeros(2) and the step's own replicated output are different input types.)
  """
  return jax.device_put(jnp.asarray(x), NamedSharding(mesh, P()))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """The token batch [B, L] split along B: on several hosts each contributes its consecutive blocks."""
  return NamedSharding(mesh, P(AXIS, None))


def unshard_tables(tables: Tables, vocab_size: int) -> Tables:
  """The first vocab_size rows of each table (drops the padding of the sharded layout)."""
  return Tables(*(x[:vocab_size] for x in tables))


def _compact(tokens: jax.Array, negatives: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Renumbers the ids of local blocks 0..n-1 (SEP stays -1): (distinct ids [n], tokens, negatives).

  Equality between ids is preserved, so the single-device grads functions run unchanged on tables
  holding just these n rows.
  """
  n_tokens = tokens.size
  flat = jnp.concatenate([jnp.maximum(tokens, 0).reshape(-1), negatives.reshape(-1)])
  ids, inverse = jnp.unique(flat, size=flat.size, return_inverse=True, fill_value=0)
  inverse = inverse.reshape(-1).astype(jnp.int32)
  local_tokens = jnp.where(tokens >= 0, inverse[:n_tokens].reshape(tokens.shape), -1)
  return ids.astype(jnp.int32), local_tokens, inverse[n_tokens:].reshape(negatives.shape)


def _fetch_rows(tables: Tables, ids: jax.Array) -> Tables:
  """Full input/output rows of `ids` from vocabulary-sharded tables, O(global ids x D) traffic.

  Every device's ids are all-gathered; each device looks up the rows it owns (zeros elsewhere) and a
  reduce-scatter returns each device the sum over owners, i.e. its own rows.
  """
  shard_rows = tables.input.shape[0]
  all_ids = jax.lax.all_gather(ids, AXIS)  # [devices, n]
  local = all_ids - jax.lax.axis_index(AXIS) * shard_rows
  own = (local >= 0) & (local < shard_rows)
  local = jnp.where(own, local, 0)

  def rows(table: jax.Array) -> jax.Array:  # one collective per table: a fused concat is 8x slower on CPU
    return jax.lax.psum_scatter(jnp.where(own[..., None], table[local], 0.0), AXIS)  # [n, D]

  return Tables(rows(tables.input), rows(tables.output))


def _own_entries(tables: Tables, tokens, negatives, grads, weights):
  """The global scatter list restricted to this device's vocabulary shard, in local row indices.

  Entries owned elsewhere get a SEP token / row 0, a zero update and a zero curvature weight, so apply_update
  adds nothing for them.
  """
  shard_rows = tables.input.shape[0]
  offset = jax.lax.axis_index(AXIS) * shard_rows
  own_token = (tokens >= offset) & (tokens < offset + shard_rows)
  own_negative = (negatives >= offset) & (negatives < offset + shard_rows)
  g_in, g_out, g_neg = grads
  grads = (g_in * own_token[..., None], g_out * own_token[..., None], g_neg * own_negative[..., None])
  h_in, h_out, h_neg = weights
  weights = (h_in * own_token, h_out * own_token, h_neg * own_negative)
  tokens = jnp.where(own_token, tokens - offset, -1)
  negatives = jnp.where(own_negative, negatives - offset, 0)
  return tokens, negatives, grads, weights


def _local_step(cfg: StepConfig, layout: str, shape: Curvature, tables: Tables, scratch: jax.Array, metrics, tokens,
                shrink, negatives, lr):
  """The per-device body: local grads, all-gathered scatter list, update of this device's table part."""
  grads_fn = train_step.grads_function(cfg)
  if layout == "replicated":
    loss, count, grads, weights = grads_fn(cfg, tables, tokens, shrink, negatives)
  else:
    ids, local_tokens, local_negatives = _compact(tokens, negatives)
    rows = _fetch_rows(tables, ids)
    loss, count, grads, weights = grads_fn(cfg, rows, local_tokens, shrink, local_negatives)
  # The global scatter list, identical on every device (so replicas stay identical).
  gather = functools.partial(jax.lax.all_gather, axis_name=AXIS, tiled=True, to="invarying")
  tokens, negatives, grads, weights = gather((tokens, negatives, grads, weights))
  if layout == "sharded":
    tokens, negatives, grads, weights = _own_entries(tables, tokens, negatives, grads, weights)
  tables, scratch = train_step.apply_update(cfg, tables, scratch, tokens, negatives, grads, weights, shape, lr)
  totals = jax.lax.psum(jnp.stack([loss, count.astype(jnp.float32)]), AXIS)
  return tables, scratch, metrics + totals


def parallel_update(cfg: StepConfig, mesh: Mesh, layout: str, shape: Curvature, tables: Tables, scratch: jax.Array,
                    metrics: jax.Array, tokens: jax.Array, shrink: jax.Array, negatives: jax.Array, lr):
  """train_step.update_step with the blocks split over the mesh (to be jitted with the shardings)."""
  if tokens.shape[0] % mesh.shape[AXIS]:
    raise ValueError(f"{tokens.shape[0]} blocks per update do not split over {mesh.shape[AXIS]} devices")
  blocks = P(AXIS)
  body = jax.shard_map(
      functools.partial(_local_step, cfg, layout), mesh=mesh,
      in_specs=(Curvature(P(), P(), P(), P()), table_specs(layout), scratch_spec(layout), P(), blocks, blocks, blocks,
                P()),
      out_specs=(table_specs(layout), scratch_spec(layout), P()))
  return body(shape, tables, scratch, metrics, tokens, shrink, negatives, jnp.asarray(lr, jnp.float32))


def parallel_train_step(cfg: StepConfig, mesh: Mesh, layout: str, blocks_per_update: int, blocks_per_shape: int,
                        tables: Tables, scratch: jax.Array, metrics: jax.Array, tokens: jax.Array, lr, key: jax.Array,
                        sampler: Sampler):
  """train_step.train_step with each update's blocks split over the mesh.

  The randomness is the global draw, as on one device. The groups are re-split so every device holds
  its part of each group (an all-to-all of token ids and draws only).
  """
  by_group = NamedSharding(mesh, P(None, AXIS))
  return train_step.train_step(
      cfg, blocks_per_update, blocks_per_shape, tables, scratch, metrics, tokens, lr, key, sampler,
      update=functools.partial(parallel_update, cfg, mesh, layout),
      place=lambda grouped: jax.lax.with_sharding_constraint(grouped, by_group))


def make_parallel_train_step(cfg: StepConfig, mesh: Mesh, layout: str, blocks_per_update: int,
                             blocks_per_shape: int) -> Callable:
  """The jitted data-parallel step, signature of make_train_step's: tables, scratch and metrics donated.

  tokens [B, L] are split along B (B and blocks_per_update divisible by the mesh size; on several
  hosts pass the global batch as one jax.Array); the rest is replicated. Tables come from
  shard_tables and the scratch from shard_scratch (padded if sharded). blocks_per_update and blocks_per_shape
  as in train_step.make_train_step.
  """
  tables_sharding = Tables(*(NamedSharding(mesh, s) for s in table_specs(layout)))
  scratch_sharding = NamedSharding(mesh, scratch_spec(layout))
  replicated = NamedSharding(mesh, P())
  return jax.jit(
      functools.partial(parallel_train_step, cfg, mesh, layout, blocks_per_update, blocks_per_shape),
      in_shardings=(tables_sharding, scratch_sharding, replicated, batch_sharding(mesh), replicated, replicated,
                    replicated),
      out_shardings=(tables_sharding, scratch_sharding, replicated),
      donate_argnums=(0, 1, 2))

