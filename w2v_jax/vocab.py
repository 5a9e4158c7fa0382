"""The vocabulary: one streaming counting pass, pruned like word2vec.c, ids by descending count."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from typing import BinaryIO

import numpy as np

from w2v_jax import corpus
from w2v_jax.atomic_file import atomic_write
from w2v_jax.errors import UserError, exit_on_user_error, first_line
from w2v_jax.word_count import WordCounts, hash_tokens, stream_hashes
from w2v_jax.workdir import Workdir

Counts = tuple[collections.Counter, int, int]  # word (bytes) counts, corpus tokens, invalid UTF-8 sequences


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

  def save(self, workdir: str, source: dict | None = None, token_cache: list[str] | None = None) -> None:
    """Writes vocab.tsv (word<TAB>count) and vocab.json (corpus totals, what it was built from, and the
    token cache files made with it, relative to workdir)."""
    stats = {"words": self.size, "total_tokens": self.total_tokens, "invalid_utf8": self.invalid_utf8,
             "source": source or {}, "token_cache": token_cache or []}
    files = Workdir(workdir)
    with atomic_write(files.vocab_tsv, encoding="utf-8") as f:
      f.writelines(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts.tolist()))
    with atomic_write(files.vocab_json) as f:
      json.dump(stats, f, indent=2)

  @classmethod
  def load(cls, workdir: str) -> Vocab:
    """Reads what save() wrote; a damaged pair of files (unreadable, or not holding the words vocab.json
    counts) is a UserError."""
    words, counts, files = [], [], Workdir(workdir)
    try:
      with open(files.vocab_tsv, encoding="utf-8") as f:
        for line in f:
          word, count = line.rstrip("\n").rsplit("\t", 1)
          words.append(word)
          counts.append(int(count))
      with open(files.vocab_json) as f:
        stats = json.load(f)
      if len(words) != stats["words"] or not words:
        raise ValueError(f"vocab.tsv holds {len(words)} words, vocab.json says {stats['words']}")
      return cls(words, np.asarray(counts, np.int64), stats["total_tokens"], stats["invalid_utf8"])
    except (OSError, ValueError, KeyError, TypeError) as e:
      if isinstance(e, OSError):
        what = f"{os.path.basename(str(e.filename))}: {e.strerror}" if e.filename else e.strerror
      else:
        what = first_line(e)
      raise UserError(f"{files.vocab_tsv}: damaged or missing ({what}); "
                      "training in this workdir rebuilds it") from None


def _saved_stats(workdir: str) -> dict:
  """vocab.json's contents, or {} if there is none."""
  try:
    with open(Workdir(workdir).vocab_json) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def saved_source(workdir: str) -> dict | None:
  """What the vocabulary in workdir was built from (see Vocab.save), or None if there is none."""
  return _saved_stats(workdir).get("source")


def saved_token_cache(workdir: str) -> list[str]:
  """The token cache files (paths) made with workdir's vocabulary, in stream order ([]: none)."""
  return [Workdir(workdir).file(name) for name in _saved_stats(workdir).get("token_cache", [])]


def count_words(
    source: corpus.TextSource, lowercase: bool, max_vocab_size: int = 0,
    on_piece: Callable[[WordCounts], None] | None = None, share: tuple[int, int] = (1, 0),
    spill: BinaryIO | None = None,
) -> Counts:
  """Counts tokens in one pass; returns (counts, total tokens, invalid UTF-8 sequences).

  With max_vocab_size, whenever more distinct words are held, words with count <= min_reduce are
  dropped and min_reduce grows by one (gensim's and word2vec.c's pruning): memory stays bounded
  (by max_vocab_size plus one piece's distinct words), and a rare word can lose the counts it had
  before a prune. on_piece sees the counts after each piece is added, before pruning (for tests);
  share = (k, i) counts only every k-th piece from the i-th (see count_in_processes). spill receives the token
  stream as uint64 hashes (word_count.stream_hashes), so that tokenizing needs no second pass over the text.
  """
  counts = WordCounts()
  stats = corpus.ReadStats()
  total, min_reduce = 0, 1
  for piece in source.pieces(lowercase, stats, share=share):
    hashed = hash_tokens(piece)
    total += counts.add_hashed(piece, *hashed)
    if spill is not None:
      spill.write(stream_hashes(piece, *hashed[:2]).tobytes())
    if on_piece:
      on_piece(counts)
    if max_vocab_size and len(counts) > max_vocab_size:
      counts.prune(min_reduce)
      min_reduce += 1
  return counts.to_counter(), total, stats.invalid_utf8


