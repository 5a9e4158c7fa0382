"""Word counting without per-token Python work: each piece's tokens are hashed and counted with numpy.

A token is a maximal run of non-whitespace bytes (exactly bytes.split()'s tokens). Its key is a 64-bit
polynomial hash, so two words merge only on a hash collision (expected about once in 10**19 pairs for
natural text); each word's bytes are kept once, when first seen.
"""

from __future__ import annotations

import collections
import functools

import numpy as np

from w2v_jax import corpus

_WHITESPACE = list(corpus.WHITESPACE)
_IN_TOKEN = np.ones(256, np.int8)
_IN_TOKEN[_WHITESPACE] = 0
_VALUE = np.arange(256, dtype=np.uint64)
_VALUE[_WHITESPACE] = 0  # whitespace adds nothing to the segment sums below
_BASE = np.uint64(0x100000001B3)  # odd, so invertible modulo 2**64
_BASE_INV = np.uint64(pow(int(_BASE), -1, 2**64))


@functools.lru_cache(maxsize=2)
def _power_tables_of_size(size: int) -> tuple[np.ndarray, np.ndarray]:
  """BASE**p and BASE**-p modulo 2**64 for p < size (wrapping uint64 products)."""
  powers = np.cumprod(np.full(size, _BASE, np.uint64)) * _BASE_INV  # [1, B, B**2, ...]
  return powers, np.cumprod(np.full(size, _BASE_INV, np.uint64)) * _BASE


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
  """The power tables for a piece of n bytes, from a cached size (pieces are ~1 MB but vary)."""
  powers, inverse_powers = _power_tables_of_size(1 << max(22, (n - 1).bit_length()))
  return powers[:n], inverse_powers[:n]


def hash_tokens(piece: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(hashes, starts, ends) of the piece's tokens: sum of byte * BASE**offset in the token, length mixed in."""
  data = np.frombuffer(piece, np.uint8)
  edges = np.flatnonzero(np.diff(_IN_TOKEN[data], prepend=np.int8(0), append=np.int8(0)))
  starts, ends = edges[0::2], edges[1::2]  # a token starts where in-token goes 0 -> 1 and ends at 1 -> 0
  if not len(starts):
    return np.zeros(0, np.uint64), starts, ends
  powers, inverse_powers = _power_tables(len(data))
  # reduceat's segments run from one start to the next, across the (zero-valued) whitespace
  hashes = np.add.reduceat(_VALUE[data] * powers, starts) * inverse_powers[starts]  # as if at offset 0
  return hashes * _BASE + (ends - starts).astype(np.uint64), starts, ends


# Stands for a line end in a token-hash stream (see stream_hashes); a word's hash is 0 about once in 2**64.
LINE_END_HASH = np.uint64(0)
_NEWLINE = ord("\n")


def stream_hashes(piece: bytes, hashes: np.ndarray, starts: np.ndarray) -> np.ndarray:
  """The piece's token stream as hashes (hash_tokens's), with LINE_END_HASH after each line: what the token
  cache holds as ids, before the vocabulary is known."""
  line_ends = np.flatnonzero(np.frombuffer(piece, np.uint8) == _NEWLINE)
  return np.insert(hashes, np.searchsorted(starts, line_ends), LINE_END_HASH)


def _unique(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(sorted unique hashes, an index of each in hashes, counts): np.unique without its slower stable sort."""
  order = np.argsort(hashes)
  ordered = hashes[order]
  first = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
  return ordered[first], order[first], np.diff(np.append(first, len(hashes)))


def _merge(old: np.ndarray, added: np.ndarray, slots: np.ndarray) -> np.ndarray:
  """old with added placed at the True slots (np.insert without its index sort)."""
  merged = np.empty(len(slots), old.dtype)
  merged[slots] = added
  merged[~slots] = old
  return merged


class WordCounts:
  """Counts keyed by token hash in sorted arrays, with each word's bytes; len() is the number of words held."""

  def __init__(self):
    self.hashes = np.zeros(0, np.uint64)
    self.counts = np.zeros(0, np.int64)
    self.words = np.zeros(0, object)

  def __len__(self) -> int:
    return len(self.hashes)

  def add(self, piece: bytes) -> int:
    """Counts the piece's tokens; returns how many there were."""
    return self.add_hashed(piece, *hash_tokens(piece))

  def add_hashed(self, piece: bytes, hashes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> int:
    """add, given the piece's hash_tokens."""
    if not len(hashes):
      return 0
    unique, first, counts = _unique(hashes)
    at = np.searchsorted(self.hashes, unique)
    known = at < len(self.hashes)
    known[known] = self.hashes[at[known]] == unique[known]
    self.counts[at[known]] += counts[known]
    new = ~known
    if new.any():
      words = np.empty(int(new.sum()), object)
      words[:] = [piece[s:e] for s, e in zip(starts[first[new]].tolist(), ends[first[new]].tolist())]
      slots = np.zeros(len(self.hashes) + len(words), bool)
      slots[at[new] + np.arange(len(words))] = True  # where the new words go in the merged sorted order
      self.hashes, self.counts, self.words = (
          _merge(old, added, slots) for old, added in
          ((self.hashes, unique[new]), (self.counts, counts[new]), (self.words, words)))
    return len(hashes)

  def prune(self, min_reduce: int) -> None:
    """Drops the words counted min_reduce times or fewer."""
    keep = self.counts > min_reduce
    self.hashes, self.counts, self.words = self.hashes[keep], self.counts[keep], self.words[keep]

  def to_counter(self) -> collections.Counter:
    """The counts as Counter({word bytes: count})."""
    return collections.Counter(dict(zip(self.words.tolist(), self.counts.tolist())))
