"""sampling: word2vec.c keep rates, the keep hash, alias tables and the negative sampler's histogram."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2v_jax import input_pipeline, sampling
from w2v_jax.vocab import Vocab

SEP = input_pipeline.SEP


def test_keep_probabilities_formula() -> None:
  """min(1, (sqrt(c/(s*T)) + 1) * s*T / c) with T = sum of counts; all ones for sample=0."""
  counts = np.array([5000, 1200, 300, 40, 7, 1])
  sample = 1e-3
  total = counts.sum()
  want = [min(1.0, (math.sqrt(c / (sample * total)) + 1) * sample * total / c) for c in counts]
  np.testing.assert_allclose(sampling.keep_probabilities(counts, sample), want, rtol=1e-12)
  assert want[0] < 0.1 and want[-1] == 1.0  # the frequent word is really subsampled
  np.testing.assert_array_equal(sampling.keep_probabilities(counts, 0.0), 1.0)


def test_keep_thresholds_are_scaled_probabilities() -> None:
  """keep iff uint32 hash < threshold: threshold = floor(p * 2^32), so p = 1 keeps every hash."""
  counts = np.array([5000, 1200, 300, 40, 7, 1])
  thresholds = sampling.keep_thresholds(counts, 1e-3)
  p = sampling.keep_probabilities(counts, 1e-3)
  np.testing.assert_array_equal(thresholds, np.floor(p * 2.0**32).astype(np.int64))
  assert thresholds[-1] == 2**32 > 2**32 - 1  # above every uint32 hash


def test_epoch_key_is_deterministic_and_distinct() -> None:
  """The same (seed, epoch) gives the same 32-bit key; other seeds or epochs give other keys."""
  keys = {(s, e): sampling.epoch_key(s, e) for s in range(4) for e in range(8)}
  assert all(0 <= k < 2**32 for k in keys.values())
  assert len(set(keys.values())) == len(keys)
  assert sampling.epoch_key(3, 5) == keys[(3, 5)]


@pytest.mark.needs_scipy
def test_keep_hash_is_uniform_and_uses_all_position_bits() -> None:
  """The position hash is uniform over uint32 (chi-square) and differs for positions 2^32 apart."""
  from scipy import stats

  key = sampling.epoch_key(0, 0)
  h = sampling.keep_hash_numpy(np.arange(1 << 18), key)
  assert h.min() >= 0 and h.max() < 2**32
  hist = np.bincount(h >> 28, minlength=16)
  assert stats.chisquare(hist).pvalue > 1e-3
  high = sampling.keep_hash_numpy(np.arange(1 << 10) + (1 << 32), key)
  assert (high != h[: 1 << 10]).mean() > 0.99
  other = sampling.keep_hash_numpy(np.arange(1 << 10), sampling.epoch_key(0, 1))
  assert (other != h[: 1 << 10]).mean() > 0.99
  np.testing.assert_array_equal(sampling.keep_hash_numpy(np.arange(1 << 10), key), h[: 1 << 10])


def alias_probabilities(thresholds: np.ndarray, alias: np.ndarray) -> np.ndarray:
  """The exact distribution a table draws: bucket j keeps j w.p. thr_j / 2^32, else gives alias_j."""
  n = len(thresholds)
  keep = thresholds.astype(np.float64) / 2.0**32
  p = np.zeros(n)
  for j in range(n):
    p[j] += keep[j] / n
    p[alias[j]] += (1 - keep[j]) / n
  return p


@pytest.mark.parametrize("weights", [
    [1.0],
    [1.0, 1.0, 1.0, 1.0],
    [5000.0, 1200.0, 300.0, 40.0, 7.0, 1.0],
    [3.0, 0.0, 1.0, 0.0, 10.0],  # zero weights are never drawn
    list(np.random.default_rng(0).pareto(1.0, 300) + 1e-3),
])
def test_alias_table_reproduces_the_distribution(weights: list[float]) -> None:
  """The alias table's exact draw distribution equals the normalised weights (to ~2^-32)."""
  weights = np.asarray(weights)
  thresholds, alias = sampling.alias_table(weights)
  assert thresholds.dtype == np.uint32 and alias.dtype == np.int32
  assert ((alias >= 0) & (alias < len(weights))).all()
  np.testing.assert_allclose(alias_probabilities(thresholds, alias), weights / weights.sum(), atol=1e-9)
  assert (alias_probabilities(thresholds, alias)[weights == 0] == 0).all()


