"""Streams a text corpus as pieces of whole lines, never dropping a token, whatever the line length."""

from __future__ import annotations

import bz2
import dataclasses
import glob
import gzip
import hashlib
import io
import itertools
import lzma
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Protocol

from w2v_jax.errors import UserError, first_line

# A small slice of real English Wikipedia text shipped with the package (see data/CORPUS_LICENSE.md).
BUNDLED_CORPUS = str(resources.files("w2v_jax") / "data" / "wiki_slice.txt.gz")

# Pieces are about this many bytes; lines longer than this are cut at whitespace.
PIECE_BYTES = 1 << 20
WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.split() splits on
# A file's fingerprint hashes this many evenly spaced pieces (first and last included) of this many bytes.
SAMPLES, SAMPLE_BYTES = 16, 64 << 10
# check_text judges a file by this many of its first (decompressed) bytes.
SNIFF_BYTES = 1 << 20
# What a damaged or unreadable compressed file raises while it is opened or read.
READ_ERRORS = (OSError, EOFError, RuntimeError, NotImplementedError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)
# Leading bytes of compressed formats, to hint at a misnamed file.
_MAGIC = {b"\x1f\x8b": ".gz", b"BZh": ".bz2", b"\xfd7zXZ\x00": ".xz", b"PK\x03\x04": ".zip"}


@dataclasses.dataclass
class ReadStats:
  """What the reader saw; invalid UTF-8 is replaced (U+FFFD) and counted, not fatal."""

  invalid_utf8: int = 0


class TextSource(Protocol):
  """A corpus (FileCorpus, tfds_text.TfdsText): its pieces, what identifies it and how it splits over hosts and
  counting processes; str() names it in messages."""

  def pieces(self, lowercase: bool, stats: ReadStats | None = None, piece_bytes: int = PIECE_BYTES,
             share: tuple[int, int] = (1, 0)) -> Iterator[bytes]:
    """UTF-8 pieces of about piece_bytes; a line ends with b'\\n', a piece may end mid-line. share = (k, i)
    yields only pieces n with n % k == i, so k processes can split the work."""

  def identity(self) -> list:
    """What a vocabulary is built from, to decide whether it can be reused (JSON-serialisable)."""

  def host_share(self, hosts: int, index: int) -> TextSource:
    """Host index's contiguous share of hosts: in host order, the shares' pieces are the whole corpus's text."""

  def check_text(self) -> None:
    """Raises a UserError if the corpus is plainly not text."""

  def counting_processes(self, requested: int) -> int:
    """How many of the requested processes count it (each reading the whole source, counting its share)."""


def corpus_files(spec: str) -> list[str]:
  """Expands a comma-separated list of files, directories and globs to non-empty files, or raises a UserError.

  Each entry's files are sorted (a directory gives its regular, non-hidden files); entries keep their order.
  """
  if not spec:
    raise UserError("config.corpus is empty: set --config.corpus to a text file, a directory or a glob")
  files: list[str] = []
  seen: set[str] = set()
  for entry in (e.strip() for e in spec.split(",")):
    path = os.path.expanduser(entry)
    if os.path.isdir(path):
      found = sorted(os.path.join(path, f) for f in os.listdir(path) if not f.startswith("."))
      found = [f for f in found if os.path.isfile(f)]
      if not found:
        raise UserError(f"corpus {entry!r}: the directory holds no files; check --config.corpus")
    else:
      found = sorted(f for f in glob.glob(path) if os.path.isfile(f))
      if not found:
        raise UserError(f"corpus {entry!r}: no such file; check --config.corpus")
    files.extend(f for f in found if f not in seen)
    seen.update(found)
  if all(os.path.getsize(f) == 0 for f in files):
    raise UserError(f"corpus {spec!r}: the file(s) are empty; point --config.corpus at text")
  return files


