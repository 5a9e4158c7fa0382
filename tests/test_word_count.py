"""word_count: numpy-hashed counting gives exactly bytes.split() + Counter, pruning drops by count."""

from __future__ import annotations

import collections

import numpy as np

from w2v_jax import word_count

PIECES = [b"the cat\tsat\n\non the  mat\r\n\x0bthe\x0cend ",
          "Über über naïve \u3000wide\u3000space ".encode() + b"x" * 5000 + b" tail\n",
          b"   \n\t", b"ab ba aab aba baa ab"]


def test_counts_equal_a_counter_of_split() -> None:
  """Token boundaries are bytes.split()'s (not Unicode whitespace), and anagrams stay distinct."""
  counts = word_count.WordCounts()
  totals = [counts.add(piece) for piece in PIECES]
  expected = collections.Counter(w for piece in PIECES for w in piece.split())
  assert totals == [len(piece.split()) for piece in PIECES]
  assert counts.to_counter() == expected
  assert len(counts) == len(expected)


def test_hashes_do_not_depend_on_position() -> None:
  """A word hashes the same wherever it is in a piece, so counts merge across pieces."""
  hashes, starts, ends = word_count.hash_tokens(b"word x word  yy word")
  assert starts.tolist() == [0, 5, 7, 13, 16] and ends.tolist() == [4, 6, 11, 15, 20]
  assert hashes[0] == hashes[2] == hashes[4] and len(np.unique(hashes)) == 3


def test_prune_drops_counts_at_or_below() -> None:
  """prune(n) keeps exactly the words counted more than n times, with their counts."""
  counts = word_count.WordCounts()
  counts.add(b"a a a b b c\n")
  counts.prune(1)
  assert counts.to_counter() == {b"a": 3, b"b": 2}
