"""train_step: the sparse skip-gram/CBOW updates against dense and Python-loop references."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2v_jax import sampling, train_step
from w2v_jax.model import Tables
from w2v_jax.train_step import Curvature, StepConfig, make_sampler, make_train_step, new_scratch

SEP = -1
VOCAB, DIM, WINDOW, NEGATIVE = 6, 4, 3, 3
LR = 0.25
COUNTS = np.array([30, 10, 8, 5, 3, 1])

# Jitted pieces (eager dispatch of every small op is slow); cfg (and damped_update's rank) are static.
skipgram_grads = jax.jit(train_step.skipgram_grads, static_argnums=0)
cbow_grads = jax.jit(train_step.cbow_grads, static_argnums=0)
apply_update = jax.jit(train_step.apply_update, static_argnums=0)
draw = jax.jit(train_step.draw, static_argnums=0)
curvature_shape = jax.jit(train_step.curvature_shape, static_argnums=0)
damped_update = jax.jit(train_step.damped_update, static_argnums=7)


def make_tables(seed: int = 0, vocab: int = VOCAB, dim: int = DIM) -> Tables:
  """Random input and output tables (output not zero, so every gradient term is non-trivial)."""
  rng = np.random.default_rng(seed)
  return Tables(
      jnp.asarray(rng.normal(0, 0.5, (vocab, dim)), jnp.float32),
      jnp.asarray(rng.normal(0, 0.5, (vocab, dim)), jnp.float32),
  )


def update_tables(cfg: StepConfig, tables: Tables, tokens, negatives, grads, weights, shape: Curvature, lr) -> Tables:
  """apply_update with a fresh scratch, which it must hand back as float32 zeros."""
  new, scratch = apply_update(cfg, tables, new_scratch(tables.input.shape[0]), tokens, negatives, grads, weights,
                              shape, lr)
  assert scratch.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(scratch), 0)
  return new


def make_batch(seed: int = 0, draws: int = NEGATIVE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Tokens with repeated words, a sentence end and padding; random shrink; negatives with repeats."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, VOCAB, size=(2, 12)).astype(np.int32)
  tokens[0, 5] = SEP
  tokens[1, 9:] = SEP
  shrink = rng.integers(1, WINDOW + 1, size=tokens.shape).astype(np.int32)
  negatives = rng.integers(0, VOCAB, size=(*tokens.shape, draws)).astype(np.int32)
  return tokens, shrink, negatives


def group_negatives(seed: int, group: int, draws: int) -> np.ndarray:
  """Negatives shared by groups of `group` centers: [2, 12 / group, draws] ids with repeats."""
  return np.random.default_rng(seed).integers(0, VOCAB, size=(2, 12 // group, draws)).astype(np.int32)


def tables_np(tables: Tables) -> tuple[np.ndarray, np.ndarray]:
  return np.asarray(tables.input, np.float64), np.asarray(tables.output, np.float64)


def any_shape(tables: Tables, model: str = "skipgram") -> Curvature:
  """A valid curvature shape (what a plain-SGD update ignores)."""
  return curvature_shape(StepConfig(model, WINDOW, NEGATIVE), tables, make_sampler(COUNTS[:tables.input.shape[0]]))


def dsigmoid(x: float) -> float:
  """s'(x) = s(x) (1 - s(x)), in float64."""
  s = 1.0 / (1.0 + np.exp(-x))
  return s * (1.0 - s)


def skipgram_reference_terms(tokens, negatives, pairs):
  """Explicit term lists: positive (center id, context id) and weighted negative (center id, neg id, w)."""
  positive = [(tokens[b, i], tokens[b, j]) for b, i, j in pairs]
  negative = []
  for b in range(tokens.shape[0]):
    for i in range(tokens.shape[1]):
      contexts = [tokens[b2, j] for b2, i2, j in pairs if (b2, i2) == (b, i)]
      for k in range(negatives.shape[2]):
        weight = sum(1 for t in contexts if t != negatives[b, i, k])
        if weight:
          negative.append((tokens[b, i], negatives[b, i, k], weight))
  return positive, negative


def dense_skipgram_loss(inp, out, positive, negative):
  """-sum log s(in.out) over pairs - sum w log s(-in.out) over negatives, on whole tables."""
  pc, po = positive
  nc, nn, nw = negative
  pos = jnp.sum(inp[pc] * out[po], axis=-1)
  neg = jnp.sum(inp[nc] * out[nn], axis=-1)
  return -jnp.sum(jax.nn.log_sigmoid(pos)) - jnp.sum(nw * jax.nn.log_sigmoid(-neg))


