"""The jitted training step: windows, negatives, loss and a sparse SGD update of the two tables.

Only the rows a step touches are gathered and differentiated; their updates are scattered back into
the donated tables, so a step costs the same for a vocabulary of 10k or 1M words.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
from collections.abc import Callable
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
  negative_draws: int = 0  # negatives drawn per group of centers, shared by their windows (0: `negative`)
  negative_group: int = 1  # consecutive centers of a block sharing one set of negative draws


def step_config(config) -> StepConfig:
  """The StepConfig of a training config (configs/*.py)."""
  return StepConfig(config.model, config.window, config.negative, config.shrink_windows, config.cbow_mean,
                    config.duplicate_cap, config.negative_draws, config.negative_group)


class Sampler(NamedTuple):
  """The negative-sampling alias table on the device."""

  thresholds: jax.Array  # uint32 [V]
  alias: jax.Array  # int32 [V]


# Step i's key, fold_in(run key, i), jitted: an eager fold_in took ~0.4 ms of host time per step (4% of a
# CPU step, more of an accelerator's), against ~0.02 ms for this dispatch.
step_key = jax.jit(jax.random.fold_in)


def draw(cfg: StepConfig, key: jax.Array, tokens: jax.Array, sampler: Sampler):
  """Per step randomness: each center's shrunk window b_i, and the negatives of each group of centers."""
  shrink_key, negative_key = jax.random.split(key)
  if cfg.shrink_windows:
    shrink = jax.random.randint(shrink_key, tokens.shape, 1, cfg.window + 1, dtype=jnp.int32)
  else:
    shrink = jnp.full(tokens.shape, cfg.window, jnp.int32)
  shape = (tokens.shape[0], tokens.shape[1] // cfg.negative_group, cfg.negative_draws or cfg.negative)
  negatives = sampling.draw_negatives(negative_key, sampler.thresholds, sampler.alias, shape)
  return shrink, negatives


def _log_sigmoid_loss(positive, positive_weight, negative, negative_weight):
  """-sum w log s(x) over positive scores - sum w log s(-x) over negative scores."""
  return -(jnp.sum(positive_weight * jax.nn.log_sigmoid(positive))
           + jnp.sum(negative_weight * jax.nn.log_sigmoid(-negative)))


def _per_center(negatives: jax.Array, length: int) -> jax.Array:
  """[B, L/G, K] group negatives as [B, L, K]: each center's view of its group's draws."""
  return jnp.repeat(negatives, length // negatives.shape[1], axis=1)


def _negative_terms(rows: jax.Array, neg_rows: jax.Array, neg_weight: jax.Array):
  """Scores of each center's row against its group's negatives, and the gradients both ways.

  rows [B, L, D], neg_rows [B, L/G, K, D], neg_weight [B, L, K]; d/dx -log s(-x) = s(x) per unit weight.
  A group's negatives meet its G centers in one [G, D] x [D, K] product.
  """
  b, length, dim = rows.shape
  groups = neg_rows.shape[1]
  grouped = rows.reshape(b, groups, length // groups, dim)
  scores = jnp.einsum("bngd,bnkd->bngk", grouped, neg_rows).reshape(b, length, -1)
  g = neg_weight * jax.nn.sigmoid(scores)
  g_grouped = g.reshape(b, groups, length // groups, -1)
  g_rows = jnp.einsum("bngk,bnkd->bngd", g_grouped, neg_rows).reshape(b, length, dim)
  g_neg = jnp.einsum("bngk,bngd->bnkd", g_grouped, grouped)
  return scores, g_rows, g_neg


# The gradients below are written out (d/dx -log s(x) = s(x) - 1, d/dx -log s(-x) = s(x)) rather
# than taken with jax.grad: XLA:CPU then fuses each of them into one pass over the rows, 2x faster.

def skipgram_grads(cfg: StepConfig, tables: Tables, tokens, shrink, negatives):
  """Loss, number of pairs, the gradients w.r.t. the gathered center/context/negative rows, and
  which negatives count.

  The center's input row scores each context's output row (shifted views, no pair list). A group
  of centers shares its negatives: each draw stands, for every pair of those centers whose context
  differs from it (word2vec.c skips a negative equal to the positive), for `negative / draws` of a
  negative.
  """
  masks, contexts = windows.pair_masks(tokens, shrink, cfg.window)
  ids = jnp.maximum(tokens, 0)
  per_center = _per_center(negatives, tokens.shape[1])
  differs = masks[..., None] & (per_center != contexts[..., None])
  neg_weight = jnp.sum(differs, axis=0) * (cfg.negative / negatives.shape[-1])
  in_rows, out_rows, neg_rows = tables.input[ids], tables.output[ids], tables.output[negatives]
  positive = windows.shifted_scores(in_rows, out_rows, cfg.window)
  negative, g_in_negative, g_neg = _negative_terms(in_rows, neg_rows, neg_weight)
  loss = _log_sigmoid_loss(positive, masks, negative, neg_weight)
  g_positive = masks * (jax.nn.sigmoid(positive) - 1.0)
  g_in = windows.context_sum(out_rows, g_positive, cfg.window) + g_in_negative
  g_out = windows.context_scatter(in_rows, g_positive, cfg.window)
  return loss, jnp.sum(masks), (g_in, g_out, g_neg), _group_valid(neg_weight, negatives)


def cbow_grads(cfg: StepConfig, tables: Tables, tokens, shrink, negatives):
  """CBOW: the mean (or sum) h of a center's context input rows predicts it through the output table.

  As in word2vec.c, every context row receives the full error of h (also when h is the mean), so
  the input gradient is not the exact derivative of the loss.
  """
  masks, _ = windows.pair_masks(tokens, shrink, cfg.window)
  ids = jnp.maximum(tokens, 0)
  n_context = jnp.sum(masks, axis=0)
  has_context = n_context > 0
  per_center = _per_center(negatives, tokens.shape[1])
  neg_weight = (has_context[..., None] & (per_center != tokens[..., None])) * (cfg.negative / negatives.shape[-1])
  in_rows, out_rows, neg_rows = tables.input[ids], tables.output[ids], tables.output[negatives]
  hidden = windows.context_sum(in_rows, masks, cfg.window)
  if cfg.cbow_mean:
    hidden = hidden / jnp.maximum(n_context, 1)[..., None]
  positive = jnp.einsum("bld,bld->bl", hidden, out_rows)
  negative, g_hidden_negative, g_neg = _negative_terms(hidden, neg_rows, neg_weight)
  loss = _log_sigmoid_loss(positive, has_context, negative, neg_weight)
  g_positive = has_context * (jax.nn.sigmoid(positive) - 1.0)
  g_hidden = g_positive[..., None] * out_rows + g_hidden_negative
  g_in = windows.context_scatter(g_hidden, masks, cfg.window)
  g_out = g_positive[..., None] * hidden
  return loss, jnp.sum(has_context), (g_in, g_out, g_neg), _group_valid(neg_weight, negatives)


def _group_valid(neg_weight: jax.Array, negatives: jax.Array) -> jax.Array:
  """[B, L/G, K]: which draws count for some center of their group."""
  b, length, k = neg_weight.shape
  return jnp.any(neg_weight.reshape(b, negatives.shape[1], length // negatives.shape[1], k) > 0, axis=2)


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

  A row counts one touch per token position, and a negative drawn for a group of G centers counts
  G * negative / draws touches (the share of the pairs' negatives it stands for), so drawing more
  negatives lowers the variance without tightening the cap. negative=0 means `draws`.
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
    # Integer units: a position is `draws` units, a negative draw G * `negative` units.
    draws, group = negatives.shape[-1], tokens.shape[1] // negatives.shape[1]
    negative = negative or draws
    units = jnp.concatenate([valid.astype(jnp.int32) * draws,
                             neg_valid.reshape(-1).astype(jnp.int32) * (group * negative)])
    out_updates, touched = _damp_duplicates(touched, out_ids, units, out_updates, cap * draws)
  new_output = tables.output.at[out_ids].add(out_updates)
  return Tables(new_input, new_output, touched)


def grads_function(cfg: StepConfig):
  """The gradient function of the configured model."""
  return skipgram_grads if cfg.model == "skipgram" else cbow_grads


def update_step(cfg: StepConfig, tables: Tables, metrics: jax.Array, tokens: jax.Array, shrink: jax.Array,
                negatives: jax.Array, lr):
  """One SGD update of the blocks `tokens` with their drawn windows and negatives; metrics accumulates
  [loss sum, examples] on the device."""
  loss, count, grads, neg_valid = grads_function(cfg)(cfg, tables, tokens, shrink, negatives)
  tables = apply_update(tables, tokens, negatives, neg_valid, grads, lr, cfg.duplicate_cap, cfg.negative)
  return tables, metrics + jnp.stack([loss, count.astype(jnp.float32)])


def scan_updates(update, blocks_per_update: int, tables: Tables, metrics: jax.Array, tokens: jax.Array,
                 shrink: jax.Array, negatives: jax.Array, lr, place=lambda grouped: grouped):
  """`update` (an update_step) on successive groups of blocks_per_update blocks (0: one group of the whole
  batch), each seeing the tables the previous ones left (lax.scan).

  Fewer tokens per update means fewer stale duplicates summed per row (closer to word2vec.c's
  sequential SGD) at the same tokens per device call. The batch's randomness is drawn before, in
  one piece: drawn per group inside the scan, threefry's small loops took a quarter of the step on
  CPU (BENCHMARKS.md). `place` may lay each grouped array out over devices.
  """
  blocks_per_update = blocks_per_update or tokens.shape[0]
  groups = tokens.shape[0] // blocks_per_update
  if groups == 1:
    return update(tables, metrics, tokens, shrink, negatives, lr)

  def body(carry, group):
    return update(*carry, *group, lr), None

  grouped = tuple(place(x.reshape(groups, blocks_per_update, *x.shape[1:])) for x in (tokens, shrink, negatives))
  (tables, metrics), _ = jax.lax.scan(body, (tables, metrics), grouped)
  return tables, metrics


def train_step(cfg: StepConfig, blocks_per_update: int, tables: Tables, metrics: jax.Array, tokens: jax.Array, lr,
               key: jax.Array, sampler: Sampler):
  """One step on a batch of blocks: draws its randomness, then applies it as sequential updates of
  blocks_per_update blocks each (0: one update of the whole batch)."""
  shrink, negatives = draw(cfg, key, tokens, sampler)
  return scan_updates(functools.partial(update_step, cfg), blocks_per_update, tables, metrics, tokens, shrink,
                      negatives, lr)


def make_train_step(cfg: StepConfig, blocks_per_update: int = 0):
  """The jitted train_step with tables and metrics donated, so the scatters update them in place."""
  return jax.jit(functools.partial(train_step, cfg, blocks_per_update), donate_argnums=(0, 1))


def compile_ahead(step: Callable, *example_args) -> Callable:
  """`step` (jitted), compiled in a background thread for example_args (arrays or jax.ShapeDtypeStructs).

  The host's work before the first call (starting the input: TensorFlow's import alone takes 3 s) then
  overlaps XLA's compile; the first call waits for it, and raises its errors.
  """
  executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="compile")
  compiled = executor.submit(lambda: step.lower(*example_args).compile())
  executor.shutdown(wait=False)

  def call(*args):
    compiled.result()  # jit's cache now holds the executable
    return step(*args)

  return call
