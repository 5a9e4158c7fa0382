"""KeyedVectors: trained word vectors with gensim's query methods, computed on the device (evaluation.py)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from w2v_jax import evaluation, word2vec_format
from w2v_jax.errors import UserError
from w2v_jax.vocab import Vocab
from w2v_jax.workdir import Workdir

Words = str | Iterable[str] | None


@jax.jit
def _cosmul_scores(unit: jax.Array, positive: jax.Array, negative: jax.Array) -> jax.Array:
  """gensim's most_similar_cosmul objective: product of (1 + cos) / 2 over positive terms over that of negatives."""
  shifted = lambda terms: jnp.prod((1 + unit @ terms.T) / 2, axis=1)  # noqa: E731
  return shifted(positive) / (shifted(negative) + evaluation._COSMUL_EPS)


@jax.jit
def _3cosadd_scores(unit: jax.Array, positive: jax.Array, negative: jax.Array) -> jax.Array:
  """Cosine of every word with the sum of the positive unit rows minus the negative ones, in one device call."""
  return evaluation._cosines_with(unit, jnp.sum(unit[positive], axis=0) - jnp.sum(unit[negative], axis=0))


@functools.partial(jax.jit, static_argnames="k")
def _3cosadd_top(unit: jax.Array, positive: jax.Array, negative: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """most_similar's k best words and cosines, the query words left out: scores and top-k in one device call."""
  return evaluation.top_k_without(_3cosadd_scores(unit, positive, negative), jnp.concatenate([positive, negative]),
                                  k)


class KeyedVectors:
  """Word vectors in vocabulary order (most frequent first), queried as gensim's KeyedVectors are."""

  def __init__(self, words: Sequence[str], vectors: np.ndarray):
    self._emb = evaluation.Embeddings(words, vectors)

  @property
  def index_to_key(self) -> list[str]:
    """The words, most frequent first (gensim's name)."""
    return self._emb.words

  @property
  def key_to_index(self) -> dict[str, int]:
    """Word -> row of `vectors` (gensim's name)."""
    return self._emb.index

  @property
  def vectors(self) -> np.ndarray:
    """The float32 [words, dim] table."""
    return self._emb.vectors

  @property
  def vector_size(self) -> int:
    """The dimension of the vectors (gensim's name)."""
    return self._emb.vectors.shape[1]

  def __len__(self) -> int:
    return len(self._emb.words)

  def __contains__(self, word: object) -> bool:
    return word in self._emb.index

  def __repr__(self) -> str:
    return f"KeyedVectors({len(self)} words, dim {self.vector_size})"

  def _index(self, word: str) -> int:
    index = self._emb.index.get(word)
    if index is None:
      raise KeyError(f"word {word!r} is not in the vocabulary ({len(self)} words; lookups are case-sensitive)")
    return index

  def __getitem__(self, word: str) -> np.ndarray:
    return self._emb.vectors[self._index(word)]

  def _queries(self, positive: Words, negative: Words) -> tuple[list[int], list[int]]:
    """Row indices of the positive and negative words (a single word may be given as a string)."""
    pos, neg = ([self._index(w) for w in ([ws] if isinstance(ws, str) else ws or [])] for ws in (positive, negative))
    if not pos and not neg:
      raise ValueError("cannot compute similarity with no input")
    return pos, neg

  def _best(self, scores: jax.Array, exclude: list[int], topn: int | None) -> list[tuple[str, float]] | np.ndarray:
    """The topn highest-scoring words other than `exclude`, or every score when topn is None (as gensim)."""
    if topn is None:
      return np.array(scores)
    return evaluation.top_scores(self._emb, scores, exclude, topn)

  def most_similar(self, positive: Words = None, negative: Words = None,
                   topn: int | None = 10) -> list[tuple[str, float]] | np.ndarray:
    """Words nearest (cosine) to the sum of the positive unit vectors minus the negative ones (3CosAdd), the
    query words left out: most_similar(positive=["king", "woman"], negative=["man"]) -> queen first."""
    pos, neg = self._queries(positive, negative)
    pos_rows, neg_rows = np.asarray(pos, np.int32), np.asarray(neg, np.int32)
    if topn is None:
      return np.array(_3cosadd_scores(self._emb.unit, pos_rows, neg_rows))
    values, rows = _3cosadd_top(self._emb.unit, pos_rows, neg_rows, evaluation.top_count(self._emb, topn, pos + neg))
    return evaluation.listing(self._emb, rows, values)

  def most_similar_cosmul(self, positive: Words = None, negative: Words = None,
                          topn: int | None = 10) -> list[tuple[str, float]] | np.ndarray:
    """most_similar by 3CosMul (Levy & Goldberg 2014), cosines shifted to [0, 1], scores as gensim's."""
    pos, neg = self._queries(positive, negative)
    if not pos:
      raise ValueError("cannot compute similarity with no input")
    unit = self._emb.unit
    scores = _cosmul_scores(unit, unit[jnp.asarray(pos, jnp.int32)], unit[jnp.asarray(neg, jnp.int32)])
    return self._best(scores, pos + neg, topn)

  def similarity(self, word1: str, word2: str) -> float:
    """The cosine similarity of two words."""
    unit = self._emb.unit
    return float(unit[self._index(word1)] @ unit[self._index(word2)])

  def doesnt_match(self, words: Iterable[str]) -> str:
    """The word farthest (cosine) from the normalised mean of the words' unit vectors; unknown words are ignored,
    as gensim does."""
    known = [w for w in words if w in self]
    if not known:
      raise ValueError("cannot select a word from an empty list (none of the words is in the vocabulary)")
    rows = self._emb.unit[jnp.asarray([self._emb.index[w] for w in known], jnp.int32)]
    return known[int(np.argmin(np.asarray(rows @ evaluation._normalize(jnp.mean(rows, axis=0)))))]

  def evaluate_word_pairs(self, path: str | os.PathLike, case_insensitive: bool = True) -> dict:
    """Spearman/Pearson correlation with a 'w1 w2 score' file, as eval.py reports it (evaluation.py)."""
    return evaluation.evaluate_similarity(self._emb, path, case_insensitive)

  def evaluate_word_analogies(self, path: str | os.PathLike, restrict_vocab: int = 30000,
                              case_insensitive: bool = True) -> dict:
    """Analogy accuracy on an 'a b c d' file (3CosAdd, and 3CosMul), as eval.py reports it (evaluation.py)."""
    return evaluation.evaluate_analogy(self._emb, path, restrict_vocab, case_insensitive)

  def save_word2vec_format(self, path: str | os.PathLike, binary: bool = False) -> None:
    """Writes the vectors in word2vec's text (or binary) format, readable by gensim, fastText and word2vec.c."""
    word2vec_format.write_word2vec(path, self._emb.words, self._emb.vectors, binary=binary)

  def to_gensim(self):
    """The same vectors as a gensim.models.KeyedVectors (gensim must be installed)."""
    try:
      from gensim.models import KeyedVectors as GensimKeyedVectors
    except ImportError:
      raise UserError("to_gensim needs gensim: pip install gensim") from None
    kv = GensimKeyedVectors(self.vector_size)
    kv.add_vectors(self._emb.words, self._emb.vectors)
    return kv


def run_dim(config_path: str) -> int:
  """The vector dimension a run's config.json records; one error line when the file is not such a config."""
  try:
    with open(config_path, encoding="utf-8") as f:
      dim = json.load(f)["dim"]
  except (OSError, ValueError, KeyError, TypeError) as e:  # ValueError: not JSON, or not UTF-8
    raise UserError(f"{config_path}: cannot read the run's dim ({type(e).__name__}: {e}); train.py rewrites it "
                    "when run again with the run's settings, or evaluate a vectors file with --vectors") from None
  if not isinstance(dim, int) or dim < 1:
    raise UserError(f"{config_path}: dim is {dim!r}, not a positive integer; train.py rewrites it when run again")
  return dim


def check_finite(path: str, words: list[str], vectors: np.ndarray) -> None:
  """Refuses vectors with NaN or inf values: their cosines are undefined, so queries and scores would be wrong."""
  bad = ~np.isfinite(vectors).all(axis=1)
  if bad.any():
    raise UserError(f"{path}: {int(bad.sum())} of {len(words)} vectors hold NaN or inf values (the first: "
                    f"{words[int(np.argmax(bad))]!r}); the run diverged or the file is damaged: retrain "
                    "(e.g. lower --config.alpha) or use other vectors")


def load_workdir(workdir: str, wplusc: bool = False) -> tuple[str, list[str], np.ndarray]:
  """A training run's vectors: its latest good checkpoint if any, else its exported vectors.bin."""
  from w2v_jax import checkpointing  # Orbax: only a workdir with checkpoints needs it
  from w2v_jax.model import Tables, Word2Vec

  run_dir = Workdir(workdir)
  if run_dir.has_checkpoints() and os.path.exists(run_dir.config):
    vocab = Vocab.load(workdir)
    dim = run_dim(run_dir.config)
    latest = checkpointing.latest_tables(workdir, vocab.size, dim)
    if latest is not None:
      vectors = Word2Vec.of(Tables(latest.input, latest.output)).word_vectors(wplusc)
      which = "latest" if not latest.damaged else f"newer {', '.join(map(str, latest.damaged))} damaged"
      return f"{workdir}/checkpoints/{latest.step} ({which}{', w+c' if wplusc else ''})", vocab.words, vectors
  if wplusc:
    raise UserError(f"workdir {workdir}: --wplusc needs a checkpoint (it holds the output vectors); none found")
  path = evaluation.vectors_for_workdir(workdir)
  return str(path), *word2vec_format.read_word2vec(path)


def load(path: str | os.PathLike) -> KeyedVectors:
  """Vectors from a training workdir (its latest checkpoint, else its vectors.bin, as eval.py --workdir reads
  it) or from any word2vec text/binary file (.gz too)."""
  path = os.fspath(path)
  if os.path.isdir(path):
    path, words, vectors = load_workdir(path)
  else:
    words, vectors = word2vec_format.read_word2vec(path)
  check_finite(path, words, vectors)
  return KeyedVectors(words, vectors)