dense_skipgram_value_and_grad = jax.jit(jax.value_and_grad(dense_skipgram_loss, argnums=(0, 1)))


@pytest.mark.parametrize("seed", [0, 1])
def test_skipgram_update_equals_dense_sgd(seed: int, reference_pairs) -> None:
  """With damping 0 the scattered update is exactly tables - lr * dense grad (duplicates summed)."""
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE)
  tables = make_tables(seed)
  tokens, shrink, negatives = make_batch(seed)
  pairs = reference_pairs(tokens, shrink, WINDOW)
  positive, negative = skipgram_reference_terms(tokens, negatives, pairs)
  # The batch really exercises duplicates and the "negative equals the context" rule.
  assert len({c for c, _ in positive}) < len(positive)
  assert any(n == t for b, i, j in pairs for n, t in zip(negatives[b, i], [tokens[b, j]] * NEGATIVE))

  loss, n_pairs, grads, weights = skipgram_grads(cfg, tables, tokens, shrink, negatives)
  positive_ids = tuple(np.array([p[k] for p in positive], np.int32) for k in range(2))
  negative_terms = tuple(np.array([n[k] for n in negative], dtype) for k, dtype in enumerate("iif"))
  want_loss, (g_in, g_out) = dense_skipgram_value_and_grad(
      tables.input, tables.output, positive_ids, negative_terms)
  assert int(n_pairs) == len(pairs)
  np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)

  new = update_tables(cfg, tables, jnp.asarray(tokens), jnp.asarray(negatives), grads, weights, any_shape(tables), LR)
  np.testing.assert_allclose(np.asarray(new.input), np.asarray(tables.input - LR * g_in), atol=2e-6)
  np.testing.assert_allclose(np.asarray(new.output), np.asarray(tables.output - LR * g_out), atol=2e-6)


def cbow_reference(tables: Tables, tokens, negatives, pairs, mean: bool):
  """word2vec.c's CBOW rule by Python loops: returns (loss, centers, new input, new output)."""
  inp, out = tables_np(tables)
  g_in, g_out = np.zeros_like(inp), np.zeros_like(out)
  loss, centers = 0.0, 0

  def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))

  for b in range(tokens.shape[0]):
    for i in range(tokens.shape[1]):
      context = [tokens[b, j] for b2, i2, j in pairs if (b2, i2) == (b, i)]
      if not context:
        continue
      centers += 1
      h = sum(inp[t] for t in context)
      if mean:
        h = h / len(context)
      g_h = np.zeros(inp.shape[1])
      targets = [(tokens[b, i], 1.0)] + [(n, 0.0) for n in negatives[b, i] if n != tokens[b, i]]
      for target, label in targets:
        score = float(h @ out[target])
        loss -= np.log(sigmoid(score) if label else sigmoid(-score))
        err = sigmoid(score) - label  # d loss / d score
        g_h += err * out[target]
        g_out[target] += err * h
      for t in context:
        g_in[t] += g_h  # the full gradient of h to every context row, not divided by the count
  return loss, centers, inp - LR * g_in, out - LR * g_out


@pytest.mark.parametrize("mean", [True, False])
@pytest.mark.parametrize("seed", [0, 3])
def test_cbow_update_matches_word2vec_rule(mean: bool, seed: int, reference_pairs) -> None:
  """CBOW loss and update (damping 0) equal a Python loop of word2vec.c's rule (mean or sum of contexts)."""
  cfg = StepConfig("cbow", WINDOW, NEGATIVE, cbow_mean=mean)
  tables = make_tables(seed)
  tokens, shrink, negatives = make_batch(seed)
  pairs = reference_pairs(tokens, shrink, WINDOW)
  assert any(n == tokens[b, i] for b in range(2) for i in range(12) for n in negatives[b, i])

  loss, centers, grads, weights = cbow_grads(cfg, tables, tokens, shrink, negatives)
  want_loss, want_centers, want_in, want_out = cbow_reference(tables, tokens, negatives, pairs, mean)
  assert int(centers) == want_centers
  np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
  shape = any_shape(tables, "cbow")
  new = update_tables(cfg, tables, jnp.asarray(tokens), jnp.asarray(negatives), grads, weights, shape, LR)
  np.testing.assert_allclose(np.asarray(new.input), want_in, atol=1e-5)
  np.testing.assert_allclose(np.asarray(new.output), want_out, atol=1e-5)


