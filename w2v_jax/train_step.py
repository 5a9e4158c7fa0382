"""The jitted training step: windows, negatives, loss and a sparse, curvature-damped update of the two tables.

Only the rows a step touches are gathered and differentiated; their updates are scattered back into
the donated tables, so a step costs the same for a vocabulary of 10k or 1M words.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from w2v_jax import sampling, windows
from w2v_jax.background import in_background
from w2v_jax.model import Tables


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static shape of the computation (changing any of these recompiles)."""

  model: str  # 'skipgram' or 'cbow'
  window: int
  negative: int
  shrink_windows: bool = True
  cbow_mean: bool = True
  negative_draws: int = 0  # negatives drawn per group of centers, shared by their windows (0: `negative`)
  negative_group: int = 1  # consecutive centers of a block sharing one set of negative draws
  damping: float = 0.0  # implicit-step strength (see damped_update); 0: plain summed SGD
  curvature_rank: int = 0  # curvature directions damped one by one, the rest as one (0: all of them)


def step_config(config) -> StepConfig:
  """The StepConfig of a training config (configs/*.py)."""
  return StepConfig(config.model, config.window, config.negative, config.shrink_windows, config.cbow_mean,
                    config.negative_draws, config.negative_group, config.damping, config.curvature_rank)


class Sampler(NamedTuple):
  """What the step draws from and weighs by: the negative-sampling alias table, and how often the most frequent
  words meet a row as its partner (the weights of the curvature shape, see curvature_shape)."""

  thresholds: jax.Array  # uint32 [V]
  alias: jax.Array  # int32 [V]
  center_share: jax.Array  # float32 [P]: share of the (subsampled) center positions held by word i < P
  partner_share: jax.Array  # float32 [P]: share of a center's partners (contexts, and negatives) held by word i


def make_sampler(counts, ns_exponent: float = 0.75, sample: float = 0.0, negative: int = 5,
                 curvature_words: int = 4096) -> Sampler:
  """The Sampler of a vocabulary (counts in descending order, as vocab ids are): alias table and shares."""
  counts = np.asarray(counts, np.float64)
  noise = sampling.negative_weights(counts, ns_exponent)
  thresholds, alias = sampling.alias_table(noise)
  kept = counts * sampling.keep_probabilities(counts, sample)
  rows = min(curvature_words, len(counts))
  center = kept[:rows] / kept.sum()
  partner = (kept[:rows] / kept.sum() + negative * noise[:rows] / noise.sum()) / (1 + negative)
  return Sampler(jnp.asarray(thresholds), jnp.asarray(alias), jnp.asarray(center, jnp.float32),
                 jnp.asarray(partner, jnp.float32))


class Curvature(NamedTuple):
  """The shared shape of every row's curvature, per table: eigenvalues (ascending) and eigenvectors.

  The curvature of row r in an update is taken as a_r * S, where a_r = sum over its pairs of w * s'(x) (s the
  sigmoid) and S the second moment of the partners it meets (rows of the other table, or CBOW's context means).
  """

  input_values: jax.Array  # [D] of S for updates of the input table (its partners are output rows)
  input_vectors: jax.Array  # [D, D]
  output_values: jax.Array  # [D] of S for updates of the output table (partners: input rows, CBOW context means)
  output_vectors: jax.Array  # [D, D]


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


def _loss(s_positive, positive_weight, s_negative, negative_weight):
  """-sum w log s(x) over positive scores - sum w log s(-x) over negative ones, from the sigmoids s the gradients
  use (no second pass of transcendentals); clipped at float32's tiny, so a saturated score counts large, not inf."""
  tiny = jnp.finfo(jnp.float32).tiny
  return -(jnp.sum(positive_weight * jnp.log(jnp.maximum(s_positive, tiny)))
           + jnp.sum(negative_weight * jnp.log(jnp.maximum(1.0 - s_negative, tiny))))


