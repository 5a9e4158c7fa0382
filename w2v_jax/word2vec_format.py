"""Reads and writes the word2vec vector file formats (text and binary), as word2vec.c and gensim do.

Text: a `WORDS DIM` header line, then one `word v1 ... vDIM` line per word (fastText `.vec` files
are this format too). Binary: the same header, then per word `word ` + DIM little-endian float32
+ `\\n`. Paths ending in `.gz` are gzip-compressed. Words are stored in the order given, which by
convention is most frequent first. Words are split from values at ASCII whitespace only, so a word
may hold other Unicode spaces, as in fastText files.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Sequence
from typing import IO

import numpy as np

from w2v_jax.atomic_file import atomic_writes
from w2v_jax.errors import UserError

_FLOAT32_LE = np.dtype("<f4")
# Values formatted per write: a whole table as Python floats and text at once took ~1 GB more than the
# tables for 220k x 100 (BENCHMARKS.md), and would not fit at all for 3M x 300.
VALUES_PER_WRITE = 1 << 20


def _open(path: str | os.PathLike, mode: str):
  return gzip.open(path, mode) if os.fspath(path).endswith(".gz") else open(path, mode)


def _compressed(raw: IO[bytes], path: str | os.PathLike) -> contextlib.AbstractContextManager[IO[bytes]]:
  """raw, gzip-compressing when path ends in .gz (the header names the file, not its temporary name)."""
  if os.fspath(path).endswith(".gz"):
    return gzip.GzipFile(os.path.basename(path), "wb", fileobj=raw)
  return contextlib.nullcontext(raw)


def write_word2vec(
    path: str | os.PathLike, words: Sequence[str], vectors: np.ndarray, binary: bool
) -> None:
  """Writes `vectors` (one row per word) in word2vec text or binary format.

  Text values are written with 9 significant digits, so float32 values survive a round trip. The file is
  replaced whole (atomic_write): a failed write keeps the previous one and raises UserError.
  """
  write_word2vec_files([(path, binary)], words, vectors)


def write_word2vec_files(
    targets: Sequence[tuple[str | os.PathLike, bool]], words: Sequence[str], vectors: np.ndarray
) -> None:
  """write_word2vec to each (path, binary) target, all replaced together once all are written (atomic_writes):
  a failure keeps every previous file, so a text and a binary file of one run always match."""
  vectors = np.asarray(vectors, dtype=np.float32)
  if vectors.ndim != 2 or vectors.shape[0] != len(words):
    raise ValueError(f"need one vector row per word: {len(words)} words, shape {vectors.shape}")
  for word in words:
    if word.encode().split() != [word.encode()]:
      raise ValueError(f"word {word!r} is empty or has whitespace; word2vec files cannot hold it")
  paths = [path for path, _ in targets]
  with atomic_writes(paths, "wb") as raws, contextlib.ExitStack() as stack:
    for raw, (path, binary) in zip(raws, targets):
      _write_rows(stack.enter_context(_compressed(raw, path)), words, vectors, binary)


def _write_rows(f: IO[bytes], words: Sequence[str], vectors: np.ndarray, binary: bool) -> None:
  """The header and the rows, VALUES_PER_WRITE values at a time."""
  num_words, dim = vectors.shape
  row_format = " ".join(["%.9g"] * dim)
  step = max(1, VALUES_PER_WRITE // max(dim, 1))  # rows per write: memory stays bounded for any vocabulary
  f.write(f"{num_words} {dim}\n".encode())
  for start in range(0, num_words, step):
    names, block = words[start:start + step], vectors[start:start + step]
    if binary:
      f.write(b"".join(w.encode() + b" " + r.tobytes() + b"\n" for w, r in zip(names, block.astype(_FLOAT32_LE))))
    else:
      f.write("".join(f"{w} {row_format % tuple(r)}\n" for w, r in zip(names, block.tolist())).encode())


def read_word2vec(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
  """Reads a word2vec text or binary file, format auto-detected; returns (words, float32 [V, D])."""
  try:
    with _open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    raise UserError(f"{path}: vectors file not found") from None
  except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError; a bad deflate block is zlib's
    raise UserError(f"{path}: cannot read vectors file, damaged or truncated ({e})") from None
  header, _, body = data.partition(b"\n")
  try:
    num_words, dim = (int(x) for x in header.split())
  except ValueError:
    raise UserError(
        f"{path}: line 1 must be a 'WORDS DIM' header as in word2vec files, got {header[:60]!r}"
    ) from None
  if num_words < 0 or dim < 1:
    raise UserError(f"{path}: header says {num_words} words of dimension {dim}; expected positive")
  # A file is text if it parses as text; otherwise binary. If neither, report the likelier one.
  try:
    return _read_text(path, body, num_words, dim)
  except UserError as text_error:
    try:
      return _read_binary(path, body, num_words, dim)
    except UserError as binary_error:
      raise (text_error if _probably_text(body) else binary_error) from None


def _probably_text(body: bytes) -> bool:
  """True when the first row's values (after the word) are printable ASCII, as numbers are.

  In a binary file they are raw float32 bytes, which seldom are.
  """
  values = body.split(b"\n", 1)[0].split(None, 1)[1:]
  text = values[0].strip() if values else b""
  return text.isascii() and text.decode().replace("\t", " ").isprintable()


def _decode_word(path, raw: bytes, where: str) -> str:
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    raise UserError(f"{path}: {where}: word {raw!r} is not valid UTF-8") from None


def _check_count(path, num_words: int, num_rows: int) -> None:
  if num_rows != num_words:
    raise UserError(
        f"{path}: header says {num_words} words but the file has {num_rows} rows; "
        "fix the header or the file"
    )


def _check_duplicates(path, words: list[str], wheres: list[str]) -> None:
  """Raises UserError naming the first word that appears twice and where."""
  if len(set(words)) == len(words):
    return
  first: dict[str, str] = {}
  for word, where in zip(words, wheres, strict=True):
    if word in first:
      raise UserError(f"{path}: {where}: duplicate word {word!r} (first at {first[word]})")
    first[word] = where


def _check_rows(path, words: list[str], rows: list[bytes], wheres: list[str], dim: int) -> None:
  """Raises UserError for the first row that is the wrong width or not numeric."""
  for word, row, where in zip(words, rows, wheres, strict=True):
    values = row.split()
    if len(values) != dim:
      raise UserError(f"{path}: {where}: word {word!r} has {len(values)} values, header says {dim}")
    for value in values:
      try:
        float(value)
      except ValueError:
        bad = value.decode(errors="replace")
        raise UserError(f"{path}: {where}: non-numeric value {bad!r} for word {word!r}") from None


def _read_text(path, body: bytes, num_words: int, dim: int) -> tuple[list[str], np.ndarray]:
  """Parses text rows; tolerates CRLF, trailing spaces and blank lines."""
  words: list[str] = []
  rows: list[bytes] = []
  wheres: list[str] = []
  for line_no, line in enumerate(body.split(b"\n"), start=2):
    fields = line.split(None, 1)
    if fields:
      wheres.append(f"line {line_no}")
      words.append(_decode_word(path, fields[0], wheres[-1]))
      rows.append(fields[1] if len(fields) > 1 else b"")
      if len(rows) == 1:
        _check_rows(path, words, rows, wheres, dim)  # a binary file fails here, at once
  _check_count(path, num_words, len(rows))
  if not rows:
    return words, np.zeros((0, dim), np.float32)
  try:
    vectors = np.loadtxt(rows, dtype=np.float32, comments=None, ndmin=2)
  except ValueError:
    vectors = None
  if vectors is None or vectors.shape != (len(rows), dim):
    _check_rows(path, words, rows, wheres, dim)
    raise UserError(f"{path}: cannot parse the vector values as float32 numbers")
  _check_duplicates(path, words, wheres)
  return words, vectors


def _read_binary(path, body: bytes, num_words: int, dim: int) -> tuple[list[str], np.ndarray]:
  """Parses binary records `word ` + dim float32, each optionally followed by a newline."""
  row_bytes = dim * _FLOAT32_LE.itemsize
  words: list[str] = []
  wheres: list[str] = []
  offsets: list[int] = []
  pos = 0
  while len(words) < num_words:
    while body[pos : pos + 1] == b"\n":
      pos += 1
    space = body.find(b" ", pos)
    if space < 0 or space + 1 + row_bytes > len(body):
      break
    wheres.append(f"record {len(words) + 1}")
    words.append(_decode_word(path, body[pos:space], wheres[-1]))
    offsets.append(space + 1)
    pos = space + 1 + row_bytes
  _check_count(path, num_words, len(words))
  if body[pos:].strip(b"\n"):
    raise UserError(
        f"{path}: header says {num_words} words but data continues after record {num_words}; "
        "fix the header or the file"
    )
  vectors = np.empty((len(words), dim), dtype=np.float32)
  for i, offset in enumerate(offsets):
    vectors[i] = np.frombuffer(body, dtype=_FLOAT32_LE, count=dim, offset=offset)
  _check_duplicates(path, words, wheres)
  return words, vectors