# ---- the curvature-damped (row-wise implicit) update ----


def row_weight_sums(tokens, negatives, weights, vocab: int = VOCAB) -> tuple[np.ndarray, np.ndarray]:
  """The curvature weights summed per input row and per output row, as apply_update gathers them."""
  h_in, h_out, h_neg = (np.asarray(h, np.float64) for h in weights)
  assert h_in.shape == h_out.shape == tokens.shape and h_neg.shape == negatives.shape
  ids = np.maximum(tokens, 0).ravel()
  out = np.bincount(ids, h_out.ravel(), vocab) + np.bincount(negatives.ravel(), h_neg.ravel(), vocab)
  return np.bincount(ids, h_in.ravel(), vocab), out


@pytest.mark.parametrize(("draws", "group"), [(NEGATIVE, 1), (4 * NEGATIVE, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_skipgram_curvature_weights_equal_pair_loop(seed: int, draws: int, group: int, reference_pairs) -> None:
  """Per row, h sums s'(in_c . out_ctx) over its positive pairs and w * s'(in_c . out_n) over its weighted
  negatives (w: the pairs the draw stands for, times negative / draws), on both rows of each term."""
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE, negative_draws=draws, negative_group=group)
  tables = make_tables(seed)
  tokens, shrink, _ = make_batch(seed)
  negatives = group_negatives(seed + 10, group, draws)
  pairs = reference_pairs(tokens, shrink, WINDOW)
  positive, negative = skipgram_reference_terms(tokens, np.repeat(negatives, group, axis=1), pairs)
  assert any(w < len([p for p in pairs if tokens[p[0], p[1]] == c]) for c, _, w in negative)  # a skipped context

  inp, out = tables_np(tables)
  want_in, want_out = np.zeros(VOCAB), np.zeros(VOCAB)
  for c, o in positive:
    h = dsigmoid(inp[c] @ out[o])
    want_in[c] += h
    want_out[o] += h
  for c, n, w in negative:
    h = w * (NEGATIVE / draws) * dsigmoid(inp[c] @ out[n])
    want_in[c] += h
    want_out[n] += h

  _, _, _, weights = skipgram_grads(cfg, tables, tokens, shrink, negatives)
  got_in, got_out = row_weight_sums(tokens, negatives, weights)
  np.testing.assert_allclose(got_in, want_in, rtol=1e-5)
  np.testing.assert_allclose(got_out, want_out, rtol=1e-5)


@pytest.mark.parametrize("mean", [True, False])
@pytest.mark.parametrize(("draws", "group"), [(NEGATIVE, 1), (4 * NEGATIVE, 3)])
def test_cbow_curvature_weights_equal_center_loop(mean: bool, draws: int, group: int, reference_pairs) -> None:
  """CBOW: the center's output row gets s'(h . out_c), each negative n != center w * s'(h . out_n); each
  context row the center's total, divided by the number of contexts when h is their mean."""
  cfg = StepConfig("cbow", WINDOW, NEGATIVE, cbow_mean=mean, negative_draws=draws, negative_group=group)
  tables = make_tables(3)
  tokens, shrink, _ = make_batch(3)
  negatives = group_negatives(5, group, draws)
  per_center = np.repeat(negatives, group, axis=1)
  pairs = reference_pairs(tokens, shrink, WINDOW)
  assert (per_center == tokens[..., None]).any()  # the "negative equals the center" rule is exercised

  inp, out = tables_np(tables)
  want_in, want_out = np.zeros(VOCAB), np.zeros(VOCAB)
  for b in range(tokens.shape[0]):
    for i in range(tokens.shape[1]):
      context = [tokens[b, j] for b2, i2, j in pairs if (b2, i2) == (b, i)]
      if not context:
        continue
      hidden = sum(inp[t] for t in context) / (len(context) if mean else 1)
      center = tokens[b, i]
      total = dsigmoid(hidden @ out[center])
      want_out[center] += total
      for n in per_center[b, i]:
        if n != center:
          h = (NEGATIVE / draws) * dsigmoid(hidden @ out[n])
          want_out[n] += h
          total += h
      for t in context:
        want_in[t] += total / len(context) if mean else total

  _, _, _, weights = cbow_grads(cfg, tables, tokens, shrink, negatives)
  got_in, got_out = row_weight_sums(tokens, negatives, weights)
  np.testing.assert_allclose(got_in, want_in, rtol=1e-5)
  np.testing.assert_allclose(got_out, want_out, rtol=1e-5)


def damped_reference(ids, grads, weights, values, vectors, factor: float, rank: int) -> np.ndarray:
  """Each gradient times (I + factor * a_r * S_k)^-1, a_r = its row's summed weight, by explicit inverses.

  S_k = V diag(values') V^T, where values' keeps the `rank` largest eigenvalues and sets every other one to
  the next largest (rank 0 or >= D: values' = values, the exact S).
  """
  values = np.asarray(values, np.float64).copy()
  vectors = np.asarray(vectors, np.float64)
  if 0 < rank < len(values):
    values[:-rank] = values[-rank - 1]
  s = vectors @ np.diag(values) @ vectors.T
  out = np.zeros(grads.shape)
  for i, r in enumerate(ids):
    a = sum(w for j, w in zip(ids, weights) if j == r)
    out[i] = np.linalg.inv(np.eye(len(values)) + factor * a * s) @ grads[i]
  return out


@pytest.mark.parametrize("rank", [0, 1, DIM - 1, DIM])
def test_damped_update_equals_per_row_inverse(rank: int) -> None:
  """damped_update divides each entry's gradient by 1 + factor * a_r * S of its row (a_r summed over the
  row's repeated entries), the top `rank` eigen-directions exactly; the scratch comes back all zeros."""
  rng = np.random.default_rng(rank)
  ids = np.array([2, 0, 2, 5, 2, 0, 3, 5, 2, 1], np.int32)  # repeats; rows 4 and 6 of 7 untouched
  grads = rng.normal(size=(len(ids), DIM))
  weights = rng.uniform(0.0, 2.0, len(ids))
  weights[ids == 1] = 0.0  # a row with no curvature: plain SGD
  a = rng.normal(size=(DIM, DIM))
  values, vectors = np.linalg.eigh(a @ a.T / DIM)
  factor = 0.7

  got, scratch = damped_update(jnp.zeros(7, jnp.float32), jnp.asarray(ids), jnp.asarray(grads, jnp.float32),
                               jnp.asarray(weights, jnp.float32), jnp.asarray(values, jnp.float32),
                               jnp.asarray(vectors, jnp.float32), np.float32(factor), rank)
  want = damped_reference(ids, grads, weights, values, vectors, factor, rank)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(got)[ids == 1], grads[ids == 1], rtol=1e-5, atol=1e-6)
  assert np.abs(want - grads).max() > 0.1  # the damping is not negligible here
  assert scratch.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(scratch), 0)