@pytest.mark.needs_scipy
def test_negative_sampler_histogram_matches_unigram_power() -> None:
  """10^6 device draws follow counts**0.75 normalised: total variation < 0.01 and chi-square p > 1e-3."""
  from scipy import stats

  counts = np.array([1000, 400, 150, 60, 20, 8, 3, 1, 1, 1])
  weights = sampling.negative_weights(counts, 0.75)
  np.testing.assert_allclose(weights, counts.astype(np.float64) ** 0.75)
  thresholds, alias = sampling.alias_table(weights)
  draws = sampling.draw_negatives(jax.random.key(42), jnp.asarray(thresholds), jnp.asarray(alias), (1000, 1000))
  assert draws.dtype == jnp.int32 and draws.shape == (1000, 1000)
  hist = np.bincount(np.asarray(draws).ravel(), minlength=len(counts))
  expected = weights / weights.sum()
  assert 0.5 * np.abs(hist / hist.sum() - expected).sum() < 0.01
  assert stats.chisquare(hist, expected * hist.sum()).pvalue > 1e-3
  # A wrong exponent is clearly rejected by the same test.
  wrong = counts / counts.sum()
  assert stats.chisquare(hist, wrong * hist.sum()).pvalue < 1e-12


def skewed_stream(n_tokens: int, seed: int = 0) -> tuple[np.ndarray, Vocab]:
  """A Zipf-like token stream with SEPs every ~20 tokens, and the vocabulary of its counts."""
  rng = np.random.default_rng(seed)
  p = np.arange(1, 101) ** -1.5
  ids = rng.choice(100, size=n_tokens, p=p / p.sum()).astype(np.int32)
  counts = np.bincount(ids, minlength=100)
  order = np.argsort(-counts, kind="stable")
  ids = np.argsort(order)[ids].astype(np.int32)  # ids by descending count, as a Vocab has
  stream = np.insert(ids, np.arange(20, n_tokens, 20), SEP).astype(np.int32)
  vocab = Vocab([f"w{i}" for i in range(100)], counts[order].astype(np.int64), n_tokens)
  return stream, vocab


def kept_tokens(stream: np.ndarray, vocab: Vocab, sample: float, seed: int, epoch: int) -> np.ndarray:
  batches = input_pipeline.numpy_batches(stream, vocab, sample, seed, epoch, batch_size=256, block_length=64)
  return np.concatenate([b["tokens"].ravel() for b in batches])


def test_subsampling_keep_rates_match_keep_probabilities() -> None:
  """Over a long stream each word is kept at its keep probability, within a binomial tolerance."""
  stream, vocab = skewed_stream(400_000)
  sample = 1e-3
  kept = kept_tokens(stream, vocab, sample, seed=1, epoch=0)
  n_kept = np.bincount(kept[kept >= 0], minlength=vocab.size)
  p = sampling.keep_probabilities(vocab.counts, sample)
  assert p.min() < 0.1 and (p == 1.0).sum() > 10
  expected = vocab.counts * p
  tolerance = 5 * np.sqrt(vocab.counts * p * (1 - p)) + 1
  assert (np.abs(n_kept - expected) <= tolerance).all(), (n_kept, expected)
  np.testing.assert_array_equal(n_kept[p == 1.0], vocab.counts[p == 1.0])


def test_subsample_differs_by_epoch_and_repeats_for_the_same_epoch() -> None:
  """Each (seed, epoch) draws its own subsample; the same (seed, epoch) draws the same one."""
  stream, vocab = skewed_stream(20_000)
  first = kept_tokens(stream, vocab, 1e-3, seed=0, epoch=0)
  np.testing.assert_array_equal(first, kept_tokens(stream, vocab, 1e-3, seed=0, epoch=0))
  for seed, epoch in [(0, 1), (1, 0)]:
    other = kept_tokens(stream, vocab, 1e-3, seed=seed, epoch=epoch)
    assert len(other) != len(first) or (other != first).any()
