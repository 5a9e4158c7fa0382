"""Randomness of the data path: subsampling keep-rates, a counter-based keep hash, negative sampling.

The keep decision for a token is a pure function of (seed, epoch, token position), computed the same
way by tf.data (input_pipeline) and numpy, so subsampling is reproducible, fresh every epoch, and
independent of how the stream is cut or resumed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_M1, _M2, _GOLDEN = 0x7FEB352D, 0x846CA68B, 0x9E3779B9


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
  """word2vec.c's keep probability min(1, (sqrt(c/(s*T)) + 1) * s*T / c); all ones when sample=0."""
  counts = np.asarray(counts, np.float64)
  if sample <= 0:
    return np.ones_like(counts)
  threshold = sample * counts.sum()
  return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def keep_thresholds(counts: np.ndarray, sample: float) -> np.ndarray:
  """Keep probabilities as int64 thresholds on a uniform uint32 hash (keep iff hash < threshold)."""
  return np.floor(keep_probabilities(counts, sample) * 2.0**32).astype(np.int64)


def _mix32(x, xp):
  """A 32-bit integer finaliser (lowbias32); xp is numpy or a tf-like namespace of uint32 ops."""
  x = xp.bitwise_xor(x, xp.right_shift(x, 16)) * _M1
  x = xp.bitwise_xor(x, xp.right_shift(x, 15)) * _M2
  return xp.bitwise_xor(x, xp.right_shift(x, 16))


def epoch_key(seed: int, epoch: int) -> int:
  """A 32-bit key per (seed, epoch), so each epoch draws a fresh subsample."""
  with np.errstate(over="ignore"):
    x = np.uint32(seed & 0xFFFFFFFF) * np.uint32(_GOLDEN) + np.uint32(epoch)
    return int(_mix32(np.uint32(x), np))


def keep_hash(hi, lo, key, xp):
  """The keep hash of a position split into uint32 halves (hi, lo) under an epoch key; xp as in _mix32."""
  return _mix32(xp.bitwise_xor(_mix32(xp.bitwise_xor(hi, key), xp), lo), xp)


def keep_hash_numpy(positions: np.ndarray, key: int) -> np.ndarray:
  """Uniform uint32 hash of (key, int64 position), as int64."""
  positions = np.asarray(positions, np.int64)
  lo = (positions & 0xFFFFFFFF).astype(np.uint32)
  hi = (positions >> 32).astype(np.uint32)
  with np.errstate(over="ignore"):
    h = keep_hash(hi, lo, np.uint32(key), np)
  return h.astype(np.int64)


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Vose's alias table: (thresholds as uint32 fractions of 2^32, alias ids), exact to 2^-32.

  A draw picks a bucket i uniformly and keeps i if a uniform uint32 < threshold[i], else alias[i].
  """
  p = np.asarray(weights, np.float64)
  n = len(p)
  scaled_array = p * (n / p.sum())
  scaled, alias = scaled_array.tolist(), list(range(n))  # Python floats/ints: the loop runs ~2x faster
  small = np.flatnonzero(scaled_array < 1.0).tolist()
  large = np.flatnonzero(scaled_array >= 1.0).tolist()
  while small and large:
    s, g = small.pop(), large[-1]
    alias[s] = g
    scaled[g] -= 1.0 - scaled[s]
    if scaled[g] < 1.0:
      small.append(large.pop())
  for i in large + small:  # leftovers are 1 up to rounding
    scaled[i] = 1.0
  scaled, alias = np.asarray(scaled), np.asarray(alias, np.int32)
  thresholds = np.minimum(np.round(scaled * 2.0**32), 2.0**32 - 1)
  thresholds[scaled >= 1.0] = 2.0**32 - 1
  return thresholds.astype(np.uint32), alias


def negative_weights(counts: np.ndarray, ns_exponent: float) -> np.ndarray:
  """The unigram distribution raised to ns_exponent (unnormalised)."""
  return np.asarray(counts, np.float64) ** ns_exponent


def draw_negatives(key: jax.Array, thresholds: jax.Array, alias: jax.Array, shape) -> jax.Array:
  """Draws int32 ids of the given shape from an alias table on the device: O(1) per draw."""
  bucket_key, accept_key = jax.random.split(key)
  bucket = jax.random.randint(bucket_key, shape, 0, thresholds.shape[0], dtype=jnp.int32)
  accept = jax.random.bits(accept_key, shape, jnp.uint32) < thresholds[bucket]
  return jnp.where(accept, bucket, alias[bucket])