def moment(share, rows) -> np.ndarray:
  """sum_p share_p x_p x_p^T / sum_p share_p, by a loop."""
  share, rows = np.asarray(share, np.float64), np.asarray(rows, np.float64)
  return sum(s * np.outer(x, x) for s, x in zip(share, rows)) / share.sum()


def reconstructed(values, vectors) -> np.ndarray:
  """V diag(values) V^T (eigenvectors are defined up to sign: compare matrices, not vectors)."""
  values, vectors = np.asarray(values, np.float64), np.asarray(vectors, np.float64)
  return vectors @ np.diag(values) @ vectors.T


@pytest.mark.parametrize(("model", "mean", "shrink"),
                         [("skipgram", True, True), ("cbow", True, True), ("cbow", False, False)])
def test_curvature_shape_is_the_partners_second_moment(model: str, mean: bool, shrink: bool) -> None:
  """Input table: the P most frequent output rows' second moment at their partner shares. Output table: the
  input rows' at their center shares; for CBOW that of a mean of n rows, m m^T + (S - m m^T) / n (n = window + 1
  shrunk, 2 window not; times n^2 for a sum)."""
  cfg = StepConfig(model, WINDOW, NEGATIVE, shrink_windows=shrink, cbow_mean=mean)
  vocab, rows = 9, 5
  tables = make_tables(4, vocab=vocab)
  sampler = make_sampler(np.arange(vocab, 0, -1) * 7, 0.75, 0.01, NEGATIVE, curvature_words=rows)
  assert sampler.center_share.shape == sampler.partner_share.shape == (rows,)
  inp, out = tables_np(tables)
  want_input = moment(sampler.partner_share, out[:rows])
  want_output = moment(sampler.center_share, inp[:rows])
  if model == "cbow":
    share = np.asarray(sampler.center_share, np.float64)
    m = sum(s * x for s, x in zip(share, inp[:rows])) / share.sum()
    n = WINDOW + 1 if shrink else 2 * WINDOW
    want_output = (np.outer(m, m) + (want_output - np.outer(m, m)) / n) * (1 if mean else n**2)

  shape = curvature_shape(cfg, tables, sampler)
  for values, vectors, want in [(shape.input_values, shape.input_vectors, want_input),
                                (shape.output_values, shape.output_vectors, want_output)]:
    assert (np.diff(np.asarray(values)) >= 0).all() and (np.asarray(values) >= 0).all()
    np.testing.assert_allclose(reconstructed(values, vectors), want, atol=1e-5 * np.abs(want).max())
    np.testing.assert_allclose(np.asarray(vectors).T @ np.asarray(vectors), np.eye(DIM), atol=1e-5)


