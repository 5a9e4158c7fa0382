"""train_step: the sparse skip-gram/CBOW updates against dense and Python-loop references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2v_jax import sampling, train_step
from w2v_jax.model import Tables
from w2v_jax.train_step import Sampler, StepConfig, make_train_step

SEP = -1
VOCAB, DIM, WINDOW, NEGATIVE = 6, 4, 3, 3
LR = 0.25

# Jitted pieces (eager dispatch of every small op is slow); cfg and cap are static.
skipgram_grads = jax.jit(train_step.skipgram_grads, static_argnums=0)
cbow_grads = jax.jit(train_step.cbow_grads, static_argnums=0)
apply_update = jax.jit(train_step.apply_update, static_argnums=(6, 7))
draw = jax.jit(train_step.draw, static_argnums=0)

def make_tables(seed: int = 0, vocab: int = VOCAB, dim: int = DIM) -> Tables:
  """Random input and output tables (output not zero, so every gradient term is non-trivial)."""
  rng = np.random.default_rng(seed)
  return Tables(
      jnp.asarray(rng.normal(0, 0.5, (vocab, dim)), jnp.float32),
      jnp.asarray(rng.normal(0, 0.5, (vocab, dim)), jnp.float32),
      jnp.zeros(vocab, jnp.int32),
  )


def make_batch(seed: int = 0, draws: int = NEGATIVE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Tokens with repeated words, a sentence end and padding; random shrink; negatives with repeats."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, VOCAB, size=(2, 12)).astype(np.int32)
  tokens[0, 5] = SEP
  tokens[1, 9:] = SEP
  shrink = rng.integers(1, WINDOW + 1, size=tokens.shape).astype(np.int32)
  negatives = rng.integers(0, VOCAB, size=(*tokens.shape, draws)).astype(np.int32)
  return tokens, shrink, negatives


def tables_np(tables: Tables) -> tuple[np.ndarray, np.ndarray]:
  return np.asarray(tables.input, np.float64), np.asarray(tables.output, np.float64)


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
  """With no duplicate cap the scattered update is exactly tables - lr * dense grad (duplicates summed)."""
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE)
  tables = make_tables(seed)
  tokens, shrink, negatives = make_batch(seed)
  pairs = reference_pairs(tokens, shrink, WINDOW)
  positive, negative = skipgram_reference_terms(tokens, negatives, pairs)
  # The batch really exercises duplicates and the "negative equals the context" rule.
  assert len({c for c, _ in positive}) < len(positive)
  assert any(n == t for b, i, j in pairs for n, t in zip(negatives[b, i], [tokens[b, j]] * NEGATIVE))

  loss, n_pairs, grads, neg_valid = skipgram_grads(cfg, tables, tokens, shrink, negatives)
  positive_ids = tuple(np.array([p[k] for p in positive], np.int32) for k in range(2))
  negative_terms = tuple(np.array([n[k] for n in negative], dtype) for k, dtype in enumerate("iif"))
  want_loss, (g_in, g_out) = dense_skipgram_value_and_grad(
      tables.input, tables.output, positive_ids, negative_terms)
  assert int(n_pairs) == len(pairs)
  np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)

  want_valid = np.zeros(negatives.shape, bool)
  for b in range(tokens.shape[0]):
    for i in range(tokens.shape[1]):
      ctx = [tokens[b, j] for b2, i2, j in pairs if (b2, i2) == (b, i)]
      for k in range(NEGATIVE):
        want_valid[b, i, k] = any(t != negatives[b, i, k] for t in ctx)
  np.testing.assert_array_equal(np.asarray(neg_valid), want_valid)

  new = apply_update(tables, jnp.asarray(tokens), jnp.asarray(negatives), neg_valid, grads, LR, 0.0)
  np.testing.assert_allclose(np.asarray(new.input), np.asarray(tables.input - LR * g_in), atol=2e-6)
  np.testing.assert_allclose(np.asarray(new.output), np.asarray(tables.output - LR * g_out), atol=2e-6)
  np.testing.assert_array_equal(np.asarray(new.touched), 0)


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
  """CBOW loss and update equal a Python loop of word2vec.c's rule (mean or sum of contexts)."""
  cfg = StepConfig("cbow", WINDOW, NEGATIVE, cbow_mean=mean)
  tables = make_tables(seed)
  tokens, shrink, negatives = make_batch(seed)
  pairs = reference_pairs(tokens, shrink, WINDOW)
  assert any(n == tokens[b, i] for b in range(2) for i in range(12) for n in negatives[b, i])

  loss, centers, grads, neg_valid = cbow_grads(cfg, tables, tokens, shrink, negatives)
  want_loss, want_centers, want_in, want_out = cbow_reference(tables, tokens, negatives, pairs, mean)
  assert int(centers) == want_centers
  np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
  new = apply_update(tables, jnp.asarray(tokens), jnp.asarray(negatives), neg_valid, grads, LR, 0.0)
  np.testing.assert_allclose(np.asarray(new.input), want_in, atol=1e-5)
  np.testing.assert_allclose(np.asarray(new.output), want_out, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(new.touched), 0)


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
@pytest.mark.parametrize("cap", [1.0, 2.5])
@pytest.mark.parametrize(("draws", "group"), [(NEGATIVE, 1), (4 * NEGATIVE, 1), (4 * NEGATIVE, 3)])
def test_duplicate_cap_scales_summed_updates(model: str, cap: float, draws: int, group: int) -> None:
  """A row touched c > cap times moves by cap / c of its summed update; a position counts 1 touch, a
  valid negative drawn for a group of G centers G * negative / draws."""
  cfg = StepConfig(model, WINDOW, NEGATIVE, negative_draws=draws, negative_group=group)
  tables = make_tables(1)
  tokens, shrink, _ = make_batch(1)
  negatives = np.random.default_rng(4).integers(0, VOCAB, size=(2, 12 // group, draws)).astype(np.int32)
  grads_fn = skipgram_grads if model == "skipgram" else cbow_grads
  _, _, grads, neg_valid = grads_fn(cfg, tables, tokens, shrink, negatives)
  g_in, g_out, g_neg = (np.asarray(g, np.float64) for g in grads)
  valid_neg = np.asarray(neg_valid, bool)

  in_count, out_count = np.zeros(VOCAB), np.zeros(VOCAB)
  in_sum, out_sum = np.zeros((VOCAB, DIM)), np.zeros((VOCAB, DIM))
  for b in range(tokens.shape[0]):
    for i in range(tokens.shape[1]):
      t = tokens[b, i]
      if t >= 0:
        in_count[t] += 1
        out_count[t] += 1
        np.add.at(in_sum, t, -LR * g_in[b, i])
        np.add.at(out_sum, t, -LR * g_out[b, i])
      else:  # SEP rows carry no gradient at all
        assert not g_in[b, i].any() and not g_out[b, i].any()
  for (b, i, k), n in np.ndenumerate(negatives):
    out_count[n] += valid_neg[b, i, k] * group * NEGATIVE / draws
    np.add.at(out_sum, n, -LR * g_neg[b, i, k])
  assert (in_count > cap).any() and (out_count > cap).any()
  in_scale = np.minimum(1.0, cap / np.maximum(in_count, 1))[:, None]
  out_scale = np.minimum(1.0, cap / np.maximum(out_count, 1))[:, None]
  want_in = np.asarray(tables.input, np.float64) + in_scale * in_sum
  want_out = np.asarray(tables.output, np.float64) + out_scale * out_sum

  new = apply_update(tables, jnp.asarray(tokens), jnp.asarray(negatives), neg_valid, grads, LR, cap, NEGATIVE)
  np.testing.assert_allclose(np.asarray(new.input), want_in, atol=2e-6)
  np.testing.assert_allclose(np.asarray(new.output), want_out, atol=2e-6)
  np.testing.assert_array_equal(np.asarray(new.touched), 0)


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_loss_decreases_on_a_fixed_problem(model: str) -> None:
  """Repeated sparse steps on one batch (fixed windows and negatives) drive its loss down."""
  cfg = StepConfig(model, 2, 2)
  rng = np.random.default_rng(0)
  tables = make_tables(0, vocab=8, dim=6)
  tokens = jnp.asarray(np.tile(np.array([0, 1, 2, 3, SEP, 4, 5, 6, 7, SEP], np.int32), (2, 1)))
  shrink = jnp.full(tokens.shape, 2, jnp.int32)
  negatives = jnp.asarray(rng.integers(0, 8, size=(*tokens.shape, 2)).astype(np.int32))
  grads_fn = skipgram_grads if model == "skipgram" else cbow_grads
  losses = []
  for _ in range(30):
    loss, _, grads, neg_valid = grads_fn(cfg, tables, tokens, shrink, negatives)
    losses.append(float(loss))
    tables = apply_update(tables, tokens, negatives, neg_valid, grads, 0.1, 0.0)
  assert losses[-1] < 0.5 * losses[0], losses
  if model == "skipgram":  # true gradient descent with a small step: monotone
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_jitted_step_equals_its_pieces(model: str) -> None:
  """make_train_step gives the tables and metrics of draw + grads + apply_update called eagerly."""
  cfg = StepConfig(model, WINDOW, NEGATIVE, duplicate_cap=2.5)
  pieces_cfg = StepConfig(model, WINDOW, NEGATIVE)  # draw and grads ignore the cap (reuses compilations)
  counts = np.array([30, 10, 8, 5, 3, 1])
  thresholds, alias = sampling.alias_table(sampling.negative_weights(counts, 0.75))
  sampler = Sampler(jnp.asarray(thresholds), jnp.asarray(alias))
  tokens, _, _ = make_batch(2)
  key = jax.random.key(7)

  tables = make_tables(2)
  shrink, negatives = draw(pieces_cfg, key, jnp.asarray(tokens), sampler)
  grads_fn = skipgram_grads if model == "skipgram" else cbow_grads
  loss, count, grads, neg_valid = grads_fn(pieces_cfg, tables, jnp.asarray(tokens), shrink, negatives)
  want = apply_update(tables, jnp.asarray(tokens), negatives, neg_valid, grads, np.float32(LR), 2.5, NEGATIVE)

  metrics = jnp.array([1.0, 2.0], jnp.float32)
  got, got_metrics = make_train_step(cfg)(make_tables(2), metrics, tokens, np.float32(LR), key, sampler)
  np.testing.assert_allclose(np.asarray(got.input), np.asarray(want.input), atol=1e-6)
  np.testing.assert_allclose(np.asarray(got.output), np.asarray(want.output), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(got.touched), 0)
  np.testing.assert_allclose(np.asarray(got_metrics), [1.0 + float(loss), 2.0 + int(count)], rtol=1e-5)
  assert not np.allclose(np.asarray(got.input), np.asarray(make_tables(2).input))  # it did update


def test_draw_ranges() -> None:
  """Shrunk windows lie in 1..window (all = window without shrinking); negatives are vocabulary ids."""
  counts = np.array([5, 4, 3, 2, 1, 1])
  thresholds, alias = sampling.alias_table(counts.astype(float))
  sampler = Sampler(jnp.asarray(thresholds), jnp.asarray(alias))
  tokens = jnp.zeros((2, 12), jnp.int32)
  shrink, negatives = draw(StepConfig("skipgram", WINDOW, NEGATIVE), jax.random.key(0), tokens, sampler)
  assert shrink.shape == tokens.shape and negatives.shape == (2, 12, NEGATIVE)
  assert set(np.unique(np.asarray(shrink))) == set(range(1, WINDOW + 1))
  assert set(np.unique(np.asarray(negatives))) == set(range(VOCAB))
  no_shrink = StepConfig("skipgram", WINDOW, NEGATIVE, shrink_windows=False)
  full, _ = draw(no_shrink, jax.random.key(0), tokens, sampler)
  assert (np.asarray(full) == WINDOW).all()


def test_sequential_updates_equal_successive_updates() -> None:
  """make_train_step(cfg, k) draws the batch's randomness once, then applies it as successive update_steps on
  groups of k blocks, each seeing the tables the previous one left."""
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE)
  thresholds, alias = sampling.alias_table(np.array([30.0, 10, 8, 5, 3, 1]))
  sampler = Sampler(jnp.asarray(thresholds), jnp.asarray(alias))
  tokens = np.concatenate([make_batch(4)[0], make_batch(5)[0]])  # 4 blocks
  key = jax.random.key(3)
  shrink, negatives = draw(cfg, key, tokens, sampler)
  update = jax.jit(train_step.update_step, static_argnums=0)
  tables, metrics = make_tables(4), jnp.zeros(2, jnp.float32)
  for group in (slice(0, 2), slice(2, 4)):
    tables, metrics = update(cfg, tables, metrics, tokens[group], shrink[group], negatives[group], np.float32(LR))
  got, got_metrics = make_train_step(cfg, 2)(make_tables(4), jnp.zeros(2, jnp.float32), tokens, np.float32(LR), key,
                                             sampler)
  np.testing.assert_allclose(np.asarray(got.input), np.asarray(tables.input), atol=1e-6)
  np.testing.assert_allclose(np.asarray(got.output), np.asarray(tables.output), atol=1e-6)
  np.testing.assert_allclose(np.asarray(got_metrics), np.asarray(metrics), rtol=1e-5)
  one_update, _ = make_train_step(cfg)(make_tables(4), jnp.zeros(2, jnp.float32), tokens, np.float32(LR), key, sampler)
  assert not np.allclose(np.asarray(one_update.input), np.asarray(got.input), atol=1e-4)  # the order matters


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_grouped_negatives_equal_per_center_negatives(model: str) -> None:
  """Negatives shared by a group of G centers give each center the gradients of drawing the group's
  negatives itself (the tested per-center path), and each drawn row the sum over the group."""
  group, draws = 4, 2 * NEGATIVE
  tables = make_tables(2)
  tokens, shrink, _ = make_batch(2)
  negatives = np.random.default_rng(3).integers(0, VOCAB, size=(2, 12 // group, draws)).astype(np.int32)
  grads_fn = skipgram_grads if model == "skipgram" else cbow_grads
  grouped_cfg = StepConfig(model, WINDOW, NEGATIVE, negative_draws=draws, negative_group=group)
  loss, count, (g_in, g_out, g_neg), valid = grads_fn(grouped_cfg, tables, tokens, shrink, negatives)
  per_center = np.repeat(negatives, group, axis=1)
  want = grads_fn(StepConfig(model, WINDOW, NEGATIVE, negative_draws=draws), tables, tokens, shrink, per_center)
  want_loss, want_count, (want_in, want_out, want_neg), want_valid = want
  np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)
  assert int(count) == int(want_count)
  np.testing.assert_allclose(np.asarray(g_in), np.asarray(want_in), atol=1e-6)
  np.testing.assert_allclose(np.asarray(g_out), np.asarray(want_out), atol=1e-6)
  np.testing.assert_allclose(np.asarray(g_neg), np.asarray(want_neg).reshape(2, 12 // group, group, draws, DIM)
                             .sum(axis=2), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(valid), np.asarray(want_valid).reshape(2, 3, group, draws).any(axis=2))


def test_draw_gives_each_group_of_centers_its_negatives() -> None:
  """draw returns [B, L / negative_group, negative_draws] ids and one shrink per center."""
  cfg = StepConfig("skipgram", WINDOW, NEGATIVE, negative_draws=7, negative_group=4)
  counts = np.arange(VOCAB, 0, -1) * 10
  sampler = Sampler(*map(jnp.asarray, sampling.alias_table(sampling.negative_weights(counts, 0.75))))
  shrink, negatives = draw(cfg, jax.random.key(0), jnp.zeros((2, 12), jnp.int32), sampler)
  assert shrink.shape == (2, 12) and negatives.shape == (2, 3, 7)
