"""The vocabulary: one streaming counting pass, pruned like word2vec.c, ids by descending count."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from collections.abc import Callable

import numpy as np

from w2v_jax import corpus
from w2v_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Vocab:
  """Words sorted by descending count; id = position. total_tokens counts every corpus token."""

  words: list[str]
  counts: np.ndarray  # int64 [V]
  total_tokens: int  # raw tokens in the corpus, in or out of the vocabulary
  invalid_utf8: int = 0

  @property
  def size(self) -> int:
    return len(self.words)

  @property
  def train_words(self) -> int:
    """In-vocabulary tokens per epoch before subsampling (word2vec.c's train_words)."""
    return int(self.counts.sum())

  def save(self, workdir: str, source: dict | None = None) -> None:
    """Writes vocab.tsv (word<TAB>count) and vocab.json (corpus totals, and what it was built from)."""
    with open(os.path.join(workdir, "vocab.tsv"), "w", encoding="utf-8") as f:
      f.writelines(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts.tolist()))
    stats = {"words": self.size, "total_tokens": self.total_tokens, "invalid_utf8": self.invalid_utf8,
             "source": source or {}}
    with open(os.path.join(workdir, "vocab.json"), "w") as f:
      json.dump(stats, f, indent=2)

  @classmethod
  def load(cls, workdir: str) -> Vocab:
    """Reads what save() wrote."""
    words, counts = [], []
    with open(os.path.join(workdir, "vocab.tsv"), encoding="utf-8") as f:
      for line in f:
        word, count = line.rstrip("\n").rsplit("\t", 1)
        words.append(word)
        counts.append(int(count))
    with open(os.path.join(workdir, "vocab.json")) as f:
      stats = json.load(f)
    return cls(words, np.asarray(counts, np.int64), stats["total_tokens"], stats["invalid_utf8"])


def saved_source(workdir: str) -> dict | None:
  """What the vocabulary in workdir was built from (see Vocab.save), or None if there is none."""
  try:
    with open(os.path.join(workdir, "vocab.json")) as f:
      return json.load(f).get("source")
  except (OSError, ValueError):
    return None


def count_words(
    files: list[str] | corpus.TextSource, lowercase: bool, max_vocab_size: int = 0,
    on_piece: Callable[[collections.Counter], None] | None = None,
) -> tuple[collections.Counter, int, int]:
  """Counts tokens in one pass; returns (counts, total tokens, invalid UTF-8 sequences).

  With max_vocab_size, whenever more distinct words are held, words with count <= min_reduce are
  dropped and min_reduce grows by one (gensim's and word2vec.c's pruning): memory stays bounded
  (by max_vocab_size plus one piece's distinct words), and a rare word can lose the counts it had
  before a prune. on_piece sees the counts after each piece is added, before pruning (for tests).
  """
  counts: collections.Counter = collections.Counter()
  stats = corpus.ReadStats()
  total, min_reduce = 0, 1
  for piece in corpus.read_pieces(files, lowercase, stats):
    tokens = piece.split()
    total += len(tokens)
    counts.update(tokens)  # C-level counting: no per-token Python work
    if on_piece:
      on_piece(counts)
    if max_vocab_size and len(counts) > max_vocab_size:
      counts = collections.Counter({w: c for w, c in counts.items() if c > min_reduce})
      min_reduce += 1
  return counts, total, stats.invalid_utf8


def build_vocab(
    files: list[str] | corpus.TextSource, lowercase: bool, min_count: int, max_vocab_size: int = 0) -> Vocab:
  """Counts the corpus and keeps words with count >= min_count, at most max_vocab_size of them."""
  counts, total, invalid = count_words(files, lowercase, max_vocab_size)
  if total == 0:
    raise UserError(f"corpus {corpus.describe(files)}: no words in it")
  kept = sorted(((w, c) for w, c in counts.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
  if max_vocab_size:
    kept = kept[:max_vocab_size]
  if not kept:
    best = counts.most_common(1)[0][1]
    raise UserError(
        f"no word occurs min_count={min_count} times (the most frequent occurs {best} times); "
        "lower --config.min_count or use a larger corpus"
    )
  words = [w.decode("utf-8") for w, _ in kept]
  return Vocab(words, np.array([c for _, c in kept], np.int64), total, invalid)
