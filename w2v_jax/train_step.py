"""The jitted training step: windows, negatives, loss and a sparse SGD update of the two tables.

Only the rows a step touches are gathered and differentiated; their updates are scattered back into
the donated tables, so a step costs the same for a vocabulary of 10k or 1M words.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from w2v_jax import sampling, windows
from w2v_jax.model import Tables


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static shape of the computation (changing any of these recompiles)."""

  model: str  # 'skipgram' or 'cbow'
  window: int
  negative: int
  shrink_windows: bool = True
  cbow_mean: bool = True
  duplicate_cap: float = 0.0  # rows touched more often in a step are scaled down to this; 0: plain SGD
  negative_draws: int = 0  # negatives drawn per center, shared by its window (0: `negative`)


class Sampler(NamedTuple):
  """The negative-sampling alias table on the device."""

  thresholds: jax.Array  # uint32 [V]
  alias: jax.Array  # int32 [V]


def draw(cfg: StepConfig, key: jax.Array, tokens: jax.Array, sampler: Sampler):
  """Per step randomness: each center's shrunk window b_i and its `negative` negatives."""
  shrink_key, negative_key = jax.random.split(key)
  if cfg.shrink_windows:
    shrink = jax.random.randint(shrink_key, tokens.shape, 1, cfg.window + 1, dtype=jnp.int32)
  else:
    shrink = jnp.full(tokens.shape, cfg.window, jnp.int32)
  negatives = sampling.draw_negatives(
      negative_key, sampler.thresholds, sampler.alias, (*tokens.shape, cfg.negative_draws or cfg.negative))
  return shrink, negatives


def _log_sigmoid_loss(positive, positive_weight, negative, negative_weight):
  """-sum w log s(x) over positive scores - sum w log s(-x) over negative scores."""
  return -(jnp.sum(positive_weight * jax.nn.log_sigmoid(positive))
           + jnp.sum(negative_weight * jax.nn.log_sigmoid(-negative)))


# The gradients below are written out (d/dx -log s(x) = s(x) - 1, d/dx -log s(-x) = s(x)) rather
# than taken with jax.grad: XLA:CPU then fuses each of them into one pass over the rows, 2x faster.

def skipgram_grads(cfg: StepConfig, tables: Tables, tokens, shrink, negatives):
  """Loss, number of pairs, the gradients w.r.t. the gathered center/context/negative rows, and
  which negatives count.

  The center's input row scores each context's output row (shifted views, no pair list). The
  center's negatives are shared by its window: each stands for `negative / draws` of a negative per
  pair whose context differs from it (word2vec.c skips a negative equal to the positive).
  """
  masks, contexts = windows.pair_masks(tokens, shrink, cfg.window)
  ids = jnp.maximum(tokens, 0)
  draws = negatives.shape[-1]
  neg_weight = jnp.sum(masks[..., None] & (negatives != contexts[..., None]), axis=0) * (cfg.negative / draws)
  in_rows, out_rows, neg_rows = tables.input[ids], tables.output[ids], tables.output[negatives]
  positive = windows.shifted_scores(in_rows, out_rows, cfg.window)
  negative = jnp.einsum("bld,blkd->blk", in_rows, neg_rows)
  loss = _log_sigmoid_loss(positive, masks, negative, neg_weight)
  g_positive = masks * (jax.nn.sigmoid(positive) - 1.0)
  g_negative = neg_weight * jax.nn.sigmoid(negative)
  g_in = windows.context_sum(out_rows, g_positive, cfg.window) + jnp.einsum("blk,blkd->bld", g_negative, neg_rows)
  g_out = windows.context_scatter(in_rows, g_positive, cfg.window)
  g_neg = g_negative[..., None] * in_rows[:, :, None, :]
  return loss, jnp.sum(masks), (g_in, g_out, g_neg), neg_weight > 0


def cbow_grads(cfg: StepConfig, tables: Tables, tokens, shrink, negatives):
  """CBOW: the mean (or sum) h of a center's context input rows predicts it through the output table.

  As in word2vec.c, every context row receives the full error of h (also when h is the mean), so
  the input gradient is not the exact derivative of the loss.
  """
  masks, _ = windows.pair_masks(tokens, shrink, cfg.window)
  ids = jnp.maximum(tokens, 0)
  n_context = jnp.sum(masks, axis=0)
  has_context = n_context > 0
  neg_weight = (has_context[..., None] & (negatives != tokens[..., None])) * (cfg.negative / negatives.shape[-1])
  in_rows, out_rows, neg_rows = tables.input[ids], tables.output[ids], tables.output[negatives]
  hidden = windows.context_sum(in_rows, masks, cfg.window)
  if cfg.cbow_mean:
    hidden = hidden / jnp.maximum(n_context, 1)[..., None]
  positive = jnp.einsum("bld,bld->bl", hidden, out_rows)
  negative = jnp.einsum("bld,blkd->blk", hidden, neg_rows)
  loss = _log_sigmoid_loss(positive, has_context, negative, neg_weight)
  g_positive = has_context * (jax.nn.sigmoid(positive) - 1.0)
  g_negative = neg_weight * jax.nn.sigmoid(negative)
  g_hidden = g_positive[..., None] * out_rows + jnp.einsum("blk,blkd->bld", g_negative, neg_rows)
  g_in = windows.context_scatter(g_hidden, masks, cfg.window)
  g_out = g_positive[..., None] * hidden
  g_neg = g_negative[..., None] * hidden[:, :, None, :]
  return loss, jnp.sum(has_context), (g_in, g_out, g_neg), neg_weight > 0