def test_make_sampler_shares() -> None:
  """Center shares: the subsampled counts' share of the P most frequent words; partner shares: one context
  and `negative` negatives per pair, the negatives at the ns_exponent noise distribution."""
  counts = np.array([500, 200, 90, 40, 10, 3], np.float64)
  sampler = make_sampler(counts, 0.75, 0.05, NEGATIVE, curvature_words=4)
  kept = counts * sampling.keep_probabilities(counts, 0.05)
  noise = counts**0.75
  np.testing.assert_allclose(np.asarray(sampler.center_share), kept[:4] / kept.sum(), rtol=1e-6)
  want_partner = (kept[:4] / kept.sum() + NEGATIVE * noise[:4] / noise.sum()) / (1 + NEGATIVE)
  np.testing.assert_allclose(np.asarray(sampler.partner_share), want_partner, rtol=1e-6)
  thresholds, alias = sampling.alias_table(noise)
  np.testing.assert_array_equal(np.asarray(sampler.thresholds), thresholds)
  np.testing.assert_array_equal(np.asarray(sampler.alias), alias)


def row_steps(new: Tables, old: Tables) -> tuple[np.ndarray, np.ndarray]:
  """The length of each input and output row's update."""
  return tuple(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)
               for a, b in [(new.input, old.input), (new.output, old.output)])


@pytest.mark.parametrize("rank", [0, 2])
@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_damped_update_is_shorter_and_tends_to_sgd(model: str, rank: int) -> None:
  """With damping every row moves at most as far as under plain SGD (rows no entry touches not at all), and
  the update tends to plain SGD's as damping -> 0."""
  vocab, group, draws = VOCAB + 3, 3, 2 * NEGATIVE  # rows 6..8 never drawn
  tables = make_tables(5, vocab=vocab)
  tokens, shrink, _ = make_batch(5)
  negatives = group_negatives(6, group, draws)
  shape = curvature_shape(StepConfig(model, WINDOW, NEGATIVE), tables, make_sampler(np.arange(vocab, 0, -1)))
  cfg = StepConfig(model, WINDOW, NEGATIVE, negative_draws=draws, negative_group=group)
  _, _, grads, weights = (skipgram_grads if model == "skipgram" else cbow_grads)(cfg, tables, tokens, shrink,
                                                                                   negatives)

  def update(damping: float) -> Tables:
    damped_cfg = dataclasses.replace(cfg, damping=damping, curvature_rank=rank if damping else 0)
    return update_tables(damped_cfg, tables, jnp.asarray(tokens), jnp.asarray(negatives), grads, weights, shape, LR)

  plain, damped, tiny = update(0.0), update(2.0), update(1e-6)
  for new, old in zip(damped, tables):
    np.testing.assert_array_equal(np.asarray(new)[VOCAB:], np.asarray(old)[VOCAB:])
  for plain_step, damped_step in zip(row_steps(plain, tables), row_steps(damped, tables)):
    assert (damped_step <= plain_step * (1 + 1e-5) + 1e-7).all(), (damped_step, plain_step)
    assert (damped_step < 0.95 * plain_step).any()  # the damping does act
  for plain_step, off in zip(row_steps(plain, tables), row_steps(tiny, plain)):  # float32 rounding of ~1e-7
    assert (off <= 1e-5 * plain_step + 1e-7).all(), (off, plain_step)


