"""word2vec_format: exact round trips, gensim interoperability, and one-line errors for bad files."""

from __future__ import annotations

import builtins
import errno
import gzip

import numpy as np
import pytest

from w2v_jax import word2vec_format
from w2v_jax.errors import UserError
from w2v_jax.word2vec_format import read_word2vec, write_word2vec

WORDS = ["the", "café", "日本", "New_York", "no\u00a0break", "x"]  # NBSP is not a separator


def random_vectors(num_words: int = len(WORDS), dim: int = 7, seed: int = 0) -> np.ndarray:
  """float32 values over many magnitudes, so text formatting must keep all digits."""
  rng = np.random.default_rng(seed)
  scale = 10.0 ** rng.integers(-6, 6, size=(num_words, dim))
  return (rng.standard_normal((num_words, dim)) * scale).astype(np.float32)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_is_exact(tmp_path, binary: bool, suffix: str) -> None:
  vectors = random_vectors()
  path = tmp_path / f"v{suffix}"
  write_word2vec(path, WORDS, vectors, binary=binary)
  words, loaded = read_word2vec(path)
  assert words == WORDS
  assert loaded.dtype == np.float32
  np.testing.assert_array_equal(loaded, vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_writing_in_pieces_changes_no_byte(tmp_path, monkeypatch, binary: bool) -> None:
  """Rows are written a few at a time (bounded memory); the file equals the one written in a single piece."""
  vectors = random_vectors()
  write_word2vec(tmp_path / "whole", WORDS, vectors, binary=binary)
  monkeypatch.setattr(word2vec_format, "VALUES_PER_WRITE", 2 * vectors.shape[1])  # 2 rows per write, 3 writes
  write_word2vec(tmp_path / "pieces", WORDS, vectors, binary=binary)
  assert (tmp_path / "pieces").read_bytes() == (tmp_path / "whole").read_bytes()


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_full_disk_keeps_the_previous_file(tmp_path, monkeypatch, suffix: str) -> None:
  """A disk that fills up in the middle of a write: one UserError line, the previous vectors file intact, and no
  temporary file left behind."""
  path = tmp_path / f"vectors.bin{suffix}"
  write_word2vec(path, WORDS, random_vectors(), binary=True)
  before = path.read_bytes()

  real_open = open

  def full_disk_open(name, mode="r", *args, **kwargs):
    f = real_open(name, mode, *args, **kwargs)
    if "w" not in mode:
      return f
    real_write, written = f.write, []

    def write(data):
      written.append(len(data))
      if sum(written) > 40:
        raise OSError(errno.ENOSPC, "No space left on device")
      return real_write(data)

    f.write = write
    return f

  monkeypatch.setattr(builtins, "open", full_disk_open)
  monkeypatch.setattr(word2vec_format, "VALUES_PER_WRITE", 7)  # a row per write: the failure comes mid-file
  with pytest.raises(UserError, match=r"vectors\.bin(\.gz)?: no space left on the device; the previous file"):
    write_word2vec(path, WORDS, random_vectors(seed=1), binary=True)
  assert path.read_bytes() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_binary_layout_matches_word2vec_c(tmp_path) -> None:
  """Header line, then `word ` + little-endian float32 + newline per word."""
  vectors = np.array([[1.0, -2.5], [0.25, 3.0]], np.float32)
  write_word2vec(tmp_path / "v.bin", ["a", "bé"], vectors, binary=True)
  expected = (b"2 2\n" + b"a " + vectors[0].astype("<f4").tobytes() + b"\n"
              + "bé ".encode() + vectors[1].astype("<f4").tobytes() + b"\n")
  assert (tmp_path / "v.bin").read_bytes() == expected


def test_text_layout(tmp_path) -> None:
  write_word2vec(tmp_path / "v.txt", ["a", "b"], np.array([[1.0, -2.5], [0.1, 3.0]]), binary=False)
  assert (tmp_path / "v.txt").read_text() == "2 2\na 1 -2.5\nb 0.100000001 3\n"


@pytest.mark.needs_gensim
@pytest.mark.parametrize("binary", [False, True])
def test_gensim_loads_what_we_write(tmp_path, binary: bool) -> None:
  from gensim.models import KeyedVectors  # noqa: PLC0415 - test-only dependency

  vectors = random_vectors()
  write_word2vec(tmp_path / "v", WORDS, vectors, binary=binary)
  kv = KeyedVectors.load_word2vec_format(str(tmp_path / "v"), binary=binary)
  assert kv.index_to_key == WORDS
  np.testing.assert_array_equal(kv.vectors, vectors)


@pytest.mark.needs_gensim
@pytest.mark.parametrize("binary", [False, True])
def test_we_load_what_gensim_writes(tmp_path, binary: bool) -> None:
  from gensim.models import KeyedVectors  # noqa: PLC0415 - test-only dependency

  vectors = random_vectors(seed=1)
  kv = KeyedVectors(vectors.shape[1])
  kv.add_vectors(WORDS, vectors)
  kv.save_word2vec_format(str(tmp_path / "v"), binary=binary)
  words, loaded = read_word2vec(tmp_path / "v")
  assert words == WORDS
  np.testing.assert_array_equal(loaded, vectors)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_format_detection_with_few_dimensions(tmp_path, dim: int) -> None:
  """Raw float32 bytes may look like text for a few bytes; detection must still be right."""
  rng = np.random.default_rng(dim)
  for trial in range(100):
    vectors = rng.standard_normal((3, dim)).astype(np.float32)
    write_word2vec(tmp_path / "v.bin", ["a", "b", "c"], vectors, binary=True)
    np.testing.assert_array_equal(read_word2vec(tmp_path / "v.bin")[1], vectors, f"trial {trial}")


def test_short_text_rows_that_also_fit_the_binary_layout_are_text(tmp_path) -> None:
  """'a 1.5\\n' is 6 bytes, as a binary record of one float would be; text wins."""
  (tmp_path / "v.txt").write_bytes(b"2 1\na 1.5\nb 2.5\n")
  assert read_word2vec(tmp_path / "v.txt")[1].tolist() == [[1.5], [2.5]]


def test_fasttext_vec_with_trailing_spaces_and_crlf(tmp_path) -> None:
  """fastText .vec rows end with a space; Windows files end lines with CRLF; blank lines are ok."""
  (tmp_path / "v.vec").write_bytes(b"2 3\r\n, 0.5 -1 2 \r\nthe 1e-3 0 -0.25 \r\n\r\n")
  words, vectors = read_word2vec(tmp_path / "v.vec")
  assert words == [",", "the"]
  np.testing.assert_array_equal(vectors, np.array([[0.5, -1, 2], [1e-3, 0, -0.25]], np.float32))


def test_gzipped_text(tmp_path) -> None:
  with gzip.open(tmp_path / "v.txt.gz", "wb") as f:
    f.write(b"1 2\nword 1.5 2.5\n")
  assert read_word2vec(tmp_path / "v.txt.gz")[0] == ["word"]


def test_writer_rejects_words_it_cannot_store(tmp_path) -> None:
  with pytest.raises(ValueError, match="whitespace"):
    write_word2vec(tmp_path / "v", ["new york"], np.zeros((1, 2)), binary=False)
  with pytest.raises(ValueError, match="one vector row per word"):
    write_word2vec(tmp_path / "v", ["a", "b"], np.zeros((1, 2)), binary=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"3 2\na 1 2\nb 3 4\n", r"header says 3 words but the file has 2 rows"),
        (b"1 2\na 1 2\nb 3 4\n", r"header says 1 words but the file has 2 rows"),
        (b"2 2\na 1 2\nb 3\n", r"line 3: word 'b' has 1 values, header says 2"),
        (b"2 2\na 1 2\nb 3 4 5\n", r"line 3: word 'b' has 3 values, header says 2"),
        (b"3 2\na 1 2\nb 3 4\na 5 6\n", r"line 4: duplicate word 'a' \(first at line 2\)"),
        (b"2 2\na 1 2\nb 3 x7\n", r"line 3: non-numeric value 'x7' for word 'b'"),
        (b"a 1 2\nb 3 4\n", r"line 1 must be a 'WORDS DIM' header"),
        (b"", r"line 1 must be a 'WORDS DIM' header"),
        (b"2 0\na\nb\n", r"dimension 0"),
    ],
)
def test_bad_text_files(tmp_path, content: bytes, message: str) -> None:
  (tmp_path / "v.txt").write_bytes(content)
  with pytest.raises(UserError, match=message) as error:
    read_word2vec(tmp_path / "v.txt")
  assert str(tmp_path / "v.txt") in str(error.value)
  assert "\n" not in str(error.value)