def _damp_duplicates(touched, ids, units, updates, cap_units):
  """Scales the summed update of a row touched u > cap_units units in this step by cap_units / u.

  Summing hundreds of stale updates to one frequent row (a common negative) in a large batch makes
  SGD diverge, where sequential SGD would see its sigmoid saturate (WORD2VEC.md, rule 4). Counting
  uses the scratch array and restores it to zero: O(batch), not O(V).
  """
  touched = touched.at[ids].add(units)
  count = touched[ids]
  touched = touched.at[ids].add(-units)
  scale = jnp.minimum(1.0, cap_units / jnp.maximum(count, 1).astype(jnp.float32))
  return updates * scale[:, None], touched


def apply_update(tables: Tables, tokens, negatives, neg_valid, grads, lr, cap: float = 0.0,
                 negative: int = 0) -> Tables:
  """SGD on the touched rows only: one scatter-add per table (duplicates add up, capped by `cap`).

  A row counts one touch per token position, and a drawn negative counts negative / draws of a touch
  (it stands for that share of the `negative` negatives per pair), so drawing more negatives lowers
  the variance without tightening the cap. negative=0 means one touch per draw.
  """
  g_in, g_out, g_neg = grads
  valid = (tokens >= 0).reshape(-1)
  ids = jnp.maximum(tokens, 0).reshape(-1)
  dim = tables.input.shape[1]
  in_updates, touched = -lr * g_in.reshape(-1, dim), tables.touched
  if cap:
    in_updates, touched = _damp_duplicates(touched, ids, valid.astype(jnp.int32), in_updates, cap)
  new_input = tables.input.at[ids].add(in_updates)
  out_ids = jnp.concatenate([ids, negatives.reshape(-1)])
  out_updates = -lr * jnp.concatenate([g_out.reshape(-1, dim), g_neg.reshape(-1, dim)])
  if cap:
    # Integer units: a position is `draws` units, a negative draw `negative` units.
    draws = negatives.shape[-1]
    negative = negative or draws
    units = jnp.concatenate([valid.astype(jnp.int32) * draws, neg_valid.reshape(-1).astype(jnp.int32) * negative])
    out_updates, touched = _damp_duplicates(touched, out_ids, units, out_updates, cap * draws)
  new_output = tables.output.at[out_ids].add(out_updates)
  return Tables(new_input, new_output, touched)


def grads_function(cfg: StepConfig):
  """The gradient function of the configured model."""
  return skipgram_grads if cfg.model == "skipgram" else cbow_grads


def train_step(cfg: StepConfig, tables: Tables, metrics: jax.Array, tokens: jax.Array, lr,
               key: jax.Array, sampler: Sampler):
  """One SGD step on a batch of blocks; metrics accumulates [loss sum, examples] on the device."""
  shrink, negatives = draw(cfg, key, tokens, sampler)
  loss, count, grads, neg_valid = grads_function(cfg)(cfg, tables, tokens, shrink, negatives)
  tables = apply_update(tables, tokens, negatives, neg_valid, grads, lr, cfg.duplicate_cap, cfg.negative)
  return tables, metrics + jnp.stack([loss, count.astype(jnp.float32)])


def scan_updates(update, blocks_per_update: int, tables: Tables, metrics: jax.Array, tokens: jax.Array, lr,
                 key: jax.Array, sampler: Sampler, place=lambda grouped: grouped):
  """`update` (a train_step) on successive groups of blocks, each seeing the previous ones (lax.scan).

  Fewer tokens per update means fewer stale duplicates summed per row (closer to word2vec.c's
  sequential SGD) at the same tokens per device call. Group g draws with fold_in(key, g); `place`
  may lay the grouped tokens out over devices.
  """
  groups = tokens.shape[0] // blocks_per_update
  if groups == 1:
    return update(tables, metrics, tokens, lr, key, sampler)

  def body(carry, group):
    index, group_tokens = group
    return update(*carry, group_tokens, lr, jax.random.fold_in(key, index), sampler), None

  grouped = place(tokens.reshape(groups, blocks_per_update, tokens.shape[1]))
  (tables, metrics), _ = jax.lax.scan(body, (tables, metrics), (jnp.arange(groups), grouped))
  return tables, metrics


def sequential_train_step(cfg: StepConfig, blocks_per_update: int, tables: Tables, metrics: jax.Array,
                          tokens: jax.Array, lr, key: jax.Array, sampler: Sampler):
  """train_step applied as sequential updates of blocks_per_update blocks (see scan_updates)."""
  return scan_updates(functools.partial(train_step, cfg), blocks_per_update, tables, metrics, tokens, lr, key,
                      sampler)


def make_train_step(cfg: StepConfig, blocks_per_update: int = 0):
  """The jitted step with tables and metrics donated, so the scatters update them in place.

  With blocks_per_update, the batch is applied as sequential updates of that many blocks each.
  """
  if blocks_per_update:
    return jax.jit(functools.partial(sequential_train_step, cfg, blocks_per_update), donate_argnums=(0, 1))
  return jax.jit(functools.partial(train_step, cfg), donate_argnums=(0, 1))