@pytest.mark.parametrize("rank", [0, 2])
def test_heavily_curved_row_takes_the_newton_step(rank: int) -> None:
  """A row whose summed curvature a * lambda is huge moves along the top eigenvector v by about the Newton step
  -lr (v . g) / (factor * a * lambda) = -(v . g) / (damping * a * lambda), g its summed gradient."""
  damping = 1e4
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE, shrink_windows=False, damping=damping, curvature_rank=rank)
  tables = make_tables(6)
  tokens = np.zeros((2, 12), np.int32)  # every position is word 0: its rows gather all the curvature
  shrink = np.full(tokens.shape, WINDOW, np.int32)
  negatives = np.random.default_rng(7).integers(1, VOCAB, size=(2, 12, NEGATIVE)).astype(np.int32)  # never 0
  shape = any_shape(tables)
  _, _, grads, weights = skipgram_grads(cfg, tables, tokens, shrink, negatives)
  new = update_tables(cfg, tables, jnp.asarray(tokens), jnp.asarray(negatives), grads, weights, shape, LR)
  cases = [(grads[0], weights[0], shape.input_values, shape.input_vectors, tables.input, new.input),
           (grads[1], weights[1], shape.output_values, shape.output_vectors, tables.output, new.output)]
  for entry_grads, h, values, vectors, old, got in cases:
    v, lam = np.asarray(vectors, np.float64)[:, -1], float(values[-1])
    g = np.asarray(entry_grads, np.float64).reshape(-1, DIM).sum(axis=0)
    a = float(np.sum(np.asarray(h, np.float64)))
    assert damping * LR * a * lam > 1e3
    step = np.asarray(got, np.float64)[0] - np.asarray(old, np.float64)[0]
    newton = -(v @ g) / (damping * a * lam)
    assert abs(v @ g) * LR > 100 * abs(newton)  # far from the plain SGD step
    np.testing.assert_allclose(v @ step, newton, rtol=2e-3)


@pytest.mark.parametrize("damping", [0.0, 2.0])
@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_loss_decreases_on_a_fixed_problem(model: str, damping: float) -> None:
  """Repeated sparse steps on one batch (fixed windows and negatives) drive its loss down."""
  cfg = StepConfig(model, 2, 2, damping=damping, curvature_rank=2)
  rng = np.random.default_rng(0)
  tables = make_tables(0, vocab=8, dim=6)
  tokens = jnp.asarray(np.tile(np.array([0, 1, 2, 3, SEP, 4, 5, 6, 7, SEP], np.int32), (2, 1)))
  shrink = jnp.full(tokens.shape, 2, jnp.int32)
  negatives = jnp.asarray(rng.integers(0, 8, size=(*tokens.shape, 2)).astype(np.int32))
  sampler = make_sampler(np.arange(8, 0, -1), negative=2)
  grads_fn = skipgram_grads if model == "skipgram" else cbow_grads
  losses = []
  for _ in range(30):
    loss, _, grads, weights = grads_fn(cfg, tables, tokens, shrink, negatives)
    losses.append(float(loss))
    tables = update_tables(cfg, tables, tokens, negatives, grads, weights, curvature_shape(cfg, tables, sampler), 0.1)
  assert losses[-1] < 0.5 * losses[0], losses
  if model == "skipgram" and not damping:  # true gradient descent with a small step: monotone
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_jitted_step_equals_its_pieces(model: str) -> None:
  """make_train_step gives the tables and metrics of draw + curvature_shape + grads + apply_update called one
  by one (with damping, the top 2 curvature directions exact)."""
  cfg = StepConfig(model, WINDOW, NEGATIVE, damping=2.0, curvature_rank=2)
  pieces_cfg = StepConfig(model, WINDOW, NEGATIVE)  # draw, shape and grads ignore the damping (reuses compilations)
  sampler = make_sampler(COUNTS, negative=NEGATIVE, curvature_words=4)
  tokens, _, _ = make_batch(2)
  key = jax.random.key(7)

  tables = make_tables(2)
  shrink, negatives = draw(pieces_cfg, key, jnp.asarray(tokens), sampler)
  shape = curvature_shape(pieces_cfg, tables, sampler)
  grads_fn = skipgram_grads if model == "skipgram" else cbow_grads
  loss, count, grads, weights = grads_fn(pieces_cfg, tables, jnp.asarray(tokens), shrink, negatives)
  want = update_tables(cfg, tables, jnp.asarray(tokens), negatives, grads, weights, shape, np.float32(LR))
  plain_output = np.asarray(tables.output, np.float64)
  out_ids = np.concatenate([np.maximum(tokens, 0).ravel(), np.asarray(negatives).ravel()])
  out_grads = np.concatenate([np.asarray(g, np.float64).reshape(-1, DIM) for g in grads[1:]])
  np.add.at(plain_output, out_ids, -LR * out_grads)

  metrics = jnp.array([1.0, 2.0], jnp.float32)
  blocks = tokens.shape[0]
  got, scratch, got_metrics = make_train_step(cfg, blocks, blocks)(make_tables(2), new_scratch(VOCAB), metrics, tokens,
                                                                   np.float32(LR), key, sampler)
  np.testing.assert_allclose(np.asarray(got.input), np.asarray(want.input), atol=1e-6)
  np.testing.assert_allclose(np.asarray(got.output), np.asarray(want.output), atol=1e-6)
  assert scratch.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(scratch), 0)
  np.testing.assert_allclose(np.asarray(got_metrics), [1.0 + float(loss), 2.0 + int(count)], rtol=1e-5)
  assert not np.allclose(np.asarray(got.input), np.asarray(make_tables(2).input))  # it did update
  assert not np.allclose(np.asarray(got.output), plain_output, atol=1e-3)  # and damped (not plain SGD)