def host_files(files: Sequence[str], num_hosts: int, index: int) -> list[str]:
  """Host index's contiguous run of the files, the runs balanced by bytes: a file goes to the host whose
  even share of the total its middle byte falls in. Concatenated in host order the runs are the files in
  order, so the token stream is the same for any number of hosts (a host may get no file)."""
  sizes = [os.path.getsize(f) for f in files]
  total, before, mine = max(sum(sizes), 1), 0, []
  for path, size in zip(files, sizes):
    if min((before + size / 2) * num_hosts // total, num_hosts - 1) == index:
      mine.append(path)
    before += size
  return mine


def fingerprint(path: str) -> dict:
  """A file's absolute path, size, modification time and sha256 of SAMPLES evenly spaced SAMPLE_BYTES pieces
  (of all of it when smaller): catches edits that keep the size, at the cost of ~1 MB read whatever the size."""
  try:
    stat = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
      if stat.st_size <= SAMPLES * SAMPLE_BYTES:
        digest.update(f.read())
      else:
        for i in range(SAMPLES):
          f.seek(i * (stat.st_size - SAMPLE_BYTES) // (SAMPLES - 1))
          digest.update(f.read(SAMPLE_BYTES))
  except OSError as e:
    raise UserError(f"corpus {path}: cannot read it ({e.strerror})") from None
  return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
          "sample_sha256": digest.hexdigest()}


def content_identity(identity: list) -> list:
  """An identity without the files' modification times: what a checkpoint must match to resume (a touched but
  unchanged corpus resumes, after its vocabulary and token cache are rebuilt and found the same)."""
  return [{k: v for k, v in f.items() if k != "mtime_ns"} if isinstance(f, dict) else f for f in identity]


def _open_binary(path: str) -> io.BufferedIOBase:
  """Opens plain, gzip, bzip2, xz or single-member zip files as a binary stream."""
  if path.endswith(".gz"):
    return gzip.open(path, "rb")
  if path.endswith(".bz2"):
    return bz2.open(path, "rb")
  if path.endswith(".xz"):
    return lzma.open(path, "rb")
  if path.endswith(".zip"):
    archive = zipfile.ZipFile(path)
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) != 1:
      raise UserError(f"corpus {path}: a .zip must hold exactly one text file, found {len(members)}")
    if members[0].flag_bits & 0x1:
      raise UserError(f"corpus {path}: the .zip is password-protected; extract it and point --config.corpus at "
                      "the text")
    return archive.open(members[0])
  return open(path, "rb")


def _normalise(raw: bytes, lowercase: bool, stats: ReadStats) -> bytes:
  """Replaces invalid UTF-8 (counting it) and lowercases; the result is valid UTF-8."""
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError:
    text = raw.decode("utf-8", errors="replace")
    stats.invalid_utf8 += text.count("\ufffd") - raw.count("\ufffd".encode())
  else:
    if not lowercase:
      return raw
  return (text.lower() if lowercase else text).encode("utf-8")


def _cut(buffer: bytes) -> int:
  """Where to end a piece in a full buffer: after its last newline, else its last whitespace.

  A token longer than a piece is cut anyway, but never inside a UTF-8 character (0 means: read more).
  """
  cut = buffer.rfind(b"\n") + 1
  if cut == 0:
    cut = max(buffer.rfind(bytes([c])) for c in WHITESPACE) + 1
  if cut:
    return cut
  start = len(buffer) - 1
  while start > 0 and buffer[start] & 0xC0 == 0x80:  # back up over continuation bytes
    start -= 1
  lead = buffer[start]
  length = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
  return len(buffer) if start + length <= len(buffer) else start


def _file_chunks(path: str, chunk_bytes: int) -> Iterator[bytes]:
  """A file's bytes (decompressed) in chunks, with read errors as UserErrors."""
  try:
    stream = _open_binary(path)
  except READ_ERRORS as e:
    raise UserError(f"corpus {path}: cannot read it ({first_line(e)})") from None
  with stream:
    while True:
      try:
        chunk = stream.read(chunk_bytes)
      except READ_ERRORS as e:
        raise UserError(f"corpus {path}: damaged or truncated file ({first_line(e)}); replace it with a good "
                        "copy") from None
      if not chunk:
        return
      yield chunk


