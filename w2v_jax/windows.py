"""Skip-gram/CBOW windows built on the device as shifted views of a token block.

Position i's context at offset o is position i+o of the same block. A pair is valid when both are
words (not SEP padding), no SEP lies between them (same sentence), and |o| <= the center's shrunk
window b_i, drawn uniformly in 1..window as in word2vec.c.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def offsets(window: int) -> list[int]:
  """Context offsets -window..-1, 1..window."""
  return [o for o in range(-window, window + 1) if o != 0]


def shift(x: jax.Array, o: int, fill=0) -> jax.Array:
  """y[:, i] = x[:, i + o] along axis 1, with `fill` where i + o falls outside the block."""
  length = x.shape[1]
  pad = [(0, 0)] * x.ndim
  pad[1] = (max(-o, 0), max(o, 0))
  return jnp.pad(x, pad, constant_values=fill)[:, max(o, 0):max(o, 0) + length]


def pair_masks(tokens: jax.Array, shrink: jax.Array, window: int) -> tuple[jax.Array, jax.Array]:
  """Valid (center i, context i+o) pairs and context ids, both [2*window, B, L], for int32 blocks.

  shrink holds each center's effective window b_i (int32 [B, L]).
  """
  word = tokens >= 0
  sentence = jnp.cumsum(~word, axis=1)  # a SEP starts a new sentence id
  masks, contexts = [], []
  for o in offsets(window):
    context = shift(tokens, o, fill=-1)
    same = shift(sentence, o, fill=-1) == sentence
    masks.append(word & (context >= 0) & same & (abs(o) <= shrink))
    contexts.append(context)
  return jnp.stack(masks), jnp.stack(contexts)


def _padded(x: jax.Array, window: int) -> jax.Array:
  """x padded with `window` zero positions on both sides of axis 1 (so every shift is a slice)."""
  pad = [(0, 0)] * x.ndim
  pad[1] = (window, window)
  return jnp.pad(x, pad)


def shifted_scores(a: jax.Array, b: jax.Array, window: int) -> jax.Array:
  """scores[o, :, i] = a[:, i] . b[:, i + o] for every offset ([2W, B, L]; 0 outside the block)."""
  length, b_pad = a.shape[1], _padded(b, window)
  # einsum (a batched dot), not sum(a * b, -1): XLA:CPU's dot is 2x faster than its row reduction.
  return jnp.stack([jnp.einsum("bld,bld->bl", a, b_pad[:, window + o:window + o + length]) for o in offsets(window)])


def context_sum(rows: jax.Array, weights: jax.Array, window: int) -> jax.Array:
  """sum_o weights[o, :, i] * rows[:, i + o]: each center's weighted sum of its context rows ([B, L, D])."""
  length, rows_pad = rows.shape[1], _padded(rows, window)
  return sum(w[..., None] * rows_pad[:, window + o:window + o + length]
             for w, o in zip(weights, offsets(window)))


def context_scatter(rows: jax.Array, weights: jax.Array, window: int) -> jax.Array:
  """The transpose of context_sum: out[:, j] = sum_o weights[o, :, j - o] * rows[:, j - o]."""
  length, rows_pad = rows.shape[1], _padded(rows, window)
  weights_pad = jnp.pad(weights, ((0, 0), (0, 0), (window, window)))
  return sum(weights_pad[k, :, window - o:window - o + length, None] * rows_pad[:, window - o:window - o + length]
             for k, o in enumerate(offsets(window)))