def test_draw_ranges() -> None:
  """Shrunk windows lie in 1..window (all = window without shrinking); negatives are vocabulary ids."""
  sampler = make_sampler(np.array([5, 4, 3, 2, 1, 1]), ns_exponent=1.0)
  tokens = jnp.zeros((2, 12), jnp.int32)
  shrink, negatives = draw(StepConfig("skipgram", WINDOW, NEGATIVE), jax.random.key(0), tokens, sampler)
  assert shrink.shape == tokens.shape and negatives.shape == (2, 12, NEGATIVE)
  assert set(np.unique(np.asarray(shrink))) == set(range(1, WINDOW + 1))
  assert set(np.unique(np.asarray(negatives))) == set(range(VOCAB))
  no_shrink = StepConfig("skipgram", WINDOW, NEGATIVE, shrink_windows=False)
  full, _ = draw(no_shrink, jax.random.key(0), tokens, sampler)
  assert (np.asarray(full) == WINDOW).all()


def test_sequential_updates_equal_successive_updates() -> None:
  """make_train_step(cfg, k, batch) draws the batch's randomness and curvature shape once, then applies them as
  successive update_steps on groups of k blocks, each seeing the tables the previous one left."""
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE, damping=2.0, curvature_rank=2)
  pieces_cfg = StepConfig("skipgram", WINDOW, NEGATIVE)  # the same draw and shape (reuses compilations)
  sampler = make_sampler(COUNTS, negative=NEGATIVE)
  tokens = np.concatenate([make_batch(4)[0], make_batch(5)[0]])  # 4 blocks
  key = jax.random.key(3)
  shrink, negatives = draw(pieces_cfg, key, tokens, sampler)
  update = jax.jit(train_step.update_step, static_argnums=0)
  tables, scratch, metrics = make_tables(4), new_scratch(VOCAB), jnp.zeros(2, jnp.float32)
  shape = curvature_shape(pieces_cfg, tables, sampler)  # of the step's initial tables, for all its updates
  for group in (slice(0, 2), slice(2, 4)):
    tables, scratch, metrics = update(cfg, shape, tables, scratch, metrics, tokens[group], shrink[group],
                                      negatives[group], np.float32(LR))
  got, got_scratch, got_metrics = make_train_step(cfg, 2, 4)(make_tables(4), new_scratch(VOCAB),
                                                             jnp.zeros(2, jnp.float32), tokens, np.float32(LR), key,
                                                             sampler)
  np.testing.assert_allclose(np.asarray(got.input), np.asarray(tables.input), atol=1e-6)
  np.testing.assert_allclose(np.asarray(got.output), np.asarray(tables.output), atol=1e-6)
  np.testing.assert_allclose(np.asarray(got_metrics), np.asarray(metrics), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(got_scratch), 0)
  one_update, _, _ = make_train_step(cfg, 4, 4)(make_tables(4), new_scratch(VOCAB), jnp.zeros(2, jnp.float32), tokens,
                                                np.float32(LR), key, sampler)
  assert not np.allclose(np.asarray(one_update.input), np.asarray(got.input), atol=1e-4)  # the order matters