def count_in_processes(source: corpus.TextSource, lowercase: bool, max_vocab_size: int, processes: int) -> Counts:
  """count_words split over processes, each reading the source and counting every processes-th piece.

  Fresh interpreters (python -m w2v_jax.vocab), not forks: the caller may hold JAX/TF threads; they unpickle the
  source. With max_vocab_size each process prunes its own counts, so counting memory is at most processes times
  the cap.
  """
  package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
  with tempfile.TemporaryDirectory() as tmp:
    source_file = os.path.join(tmp, "source.pkl")
    with open(source_file, "wb") as f:
      pickle.dump(source, f, protocol=pickle.HIGHEST_PROTOCOL)
    jobs = []
    for i in range(processes):
      task = {"source": source_file, "lowercase": lowercase, "max_vocab_size": max_vocab_size, "share": [processes, i],
              "out": os.path.join(tmp, f"{i}.pkl")}
      jobs.append((task, subprocess.Popen([sys.executable, "-m", "w2v_jax.vocab", json.dumps(task)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    failures = [(job.communicate()[1], job.returncode) for _, job in jobs]
    for stderr, code in failures:
      if code:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {code}"
        raise UserError(last.removeprefix("error: ") if last.startswith("error: ") else f"counting failed: {last}")
    return merge_counts(load_counts(task["out"]) for task, _ in jobs)


def count_corpus(source: corpus.TextSource, lowercase: bool, max_vocab_size: int = 0,
                 processes: int = 1, spill: BinaryIO | None = None) -> tuple[Counts, bool]:
  """count_words, over as many of `processes` processes as the source takes (source.counting_processes); and
  whether the token hashes went to spill (when counted here)."""
  processes = source.counting_processes(processes)
  if processes > 1:
    return count_in_processes(source, lowercase, max_vocab_size, processes), False
  return count_words(source, lowercase, max_vocab_size, spill=spill), spill is not None


def save_counts(path: str, counts: Counts) -> None:
  """Pickles a (counts, total, invalid) result for another process to merge."""
  with open(path, "wb") as f:
    pickle.dump(counts, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_counts(path: str) -> Counts:
  """What save_counts wrote."""
  with open(path, "rb") as f:
    return pickle.load(f)


def merge_counts(parts: Iterable[Counts]) -> Counts:
  """The counts of several shares of a corpus added up."""
  counts, total, invalid = collections.Counter(), 0, 0
  for part, part_total, part_invalid in parts:
    counts.update(part)
    total, invalid = total + part_total, invalid + part_invalid
  return counts, total, invalid


def vocab_from_counts(counted: Counts, min_count: int, max_vocab_size: int, corpus_name: str) -> Vocab:
  """Keeps words with count >= min_count, at most max_vocab_size of them, ids by descending count."""
  counts, total, invalid = counted
  if total == 0:
    raise UserError(f"corpus {corpus_name}: no words in it")
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


def build_vocab(
    source: corpus.TextSource, lowercase: bool, min_count: int, max_vocab_size: int = 0,
    processes: int = 1) -> Vocab:
  """Counts the corpus (see count_corpus) and keeps words with count >= min_count, at most max_vocab_size."""
  counts, _ = count_corpus(source, lowercase, max_vocab_size, processes)
  return vocab_from_counts(counts, min_count, max_vocab_size, str(source))


def _count_share(task_json: str) -> None:
  """A count_in_processes worker: counts its share of the pieces and pickles the result."""
  task = json.loads(task_json)
  with open(task["source"], "rb") as f:
    source = pickle.load(f)
  save_counts(task["out"], count_words(source, task["lowercase"], task["max_vocab_size"], share=tuple(task["share"])))


if __name__ == "__main__":
  exit_on_user_error(_count_share)(sys.argv[1])
