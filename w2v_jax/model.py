"""The two embedding tables of word2vec, held by a Flax NNX module."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from w2v_jax import distributed, word2vec_format
from w2v_jax.workdir import Workdir


class Tables(NamedTuple):
  """The arrays the jitted step updates in place (donated): plain leaves, no NNX graph per step."""

  input: jax.Array  # [V, D] the word vectors (word2vec.c's syn0)
  output: jax.Array  # [V, D] context/negative vectors (syn1neg)


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
  """word2vec's two tables: initialised as word2vec.c (input U(-0.5/D, 0.5/D), output zeros), trained as plain
  arrays (tables: nnx.split's pattern, no NNX graph in the hot loop), then held again to give the word vectors."""

  def __init__(self, vocab_size: int, dim: int, *, rngs: nnx.Rngs):
    self.input = nnx.Param(uniform_table(rngs.params(), vocab_size, dim, 0.5 / dim))
    self.output = nnx.Param(jnp.zeros((vocab_size, dim), jnp.float32))

  @classmethod
  def of(cls, tables: Tables) -> Word2Vec:
    """The model holding trained tables (a checkpoint's, an epoch's), without drawing an initialisation."""
    model = nnx.eval_shape(lambda: cls(*tables.input.shape, rngs=nnx.Rngs(0)))
    model.input, model.output = nnx.Param(tables.input), nnx.Param(tables.output)
    return model

  def tables(self) -> Tables:
    """The arrays for the training step, which donates them."""
    return Tables(self.input[...], self.output[...])

  def word_vectors(self, wplusc: bool = False) -> np.ndarray:
    """The word vectors on the host (on every process): the input table, or with wplusc input + output ('w+c',
    Levy et al. 2015, which often scores higher on similarity)."""
    vectors = self.input[...]
    if wplusc:
      vectors = vectors + self.output[...]
    return distributed.to_host(vectors)

  @staticmethod
  def export(workdir: Workdir, words: list[str], vectors: np.ndarray) -> None:
    """Writes vectors.txt and vectors.bin in word2vec's formats, replacing both together (or neither)."""
    word2vec_format.write_word2vec_files([(workdir.vectors_txt, False), (workdir.vectors_bin, True)], words, vectors)
