"""vocab: counting, ordering, min_count, word2vec.c-style pruning and the vocab.tsv round trip."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from w2v_jax import corpus, vocab
from w2v_jax.errors import UserError
from w2v_jax.vocab import Vocab, build_vocab, count_words


def test_counts_and_order(write_corpus) -> None:
  """Words sorted by descending count, ties by word; counts and total tokens exact across files."""
  a = write_corpus("a.txt", "b a c a\nd b a\n\n e\tc ")
  b = write_corpus("b.txt", "c a zz\n")
  vocab = build_vocab(corpus.FileCorpus([a, b]), lowercase=False, min_count=1)
  assert vocab.words == ["a", "c", "b", "d", "e", "zz"]
  np.testing.assert_array_equal(vocab.counts, [4, 3, 2, 1, 1, 1])
  assert vocab.counts.dtype == np.int64
  assert vocab.total_tokens == 12 == vocab.train_words
  assert vocab.size == 6 and vocab.invalid_utf8 == 0


def test_counts_match_a_counter(write_corpus) -> None:
  """On a random corpus, counts equal collections.Counter over str.split() tokens."""
  rng = np.random.default_rng(0)
  words = [f"w{i}" for i in range(60)]
  p = np.arange(1, 61) ** -1.5
  lines = [" ".join(rng.choice(words, size=int(rng.integers(1, 15)), p=p / p.sum())) for _ in range(300)]
  path = write_corpus("c.txt", "\n".join(lines))
  counter = collections.Counter(" ".join(lines).split())
  vocab = build_vocab(corpus.FileCorpus([path]), False, min_count=3)
  want = sorted(((w, c) for w, c in counter.items() if c >= 3), key=lambda wc: (-wc[1], wc[0]))
  assert list(zip(vocab.words, vocab.counts.tolist())) == want
  assert vocab.total_tokens == sum(counter.values()) > vocab.train_words


def test_min_count_drops_rare_words_but_total_counts_them(write_corpus) -> None:
  """min_count removes words from the vocabulary; total_tokens still counts every corpus token."""
  path = write_corpus("c.txt", "x x x y y z\n")
  vocab = build_vocab(corpus.FileCorpus([path]), False, min_count=2)
  assert vocab.words == ["x", "y"]
  assert vocab.total_tokens == 6 and vocab.train_words == 5


def test_lowercase_merges_case_variants(write_corpus) -> None:
  """With lowercase, 'Über' and 'über' are one word; without, two."""
  path = write_corpus("c.txt", "Über über ÜBER Apfel\n")
  assert build_vocab(corpus.FileCorpus([path]), True, 1).words == ["über", "apfel"]
  assert build_vocab(corpus.FileCorpus([path]), True, 1).counts.tolist() == [3, 1]
  assert sorted(build_vocab(corpus.FileCorpus([path]), False, 1).words) == sorted(["Über", "über", "ÜBER", "Apfel"])


def fake_pieces(pieces: list[bytes]):
  """A FileCorpus.pieces stand-in yielding the given pieces (pruning runs after each piece)."""

  def given_pieces(self, lowercase, stats=None, piece_bytes=corpus.PIECE_BYTES, share=(1, 0)):
    yield from pieces

  return given_pieces


def test_pruning_follows_word2vec_c(monkeypatch) -> None:
  """Over max_vocab_size words held: drop counts <= min_reduce, then min_reduce += 1."""
  pieces = [b"a a a b c d\n", b"e f\n", b"a e e g h\n"]
  # piece 1: a3 b1 c1 d1 (4 > 3) -> drop <= 1 -> {a3}, min_reduce 2
  # piece 2: a3 e1 f1 (3, not > 3) -> kept
  # piece 3: a4 e3 f1 g1 h1 (5 > 3) -> drop <= 2 -> {a4, e3}, min_reduce 3
  monkeypatch.setattr(corpus.FileCorpus, "pieces", fake_pieces(pieces))
  unused = corpus.FileCorpus(["unused"])
  counts, total, invalid = count_words(unused, False, max_vocab_size=3)
  assert dict(counts) == {b"a": 4, b"e": 3}
  assert total == 13 and invalid == 0
  vocab = build_vocab(unused, False, min_count=1, max_vocab_size=3)
  assert vocab.words == ["a", "e"] and vocab.counts.tolist() == [4, 3] and vocab.total_tokens == 13
  unpruned, _, _ = count_words(unused, False, max_vocab_size=0)
  assert len(unpruned) == 8


def test_max_vocab_size_caps_the_final_list(monkeypatch, write_corpus) -> None:
  """When pruning cannot get under the cap (all counts high), the sorted list is cut to max_vocab_size."""
  path = write_corpus("c.txt", "r r p p q q\n")
  vocab = build_vocab(corpus.FileCorpus([path]), False, min_count=1, max_vocab_size=2)
  assert vocab.words == ["p", "q"] and vocab.counts.tolist() == [2, 2]
  assert vocab.total_tokens == 6


def test_save_load_round_trip(tmp_path) -> None:
  """vocab.tsv holds word<TAB>count lines in order; load() gives back the same Vocab."""
  vocab = Vocab(["the", "über", "naïve", "x"], np.array([9, 4, 4, 1], np.int64), 40, invalid_utf8=2)
  vocab.save(str(tmp_path))
  assert (tmp_path / "vocab.tsv").read_text(encoding="utf-8") == "the\t9\nüber\t4\nnaïve\t4\nx\t1\n"
  loaded = Vocab.load(str(tmp_path))
  assert loaded.words == vocab.words
  np.testing.assert_array_equal(loaded.counts, vocab.counts)
  assert loaded.counts.dtype == np.int64
  assert (loaded.total_tokens, loaded.invalid_utf8) == (40, 2)


def test_invalid_utf8_is_counted_not_fatal(write_corpus) -> None:
  """Invalid bytes become U+FFFD in a word and are counted in vocab.invalid_utf8."""
  path = write_corpus("c.txt", b"good bad\xff word\n\xfe good\n")
  vocab = build_vocab(corpus.FileCorpus([path]), False, 1)
  assert vocab.invalid_utf8 == 2
  assert vocab.words[0] == "good" and "bad\ufffd" in vocab.words and "\ufffd" in vocab.words


def test_no_words_is_a_user_error(write_corpus) -> None:
  """A corpus of whitespace only is a one-line UserError."""
  path = write_corpus("c.txt", " \n\n\t\n")
  with pytest.raises(UserError, match="no words"):
    build_vocab(corpus.FileCorpus([path]), False, 1)


def test_min_count_too_high_is_a_user_error(write_corpus) -> None:
  """No word reaching min_count is a UserError naming min_count and the best count."""
  path = write_corpus("c.txt", "a a b\n")
  with pytest.raises(UserError, match=r"min_count=5.*occurs 2 times"):
    build_vocab(corpus.FileCorpus([path]), False, 5)


def test_pruning_bounds_the_counting_dict(write_corpus) -> None:
  """1.2M distinct words counted with max_vocab_size=50k: the dict never holds more than the cap plus one
  piece's words, and the frequent words survive with their exact counts."""
  rng = np.random.default_rng(0)
  unique = [f"u{i}" for i in range(1_200_000)]
  frequent = rng.choice([f"f{i}" for i in range(20)], size=600_000)
  words = np.concatenate([unique, frequent])
  rng.shuffle(words)
  path = write_corpus("c.txt", "\n".join(" ".join(line) for line in np.array_split(words, 18_000)) + "\n")
  piece_words = corpus.PIECE_BYTES // 2  # a token and its separator take at least 2 bytes
  peak = 0

  def observe(counts) -> None:
    nonlocal peak
    peak = max(peak, len(counts))

  counts, total, _ = count_words(corpus.FileCorpus([path]), False, max_vocab_size=50_000, on_piece=observe)
  assert total == len(words)
  assert 50_000 < peak <= 50_000 + piece_words
  assert len(counts) <= 50_000
  expected = collections.Counter(frequent.tolist())
  assert {w.decode(): c for w, c in counts.items() if w.startswith(b"f")} == expected


