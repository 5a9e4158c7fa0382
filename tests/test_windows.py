"""windows: pair masks and context sums against Python loops over random blocks with SEPs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from w2v_jax import windows

SEP = -1


def random_block(rng: np.random.Generator, batch: int, length: int, vocab: int, sep_rate: float) -> np.ndarray:
  """Random int32 ids in [0, vocab) with SEPs (sentence ends and trailing padding)."""
  tokens = rng.integers(0, vocab, size=(batch, length)).astype(np.int32)
  tokens[rng.random((batch, length)) < sep_rate] = SEP
  tokens[0, -3:] = SEP  # padding at the end of a block
  return tokens


def test_offsets() -> None:
  """offsets(W) is -W..-1 then 1..W, in that order (masks are stacked in this order)."""
  assert windows.offsets(3) == [-3, -2, -1, 1, 2, 3]
  assert windows.offsets(1) == [-1, 1]


def test_shift_matches_indexing() -> None:
  """shift(x, o)[:, i] == x[:, i + o], and the fill value outside the block."""
  x = np.arange(12, dtype=np.int32).reshape(2, 6)
  for o in range(-7, 8):
    got = np.asarray(windows.shift(jnp.asarray(x), o, fill=-9))
    want = np.array([[x[b, i + o] if 0 <= i + o < 6 else -9 for i in range(6)] for b in range(2)])
    np.testing.assert_array_equal(got, want, err_msg=f"offset {o}")


@pytest.mark.parametrize("shrink_mode", ["full", "random"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_masks_match_python_loop(shrink_mode: str, seed: int, reference_pairs) -> None:
  """Masks are exactly the Python-enumerated valid pairs; contexts are the shifted ids (-1 outside)."""
  rng = np.random.default_rng(seed)
  window, batch, length = 4, 3, 17
  tokens = random_block(rng, batch, length, vocab=6, sep_rate=0.2)
  if shrink_mode == "full":
    shrink = np.full(tokens.shape, window, np.int32)
  else:
    shrink = rng.integers(1, window + 1, size=tokens.shape).astype(np.int32)
  masks, contexts = windows.pair_masks(jnp.asarray(tokens), jnp.asarray(shrink), window)
  masks, contexts = np.asarray(masks), np.asarray(contexts)
  offsets = windows.offsets(window)
  assert masks.shape == contexts.shape == (2 * window, batch, length)
  assert masks.dtype == bool

  want = np.zeros_like(masks)
  for b, i, j in reference_pairs(tokens, shrink, window):
    want[offsets.index(j - i), b, i] = True
  assert want.sum() > 20  # the random blocks really have pairs
  np.testing.assert_array_equal(masks, want)

  for k, o in enumerate(offsets):
    for b in range(batch):
      for i in range(length):
        expected = tokens[b, i + o] if 0 <= i + o < length else -1
        assert contexts[k, b, i] == expected


def test_pair_masks_never_cross_a_sep() -> None:
  """Two sentences in one block: no pair links a word of one to a word of the other."""
  tokens = np.array([[1, 2, 3, SEP, 4, 5, SEP, SEP]], np.int32)
  shrink = np.full(tokens.shape, 5, np.int32)
  masks, _ = windows.pair_masks(jnp.asarray(tokens), jnp.asarray(shrink), 5)
  partners = {i: {i + o for o, m in zip(windows.offsets(5), np.asarray(masks)[:, 0, i]) if m} for i in range(8)}
  assert partners == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}, 3: set(), 4: {5}, 5: {4}, 6: set(), 7: set()}


def test_context_sum_matches_python_loop(reference_pairs) -> None:
  """context_sum adds, for each center, the rows of exactly its valid contexts."""
  rng = np.random.default_rng(5)
  window = 3
  tokens = random_block(rng, 2, 13, vocab=5, sep_rate=0.25)
  shrink = rng.integers(1, window + 1, size=tokens.shape).astype(np.int32)
  rows = rng.normal(size=(2, 13, 4)).astype(np.float32)
  masks, _ = windows.pair_masks(jnp.asarray(tokens), jnp.asarray(shrink), window)
  got = np.asarray(windows.context_sum(jnp.asarray(rows), masks, window))
  want = np.zeros_like(rows)
  for b, i, j in reference_pairs(tokens, shrink, window):
    want[b, i] += rows[b, j]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
