"""The two embedding tables of word2vec, held by a Flax NNX module."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx


class Tables(NamedTuple):
  """The arrays the jitted step updates in place (donated): plain leaves, no NNX graph per step."""

  input: jax.Array  # [V, D] the word vectors (word2vec.c's syn0)
  output: jax.Array  # [V, D] context/negative vectors (syn1neg)
  touched: jax.Array  # float32 [V] scratch for per-update row sums; all zeros between updates


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def uniform_table(key: jax.Array, vocab_size: int, dim: int, bound: float, rows_per_chunk: int = 1 << 16) -> jax.Array:
  """U(-bound, bound) [V, D], made chunk by chunk into one buffer: the random-bit temporaries are one chunk's,
  not the table's (at 3M x 300 a whole-table draw peaked at 2.9x the table's host memory)."""
  rows = min(rows_per_chunk, vocab_size)

  def fill(i, table):
    chunk = jax.random.uniform(jax.random.fold_in(key, i), (rows, dim), jnp.float32, -bound, bound)
    # the last chunk is moved back to fit (dynamic_update_slice clamps), redrawing a few rows: still uniform
    return jax.lax.dynamic_update_slice(table, chunk, (i * rows, 0))

  return jax.lax.fori_loop(0, -(-vocab_size // rows), fill, jnp.zeros((vocab_size, dim), jnp.float32))


class Word2Vec(nnx.Module):
  """Input and output tables, initialised as word2vec.c: input U(-0.5/D, 0.5/D), output zeros."""

  def __init__(self, vocab_size: int, dim: int, *, rngs: nnx.Rngs):
    self.input = nnx.Param(uniform_table(rngs.params(), vocab_size, dim, 0.5 / dim))
    self.output = nnx.Param(jnp.zeros((vocab_size, dim), jnp.float32))

  def tables(self) -> Tables:
    """The arrays for the training step (nnx.split's pattern: pure arrays in the hot loop)."""
    return Tables(self.input[...], self.output[...], jnp.zeros(self.input.shape[0], jnp.float32))

  def update(self, tables: Tables) -> None:
    """Takes back the arrays the training step returned (the initial ones were donated to it)."""
    self.input, self.output = nnx.Param(tables.input), nnx.Param(tables.output)