def _binary(header: bytes, records: list[tuple[bytes, list[float]]]) -> bytes:
  return header + b"".join(w + b" " + np.array(v, "<f4").tobytes() + b"\n" for w, v in records)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_binary(b"3 2\n", [(b"a", [1, 2]), (b"b", [3, 4])]),
         r"header says 3 words but the file has 2 rows"),
        (_binary(b"1 2\n", [(b"a", [1, 2]), (b"b", [3, 4])]),
         r"header says 1 words but data continues after record 1"),
        (_binary(b"2 2\n", [(b"a", [1, 2]), (b"b", [3, 4])])[:-3],
         r"header says 2 words but the file has 1 rows"),
        (_binary(b"2 2\n", [(b"a", [1, 2]), (b"a", [3, 4])]),
         r"record 2: duplicate word 'a' \(first at record 1\)"),
    ],
)
def test_bad_binary_files(tmp_path, content: bytes, message: str) -> None:
  (tmp_path / "v.bin").write_bytes(content)
  with pytest.raises(UserError, match=message):
    read_word2vec(tmp_path / "v.bin")


def test_missing_file(tmp_path) -> None:
  with pytest.raises(UserError, match=r"nope\.bin: vectors file not found"):
    read_word2vec(tmp_path / "nope.bin")


def test_damaged_gzip_is_one_line(tmp_path) -> None:
  """A .gz whose deflate data is invalid (zlib.error, not an OSError) is a UserError naming the file."""
  path = tmp_path / "vectors.txt.gz"
  path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\x07" + bytes(16))  # a reserved block type
  with pytest.raises(UserError, match="vectors.txt.gz: cannot read vectors file, damaged"):
    read_word2vec(path)


def test_a_failed_second_file_keeps_both_previous_files(tmp_path, monkeypatch) -> None:
  """write_word2vec_files replaces the text and binary files together: a full disk while the second is written
  leaves both previous files (not a new text file beside an old binary one) and no temporary file."""
  text, binary = tmp_path / "vectors.txt", tmp_path / "vectors.bin"
  word2vec_format.write_word2vec_files([(text, False), (binary, True)], WORDS, random_vectors())
  before = text.read_bytes(), binary.read_bytes()
  real_write_rows = word2vec_format._write_rows

  def full_on_binary(f, words, vectors, is_binary):
    if is_binary:
      raise OSError(errno.ENOSPC, "No space left on device")
    real_write_rows(f, words, vectors, is_binary)

  monkeypatch.setattr(word2vec_format, "_write_rows", full_on_binary)
  with pytest.raises(UserError, match=r"vectors\.bin: no space left on the device"):
    word2vec_format.write_word2vec_files([(text, False), (binary, True)], WORDS, random_vectors(seed=1))
  assert (text.read_bytes(), binary.read_bytes()) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.bin", "vectors.txt"]