def _raw_pieces(chunks: Iterator[bytes]) -> Iterator[bytes]:
  """Re-cuts one text stream's chunks into pieces of whole lines (or whole tokens), not yet normalised;
  the last line is terminated, so lines never run across streams."""
  rest, last = b"", b"\n"
  for chunk in chunks:
    buffer = rest + chunk
    cut = _cut(buffer)
    rest = buffer[cut:]
    if cut:
      last = buffer[:cut]
      yield last
  if rest:
    yield rest + b"\n"
  elif not last.endswith(b"\n"):
    yield b"\n"


def _shared_pieces(raw: Iterator[bytes], lowercase: bool, stats: ReadStats | None,
                   share: tuple[int, int]) -> Iterator[bytes]:
  """The raw pieces n with n % k == i (share = (k, i)), normalised: skipped pieces cost only their read."""
  stats = stats if stats is not None else ReadStats()
  count, index = share
  for n, piece in enumerate(raw):
    if n % count == index:
      yield _normalise(piece, lowercase, stats)


def chunks_to_pieces(chunks: Iterator[bytes], lowercase: bool, stats: ReadStats | None = None,
                     share: tuple[int, int] = (1, 0)) -> Iterator[bytes]:
  """One text stream's chunks as normalised pieces, its share of them (see TextSource.pieces)."""
  return _shared_pieces(_raw_pieces(chunks), lowercase, stats, share)


@dataclasses.dataclass(frozen=True)
class FileCorpus:
  """Text files (plain, .gz, .bz2, .xz or single-member .zip) read in order: corpus_files' expansion of
  config.corpus. Any sequence of paths is accepted; they are kept as a tuple."""

  paths: tuple[str, ...]

  def __post_init__(self) -> None:
    object.__setattr__(self, "paths", tuple(self.paths))

  def __str__(self) -> str:
    """The first file, and '...' if there are more."""
    if not self.paths:
      return "(no files)"
    return self.paths[0] + (" ..." if len(self.paths) > 1 else "")

  def pieces(self, lowercase: bool, stats: ReadStats | None = None, piece_bytes: int = PIECE_BYTES,
             share: tuple[int, int] = (1, 0)) -> Iterator[bytes]:
    """The files' pieces (see TextSource.pieces), numbered across files for share; every file's last line is
    terminated, so lines (sentences) never run across files."""
    raw = itertools.chain.from_iterable(_raw_pieces(_file_chunks(path, piece_bytes)) for path in self.paths)
    return _shared_pieces(raw, lowercase, stats, share)

  def identity(self) -> list:
    """The files' fingerprints, in order."""
    return [fingerprint(f) for f in self.paths]

  def host_share(self, hosts: int, index: int) -> FileCorpus:
    """Host index's contiguous run of the files, balanced by bytes (host_files)."""
    return FileCorpus(host_files(self.paths, hosts, index))

  def check_text(self) -> None:
    """Refuses a file that is plainly not UTF-8 text (binary, UTF-16, misnamed compressed data): more than 1% of its
    first SNIFF_BYTES (decompressed) are NUL bytes or invalid UTF-8 sequences, and more than 8 (so a short file
    with a stray bad byte passes)."""
    for path in self.paths:
      chunks = _file_chunks(path, SNIFF_BYTES)
      head = next(chunks, b"")
      chunks.close()
      text = head.decode("utf-8", errors="replace")
      bad = head.count(b"\0") + text.count("\ufffd") - head.count("\ufffd".encode())
      if bad > max(len(head) // 100, 8):
        hint = next((f"; it looks like {ext} data: name it *{ext}" for magic, ext in _MAGIC.items()
                     if head.startswith(magic) and not path.endswith(ext)), "")
        raise UserError(f"corpus {path}: not UTF-8 text ({bad} of its first {len(head)} bytes are NUL or invalid "
                        f"UTF-8{hint}); point --config.corpus at text, or set --config.allow_binary_corpus=True "
                        "to read it anyway")

  def counting_processes(self, requested: int) -> int:
    """All of them: a process reads the files cheaply, normalising and counting only its share of the pieces."""
    return requested