def _per_center(negatives: jax.Array, length: int) -> jax.Array:
  """[B, L/G, K] group negatives as [B, L, K]: each center's view of its group's draws."""
  return jnp.repeat(negatives, length // negatives.shape[1], axis=1)


def _negative_terms(rows: jax.Array, neg_rows: jax.Array, neg_weight: jax.Array):
  """Sigmoids of each center's row scored against its group's negatives, and the gradients both ways.

  rows [B, L, D], neg_rows [B, L/G, K, D], neg_weight [B, L, K]; d/dx -log s(-x) = s(x) per unit weight.
  A group's negatives meet its G centers in one [G, D] x [D, K] product.
  """
  b, length, dim = rows.shape
  groups = neg_rows.shape[1]
  grouped = rows.reshape(b, groups, length // groups, dim)
  s = jax.nn.sigmoid(jnp.einsum("bngd,bnkd->bngk", grouped, neg_rows).reshape(b, length, -1))
  g_grouped = (neg_weight * s).reshape(b, groups, length // groups, -1)
  g_rows = jnp.einsum("bngk,bnkd->bngd", g_grouped, neg_rows).reshape(b, length, dim)
  g_neg = jnp.einsum("bngk,bngd->bnkd", g_grouped, grouped)
  return s, g_rows, g_neg


def _negative_curvature(s: jax.Array, neg_weight: jax.Array, groups: int):
  """sum w s'(x) over each center's negative sigmoids s [B, L, K], and over each group's uses of a draw
  [B, L/G, K]; s'(x) = s (1 - s), the curvature of -log s(-x)."""
  b, length, k = s.shape
  h = neg_weight * s * (1.0 - s)
  return jnp.sum(h, axis=-1), jnp.sum(h.reshape(b, groups, length // groups, k), axis=2)


# The gradients below are written out (d/dx -log s(x) = s(x) - 1, d/dx -log s(-x) = s(x)) rather
# than taken with jax.grad: XLA:CPU then fuses each of them into one pass over the rows, 2x faster.

def skipgram_grads(cfg: StepConfig, tables: Tables, tokens, shrink, negatives):
  """Loss, number of pairs, the gradients w.r.t. the gathered center/context/negative rows, and their
  curvature weights (sum of w * s'(score) over each row's pairs).

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
  s_positive = jax.nn.sigmoid(windows.shifted_scores(in_rows, out_rows, cfg.window))
  s_negative, g_in_negative, g_neg = _negative_terms(in_rows, neg_rows, neg_weight)
  loss = _loss(s_positive, masks, s_negative, neg_weight)
  g_positive = masks * (s_positive - 1.0)
  g_in = windows.context_sum(out_rows, g_positive, cfg.window) + g_in_negative
  g_out = windows.context_scatter(in_rows, g_positive, cfg.window)
  h_positive = masks * s_positive * (1.0 - s_positive)
  h_center, h_neg = _negative_curvature(s_negative, neg_weight, negatives.shape[1])
  h_in = jnp.sum(h_positive, axis=0) + h_center
  h_out = windows.context_scatter(jnp.ones(tokens.shape + (1,)), h_positive, cfg.window)[..., 0]
  return loss, jnp.sum(masks), (g_in, g_out, g_neg), (h_in, h_out, h_neg)


def cbow_grads(cfg: StepConfig, tables: Tables, tokens, shrink, negatives):
  """CBOW: the mean (or sum) h of a center's context input rows predicts it through the output table.

  As in word2vec.c, every context row receives the full error of h (also when h is the mean), so
  the input gradient is not the exact derivative of the loss. A context row's curvature weight is its
  center's (divided by the number of contexts when h is their mean: its share of h).
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
  s_positive = jax.nn.sigmoid(jnp.einsum("bld,bld->bl", hidden, out_rows))
  s_negative, g_hidden_negative, g_neg = _negative_terms(hidden, neg_rows, neg_weight)
  loss = _loss(s_positive, has_context, s_negative, neg_weight)
  g_positive = has_context * (s_positive - 1.0)
  g_hidden = g_positive[..., None] * out_rows + g_hidden_negative
  g_in = windows.context_scatter(g_hidden, masks, cfg.window)
  g_out = g_positive[..., None] * hidden
  h_positive = has_context * s_positive * (1.0 - s_positive)
  h_center, h_neg = _negative_curvature(s_negative, neg_weight, negatives.shape[1])
  h_hidden = h_positive + h_center
  if cfg.cbow_mean:
    h_hidden = h_hidden / jnp.maximum(n_context, 1)
  h_in = windows.context_scatter(h_hidden[..., None], masks, cfg.window)[..., 0]
  return loss, jnp.sum(has_context), (g_in, g_out, g_neg), (h_in, h_positive, h_neg)


def _eigh(s: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Eigenvalues (clipped at 0) and eigenvectors of a symmetric positive semi-definite matrix."""
  values, vectors = jnp.linalg.eigh(s)
  return jnp.maximum(values, 0.0), vectors


def curvature_shape(cfg: StepConfig, tables: Tables, sampler: Sampler) -> Curvature:
  """The second moments S of each table's partners, from the P most frequent words' rows at their shares.

  Computed every curvature_every tokens from P rows (P x D^2, whatever V), not from the batch: frequent words
  are most of any row's partners. A CBOW output row meets context means h of about window + 1 (shrunk) input rows:
  E[h h^T] = m m^T + (S - m m^T) / n for n rows drawn with mean m and second moment S.
  """
  rows = sampler.center_share.shape[0]
  inputs, outputs = tables.input[:rows], tables.output[:rows]
  center = sampler.center_share / jnp.sum(sampler.center_share)
  partner = sampler.partner_share / jnp.sum(sampler.partner_share)
  input_moment = jnp.einsum("p,pd,pe->de", center, inputs, inputs)
  if cfg.model == "cbow":
    mean = center @ inputs
    contexts = (cfg.window + 1) if cfg.shrink_windows else 2 * cfg.window
    common = jnp.outer(mean, mean)
    input_moment = (common + (input_moment - common) / contexts) * (1.0 if cfg.cbow_mean else contexts**2)
  output_moment = jnp.einsum("p,pd,pe->de", partner, outputs, outputs)
  return Curvature(*_eigh(output_moment), *_eigh(input_moment))


def damped_update(scratch: jax.Array, ids: jax.Array, grads: jax.Array, weights: jax.Array, values: jax.Array,
                  vectors: jax.Array, factor, rank: int) -> tuple[jax.Array, jax.Array]:
  """Each entry's gradient, times the inverse of 1 + factor * a_r * S for its row r (a row-wise implicit step).

  a_r = the row's summed curvature weight in this update, S = V diag(values) V^T. Along an eigenvector of
  curvature c the step is divided by 1 + factor * c: plain SGD where c is small (rare rows), about a Newton
  step where it is large (frequent rows, whose many stale terms would otherwise add up and overshoot). Only
  the `rank` largest directions are damped one by one; the others together, by the largest of them (never
  less damped than exact). Sums use the scratch row array and set it back to zero: O(batch), not O(V).
  """
  scratch = scratch.at[ids].add(weights)
  a = scratch[ids]
  scratch = scratch.at[ids].set(0.0)
  if rank and rank < values.shape[0]:
    top, rest = vectors[:, -rank:], values[-rank - 1]
    base = 1.0 / (1.0 + factor * a * rest)  # the rest's divisor; the top directions trade it for their own
    along = (grads @ top) * (1.0 / (1.0 + factor * a[:, None] * values[None, -rank:]) - base[:, None])
    return grads * base[:, None] + along @ top.T, scratch  # two matmuls, not three
  rotated = grads @ vectors
  return (rotated / (1.0 + factor * a[:, None] * values[None, :])) @ vectors.T, scratch


def apply_update(cfg: StepConfig, tables: Tables, scratch: jax.Array, tokens, negatives, grads, weights,
                 shape: Curvature, lr) -> tuple[Tables, jax.Array]:
  """The update of the touched rows only: one scatter-add per table (duplicates add up), damped by curvature.

  With damping 0 it is plain SGD on the summed gradients: tables - lr * (dense gradient). `scratch` (float32
  [rows], see new_scratch) is all zeros before and after.
  """
  g_in, g_out, g_neg = grads
  h_in, h_out, h_neg = weights
  ids = jnp.maximum(tokens, 0).reshape(-1)
  dim = tables.input.shape[1]
  in_grads = g_in.reshape(-1, dim)
  out_ids = jnp.concatenate([ids, negatives.reshape(-1)])
  out_grads = jnp.concatenate([g_out.reshape(-1, dim), g_neg.reshape(-1, dim)])
  if cfg.damping:
    factor = cfg.damping * lr
    in_grads, scratch = damped_update(scratch, ids, in_grads, h_in.reshape(-1), shape.input_values,
                                      shape.input_vectors, factor, cfg.curvature_rank)
    out_grads, scratch = damped_update(scratch, out_ids, out_grads,
                                       jnp.concatenate([h_out.reshape(-1), h_neg.reshape(-1)]),
                                       shape.output_values, shape.output_vectors, factor, cfg.curvature_rank)
  return Tables(tables.input.at[ids].add(-lr * in_grads), tables.output.at[out_ids].add(-lr * out_grads)), scratch


def grads_function(cfg: StepConfig):
  """The gradient function of the configured model."""
  return skipgram_grads if cfg.model == "skipgram" else cbow_grads


def update_step(cfg: StepConfig, shape: Curvature, tables: Tables, scratch: jax.Array, metrics: jax.Array,
                tokens: jax.Array, shrink: jax.Array, negatives: jax.Array, lr):
  """One update of the blocks `tokens` with their drawn windows and negatives; metrics accumulates
  [loss sum, examples] on the device."""
  loss, count, grads, weights = grads_function(cfg)(cfg, tables, tokens, shrink, negatives)
  tables, scratch = apply_update(cfg, tables, scratch, tokens, negatives, grads, weights, shape, lr)
  return tables, scratch, metrics + jnp.stack([loss, count.astype(jnp.float32)])


def scan_updates(update, blocks_per_update: int, tables: Tables, scratch: jax.Array, metrics: jax.Array,
                 tokens: jax.Array, shrink: jax.Array, negatives: jax.Array, lr, place=lambda grouped: grouped):
  """`update` (an update_step) on successive groups of blocks_per_update blocks, each seeing the tables the
  previous ones left (lax.scan).

  Fewer tokens per update means fewer stale duplicates summed per row (closer to word2vec.c's
  sequential SGD) at the same tokens per device call. The batch's randomness is drawn before, in
  one piece: drawn per group inside the scan, threefry's small loops took a quarter of the step on
  CPU (BENCHMARKS.md). `place` may lay each grouped array out over devices.
  """
  groups = tokens.shape[0] // blocks_per_update
  if groups == 1:
    return update(tables, scratch, metrics, tokens, shrink, negatives, lr)

  def body(carry, group):
    return update(*carry, *group, lr), None

  grouped = tuple(place(x.reshape(groups, blocks_per_update, *x.shape[1:])) for x in (tokens, shrink, negatives))
  (tables, scratch, metrics), _ = jax.lax.scan(body, (tables, scratch, metrics), grouped)
  return tables, scratch, metrics


def train_step(cfg: StepConfig, blocks_per_update: int, blocks_per_shape: int, tables: Tables, scratch: jax.Array,
               metrics: jax.Array, tokens: jax.Array, lr, key: jax.Array, sampler: Sampler,
               update: Callable | None = None, place: Callable = lambda grouped: grouped):
  """One step on a batch of blocks: draws its randomness, then for each group of blocks_per_shape blocks
  estimates the curvature shape from the current tables and applies sequential updates of blocks_per_update
  blocks each with it.

  The shape is a statistic of the tables, so it must not be older than about one large update: 16 updates of
  65,536 tokens sharing the shape of their step's start diverged while the output table grew from zero.
  `update(shape, tables, scratch, metrics, tokens, shrink, negatives, lr)` is update_step (None) or its
  data-parallel form, and `place` lays each group out over devices (see scan_updates).
  """
  update = update or functools.partial(update_step, cfg)
  shrink, negatives = draw(cfg, key, tokens, sampler)

  def shaped_updates(tables, scratch, metrics, tokens, shrink, negatives, lr):
    shape = curvature_shape(cfg, tables, sampler)
    return scan_updates(functools.partial(update, shape), blocks_per_update, tables, scratch, metrics, tokens,
                        shrink, negatives, lr, place)

  return scan_updates(shaped_updates, blocks_per_shape, tables, scratch, metrics, tokens, shrink, negatives, lr,
                      place)


def new_scratch(rows: int) -> jax.Array:
  """The step's scratch for per-update row sums: float32 zeros [rows], rows those of the tables."""
  return jnp.zeros(rows, jnp.float32)


def make_train_step(cfg: StepConfig, blocks_per_update: int, blocks_per_shape: int):
  """The jitted `step(tables, scratch, metrics, tokens, lr, key, sampler) -> (tables, scratch, metrics)`, the
  first three donated so the scatters update them in place. blocks_per_update divides blocks_per_shape, which
  divides the batch's blocks."""
  return jax.jit(functools.partial(train_step, cfg, blocks_per_update, blocks_per_shape),
                 donate_argnums=(0, 1, 2))


def compile_ahead(step: Callable, *example_args) -> Callable:
  """`step` (jitted), compiled in a background thread for example_args (arrays or jax.ShapeDtypeStructs).

  The host's work before the first call (starting the input: TensorFlow's import alone takes 3 s) then
  overlaps XLA's compile; the first call waits for it, and raises its errors.
  """
  def compile_step():
    return step.lower(*example_args).compile()

  compiled = in_background(compile_step)

  def call(*args):
    compiled.result()  # jit's cache now holds the executable
    return step(*args)

  return call