def test_counting_in_two_processes_equals_one(write_corpus) -> None:
  """count_in_processes (fresh interpreters, each counting every other piece) gives count_words's result."""
  text = "".join(f"w{i % 97} w{i % 13} Über\n" for i in range(120_000)).encode() + b"bad\xff \xfe\n"
  source = corpus.FileCorpus([write_corpus("a.txt", text), write_corpus("b.txt", "tail w1")])
  assert len(list(source.pieces(True))) >= 3  # both processes get pieces
  one = count_words(source, True)
  assert vocab.count_in_processes(source, True, 0, processes=2) == one
  assert one[2] == 2


@pytest.mark.parametrize("damage", ["empty_tsv", "bad_line", "no_json"])
def test_load_of_a_damaged_vocabulary_is_one_line(tmp_path, damage: str) -> None:
  """vocab.tsv emptied, holding a bad line, or without its vocab.json is a one-line UserError naming vocab.tsv
  (not a ZeroDivisionError later, or a ValueError)."""
  Vocab(["a", "b"], np.array([3, 1], np.int64), 4).save(str(tmp_path))
  if damage == "empty_tsv":
    (tmp_path / "vocab.tsv").write_text("")
  elif damage == "bad_line":
    (tmp_path / "vocab.tsv").write_text("a\t3\nb\tmany\n")
  else:
    (tmp_path / "vocab.json").unlink()
  with pytest.raises(UserError, match="vocab.tsv: damaged") as info:
    Vocab.load(str(tmp_path))
  assert "\n" not in str(info.value)