def test_each_shape_group_estimates_its_shape_from_the_tables_it_sees() -> None:
  """make_train_step(cfg, 1, 2) re-estimates the curvature shape before each pair of one-block updates, from the
  tables the previous updates left (a shape of the step's start would be stale for large updates)."""
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE, damping=2.0, curvature_rank=2)
  pieces_cfg = StepConfig("skipgram", WINDOW, NEGATIVE)
  sampler = make_sampler(COUNTS, negative=NEGATIVE, curvature_words=4)
  tokens = np.concatenate([make_batch(4)[0], make_batch(5)[0]])  # 4 blocks
  key = jax.random.key(5)
  shrink, negatives = draw(pieces_cfg, key, tokens, sampler)
  update = jax.jit(train_step.update_step, static_argnums=0)
  tables, scratch, metrics = make_tables(4), new_scratch(VOCAB), jnp.zeros(2, jnp.float32)
  for first in (0, 2):
    shape = curvature_shape(pieces_cfg, tables, sampler)
    for block in (first, first + 1):
      group = slice(block, block + 1)
      tables, scratch, metrics = update(cfg, shape, tables, scratch, metrics, tokens[group], shrink[group],
                                        negatives[group], np.float32(LR))
  got, _, got_metrics = make_train_step(cfg, 1, 2)(make_tables(4), new_scratch(VOCAB), jnp.zeros(2, jnp.float32),
                                                   tokens, np.float32(LR), key, sampler)
  np.testing.assert_allclose(np.asarray(got.input), np.asarray(tables.input), atol=1e-6)
  np.testing.assert_allclose(np.asarray(got.output), np.asarray(tables.output), atol=1e-6)
  np.testing.assert_allclose(np.asarray(got_metrics), np.asarray(metrics), rtol=1e-5)
  one_shape, _, _ = make_train_step(cfg, 1, 4)(make_tables(4), new_scratch(VOCAB), jnp.zeros(2, jnp.float32), tokens,
                                               np.float32(LR), key, sampler)
  assert not np.allclose(np.asarray(one_shape.output), np.asarray(got.output), atol=1e-5)  # the fresh shape matters


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_grouped_negatives_equal_per_center_negatives(model: str) -> None:
  """Negatives shared by a group of G centers give each center the gradients and curvature weights of drawing
  the group's negatives itself (the tested per-center path), and each drawn row the sum over the group."""
  group, draws = 4, 2 * NEGATIVE
  tables = make_tables(2)
  tokens, shrink, _ = make_batch(2)
  negatives = group_negatives(3, group, draws)
  grads_fn = skipgram_grads if model == "skipgram" else cbow_grads
  grouped_cfg = StepConfig(model, WINDOW, NEGATIVE, negative_draws=draws, negative_group=group)
  loss, count, (g_in, g_out, g_neg), (h_in, h_out, h_neg) = grads_fn(grouped_cfg, tables, tokens, shrink, negatives)
  per_center = np.repeat(negatives, group, axis=1)
  want = grads_fn(StepConfig(model, WINDOW, NEGATIVE, negative_draws=draws), tables, tokens, shrink, per_center)
  want_loss, want_count, (want_in, want_out, want_neg), (want_h_in, want_h_out, want_h_neg) = want
  np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)
  assert int(count) == int(want_count)
  np.testing.assert_allclose(np.asarray(g_in), np.asarray(want_in), atol=1e-6)
  np.testing.assert_allclose(np.asarray(g_out), np.asarray(want_out), atol=1e-6)
  np.testing.assert_allclose(np.asarray(g_neg), np.asarray(want_neg).reshape(2, 12 // group, group, draws, DIM)
                             .sum(axis=2), atol=1e-6)
  np.testing.assert_allclose(np.asarray(h_in), np.asarray(want_h_in), atol=1e-6)
  np.testing.assert_allclose(np.asarray(h_out), np.asarray(want_h_out), atol=1e-6)
  np.testing.assert_allclose(np.asarray(h_neg), np.asarray(want_h_neg).reshape(2, 12 // group, group, draws)
                             .sum(axis=2), atol=1e-6)


def test_draw_gives_each_group_of_centers_its_negatives() -> None:
  """draw returns [B, L / negative_group, negative_draws] ids and one shrink per center."""
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE, negative_draws=7, negative_group=4)
  sampler = make_sampler(np.arange(VOCAB, 0, -1) * 10)
  shrink, negatives = draw(cfg, jax.random.key(0), jnp.zeros((2, 12), jnp.int32), sampler)
  assert shrink.shape == (2, 12) and negatives.shape == (2, 3, 7)
