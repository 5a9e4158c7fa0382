"""corpus: file globbing, piecewise reading of plain/.gz/.zip files, UTF-8 repair and lowercasing."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import lzma
import os
import pickle
import zipfile

import numpy as np
import pytest

from w2v_jax import corpus
from w2v_jax.errors import UserError

TEXT = "the quick brown fox\njumps over\n\n  the lazy\tdog  \nÜber naïve ÉCOLE\n" * 20


def read_all(files: list[str], lowercase: bool = False, piece_bytes: int = corpus.PIECE_BYTES, stats=None) -> bytes:
  return b"".join(corpus.FileCorpus(files).pieces(lowercase, stats, piece_bytes=piece_bytes))


def test_corpus_files_expands_and_sorts_globs(write_corpus, tmp_path) -> None:
  """A glob gives its regular files sorted; directories are skipped."""
  b = write_corpus("b.txt", "x\n")
  a = write_corpus("a.txt", "y\n")
  (tmp_path / "c.txt").mkdir()
  assert corpus.corpus_files(str(tmp_path / "*.txt")) == [a, b]
  assert corpus.corpus_files(a) == [a]


@pytest.mark.parametrize("case", ["unset", "missing", "empty"])
def test_corpus_files_errors(write_corpus, tmp_path, case: str) -> None:
  """An empty pattern, no matching file, or only empty files is a one-line UserError naming the fix."""
  pattern = {"unset": "", "missing": str(tmp_path / "nope*.txt"), "empty": write_corpus("e.txt", "")}[case]
  with pytest.raises(UserError, match="config.corpus") as info:
    corpus.corpus_files(pattern)
  assert "\n" not in str(info.value)


@pytest.mark.parametrize("piece_bytes", [7, 64, corpus.PIECE_BYTES])
def test_pieces_concatenate_to_the_file(write_corpus, piece_bytes: int) -> None:
  """Joined pieces are the file's bytes; pieces end after a newline or whitespace unless a token is too long."""
  path = write_corpus("c.txt", TEXT)
  pieces = list(corpus.FileCorpus([path]).pieces(False, piece_bytes=piece_bytes))
  assert b"".join(pieces) == TEXT.encode()
  for piece in pieces[:-1]:
    assert len(piece) <= 2 * max(piece_bytes, 1) + 1
    if piece_bytes >= 8:  # longer than every token here: never cut inside one
      assert piece[-1:] in (b"\n", b" ", b"\t")


def test_long_line_is_cut_at_whitespace(write_corpus) -> None:
  """A line much longer than a piece is split between tokens: every token survives whole."""
  line = " ".join(f"token{i}" for i in range(500))
  path = write_corpus("long.txt", line + "\nend\n")
  pieces = list(corpus.FileCorpus([path]).pieces(False, piece_bytes=50))
  assert len(pieces) > 50
  assert b"".join(pieces).split() == (line + " end").encode().split()
  assert [t for p in pieces for t in p.split()] == (line + " end").encode().split()


def test_token_longer_than_a_piece_is_not_cut_inside_a_character(write_corpus) -> None:
  """A token longer than a piece may be split, but only between characters: no U+FFFD, nothing counted."""
  word = "ÜÉï€" * 10  # 90 bytes of 2- and 3-byte characters, no whitespace
  path = write_corpus("w.txt", f"a {word} b\n")
  for piece_bytes in (1, 5, 16):
    stats = corpus.ReadStats()
    out = read_all([path], stats=stats, piece_bytes=piece_bytes).decode("utf-8")
    assert out == f"a {word} b\n"
    assert stats.invalid_utf8 == 0


def test_every_file_ends_its_last_line(write_corpus) -> None:
  """A file without a final newline still ends its sentence: lines never run across files."""
  a = write_corpus("a.txt", "one two")
  b = write_corpus("b.txt", "three\nfour")
  assert read_all([a, b]) == b"one two\nthree\nfour\n"
  assert read_all([a, b], piece_bytes=3) == b"one two\nthree\nfour\n"


def test_compressed_files_read_like_plain_text(write_corpus, tmp_path) -> None:
  """.gz, .bz2, .xz and single-member .zip corpora give the same bytes as the plain file."""
  plain = write_corpus("c.txt", TEXT)
  packed = [write_corpus("c.txt.gz", gzip.compress(TEXT.encode())), write_corpus("c.txt.bz2", bz2.compress(
      TEXT.encode())), write_corpus("c.txt.xz", lzma.compress(TEXT.encode())), str(tmp_path / "c.zip")]
  with zipfile.ZipFile(packed[-1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("inner/c.txt", TEXT)
  for piece_bytes in (16, corpus.PIECE_BYTES):
    want = read_all([plain], piece_bytes=piece_bytes)
    for path in packed:
      assert read_all([path], piece_bytes=piece_bytes) == want, path


def test_zip_with_several_members_is_a_user_error(tmp_path) -> None:
  """A .zip must hold exactly one text file."""
  path = str(tmp_path / "two.zip")
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("a.txt", "a\n")
    z.writestr("b.txt", "b\n")
  with pytest.raises(UserError, match="exactly one"):
    read_all([path])


def test_truncated_gzip_is_a_user_error(write_corpus) -> None:
  """A damaged .gz is a UserError naming the file, not a traceback."""
  data = gzip.compress(os.urandom(4000).hex().encode())
  path = write_corpus("bad.txt.gz", data[: len(data) // 2])
  with pytest.raises(UserError, match="bad.txt.gz"):
    read_all([path])


def _zip_bytes(compression: int) -> bytes:
  """A one-member .zip of TEXT, as bytes."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", compression) as z:
    z.writestr("c.txt", TEXT * 50)
  return buffer.getvalue()


def _damaged(case: str) -> tuple[str, bytes]:
  """A corpus file name and bytes that fail in the given way when read."""
  text = (TEXT * 50).encode()
  if case == "gz_deflate":  # zlib.error: invalid distance too far back
    data = bytearray(gzip.compress(text + os.urandom(3000).hex().encode()))
    data[60:68] = b"\xff" * 8
    return "c.txt.gz", bytes(data)
  if case in ("bz2", "xz"):
    data = bytearray(bz2.compress(text) if case == "bz2" else lzma.compress(text))
    data[len(data) // 2:len(data) // 2 + 8] = b"\x00" * 8
    return f"c.txt.{case}", bytes(data)
  data = bytearray(_zip_bytes(zipfile.ZIP_STORED if case == "zip_crc" else zipfile.ZIP_DEFLATED))
  if case == "zip_encrypted":  # the central directory's "encrypted" flag bit
    data[data.index(b"PK\x01\x02") + 8] |= 0x1
  elif case == "zip_deflate":  # zlib.error, in the member's data (past its 30 + 5 byte local header)
    data[60:68] = b"\xff" * 8
  else:  # a stored byte changed: BadZipFile, bad CRC-32
    data[200] ^= 0x55
  return "c.zip", bytes(data)


@pytest.mark.parametrize("case", ["gz_deflate", "bz2", "xz", "zip_crc", "zip_deflate", "zip_encrypted"])
def test_damaged_compressed_files_are_one_line_errors(write_corpus, case: str) -> None:
  """A corrupt deflate/bzip2/xz stream, a zip member failing its CRC or inflate, or a password-protected zip is
  a one-line UserError naming the file (not zlib.error, BadZipFile or RuntimeError)."""
  name, data = _damaged(case)
  path = write_corpus(name, data)
  with pytest.raises(UserError, match=name) as info:
    read_all([path])
  assert "\n" not in str(info.value)


@pytest.mark.parametrize("case", ["random", "utf16", "misnamed_gzip"])
def test_binary_file_is_refused(write_corpus, case: str) -> None:
  """A file plainly not UTF-8 text is a one-line UserError naming it and the switch to read it anyway."""
  content = {"random": os.urandom(5000), "utf16": TEXT.encode("utf-16"),
             "misnamed_gzip": gzip.compress(os.urandom(4000).hex().encode())}[case]
  path = write_corpus(f"{case}.txt", content)
  with pytest.raises(UserError, match=f"{case}.txt: not UTF-8 text.*allow_binary_corpus=True") as info:
    corpus.FileCorpus([path]).check_text()
  assert "\n" not in str(info.value)
  assert ("looks like .gz data" in str(info.value)) == (case == "misnamed_gzip")


def test_text_with_a_few_bad_bytes_is_not_refused(write_corpus) -> None:
  """Stray invalid UTF-8 (under 1% of the bytes, or a short file with a few) is text: replaced, not refused."""
  big = write_corpus("big.txt", TEXT.encode() * 10 + b"\xff\xfe \x00 bad\xe2\x82\n" * 3)
  short = write_corpus("short.txt", b"ok \xff\xfe word\ncut \xe2\x82 end\n")
  gz = write_corpus("c.txt.gz", gzip.compress(TEXT.encode()))
  corpus.FileCorpus([big, short, gz]).check_text()


def test_invalid_utf8_is_replaced_and_counted(write_corpus) -> None:
  """Invalid UTF-8 becomes U+FFFD and is counted once per bad sequence; a literal U+FFFD is not counted."""
  raw = b"ok \xff\xfe word\ncut \xe2\x82 end\nreal \xef\xbf\xbd char\n"
  path = write_corpus("bad.txt", raw)
  for lowercase in (False, True):
    stats = corpus.ReadStats()
    out = read_all([path], lowercase, stats=stats)
    assert out == raw.decode("utf-8", errors="replace").encode()
    assert stats.invalid_utf8 == 3


def test_lowercase_handles_non_ascii(write_corpus) -> None:
  """lowercase=True lowercases beyond ASCII ('Über' -> 'über'); False leaves the bytes alone."""
  path = write_corpus("u.txt", "Über ÉCOLE Straße ΑΘΗΝΑ\n")
  assert read_all([path], True).decode() == "über école straße αθηνα\n"
  assert read_all([path], False).decode() == "Über ÉCOLE Straße ΑΘΗΝΑ\n"


def test_missing_file_in_list_is_a_user_error(tmp_path) -> None:
  """A file that vanished between globbing and reading is a UserError."""
  with pytest.raises(UserError, match="cannot read"):
    read_all([str(tmp_path / "gone.txt")])


def test_corpus_files_takes_directories_and_comma_lists(write_corpus, tmp_path) -> None:
  """A directory gives its sorted regular, non-hidden files; a comma list keeps its order without repeats."""
  (tmp_path / "d").mkdir()
  (tmp_path / "d" / "sub").mkdir()
  b = write_corpus("d/b.txt.gz", gzip.compress(b"gz words\n"))
  a = write_corpus("d/a.txt", "plain words\n")
  write_corpus("d/.hidden", "skip me\n")
  c = write_corpus("c.txt", "c\n")
  assert corpus.corpus_files(str(tmp_path / "d")) == [a, b]
  assert corpus.corpus_files(f"{c}, {tmp_path / 'd'},{tmp_path / 'd' / '*.txt'}") == [c, a, b]
  assert read_all(corpus.corpus_files(f"{tmp_path / 'd'},{c}")) == b"plain words\ngz words\nc\n"


@pytest.mark.parametrize("case", ["empty_dir", "missing_entry"])
def test_corpus_list_errors(write_corpus, tmp_path, case: str) -> None:
  """An empty directory, or one entry of a list that matches nothing, is a one-line UserError naming it."""
  (tmp_path / "empty").mkdir()
  good = write_corpus("ok.txt", "x\n")
  spec, named = {"empty_dir": (str(tmp_path / "empty"), "holds no files"),
                 "missing_entry": (f"{good},{tmp_path / 'nope.txt'}", "nope.txt")}[case]
  with pytest.raises(UserError, match=named):
    corpus.corpus_files(spec)


@pytest.mark.parametrize("size", [100, 3 * corpus.SAMPLES * corpus.SAMPLE_BYTES])
def test_identity_sees_same_size_edits(write_corpus, size: int) -> None:
  """A file's identity is its path, size, mtime and sampled content: an edit keeping the size and the mtime
  (at the end of a large file, a sampled piece) still changes it; content_identity leaves the mtime out."""
  data = bytearray(os.urandom(size // 2).hex().encode())
  path = write_corpus("a.txt", bytes(data))
  before = corpus.FileCorpus([path]).identity()
  assert before[0]["path"] == os.path.abspath(path) and before[0]["size"] == size
  stat = os.stat(path)
  data[-3:] = b"xyz" if data[-3:] != b"xyz" else b"abc"
  with open(path, "wb") as f:
    f.write(data)
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  after = corpus.FileCorpus([path]).identity()
  assert after[0]["size"] == size and after[0]["mtime_ns"] == before[0]["mtime_ns"] and after != before
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  touched = corpus.FileCorpus([path]).identity()
  assert touched != after and corpus.content_identity(touched) == corpus.content_identity(after)
  assert "mtime_ns" not in corpus.content_identity(touched)[0]


@pytest.mark.parametrize("hosts", [1, 2, 3, 7])
def test_host_files_are_contiguous_balanced_runs(tmp_path, hosts: int) -> None:
  """Each host gets a contiguous run of the files; the runs in host order are the files; byte shares are even
  up to one file; more hosts than files leaves some with none."""
  sizes = [30, 5, 70, 10, 10, 40, 25, 60, 5, 45]
  files = []
  for i, size in enumerate(sizes):
    (tmp_path / f"f{i}.txt").write_text("w " * (size // 2))
    files.append(str(tmp_path / f"f{i}.txt"))
  runs = [corpus.host_files(files, hosts, i) for i in range(hosts)]
  assert sum(runs, []) == files
  shares = [sum(os.path.getsize(f) for f in run) for run in runs]
  even = sum(shares) / hosts
  assert all(abs(share - even) <= max(sizes) for share in shares), shares
  assert corpus.host_files(files[:2], 4, 0) + corpus.host_files(files[:2], 4, 1) + corpus.host_files(
      files[:2], 4, 2) + corpus.host_files(files[:2], 4, 3) == files[:2]


def test_prepare_refuses_a_binary_corpus_unless_allowed(write_corpus, tmp_path) -> None:
  """load_vocab_and_tokens refuses a file of random bytes before counting; config.allow_binary_corpus reads it."""
  from configs import tiny
  from w2v_jax import prepare

  config = tiny.get_config()
  config.corpus = write_corpus("random.bin", os.urandom(20_000))
  with pytest.raises(UserError, match="random.bin: not UTF-8 text"):
    prepare.load_vocab_and_tokens(config, str(tmp_path))
  assert not (tmp_path / "vocab.tsv").exists()
  config.allow_binary_corpus = True
  vocab, _ = prepare.load_vocab_and_tokens(config, str(tmp_path))
  assert vocab.invalid_utf8 > 1000


def test_shares_split_the_pieces_disjointly_and_cover_them(write_corpus) -> None:
  """pieces(share=(k, i)) yields the pieces n with n % k == i, numbered across files: the k shares are disjoint
  and together every piece."""
  source = corpus.FileCorpus([write_corpus("a.txt", "".join(f"line {i}\n" for i in range(500))),
                              write_corpus("b.txt", "tail words")])
  whole = list(source.pieces(False, piece_bytes=64))
  parts = [list(source.pieces(False, piece_bytes=64, share=(3, i))) for i in range(3)]
  assert [part == whole[i::3] for i, part in enumerate(parts)] == [True] * 3 and len(parts[2]) > 10


def test_file_corpus_keeps_a_tuple_names_its_first_file_and_splits_by_host(write_corpus) -> None:
  """Any sequence of paths becomes a tuple (so equal corpora compare equal and pickle); str() is the first file
  and '...'; host_share is host_files' run."""
  files = [write_corpus(f"f{i}.txt", "w " * size) for i, size in enumerate([30, 5, 70, 10])]
  source = corpus.FileCorpus(files)
  assert source.paths == tuple(files) and source == corpus.FileCorpus(tuple(files))
  assert pickle.loads(pickle.dumps(source)) == source
  assert str(source) == f"{files[0]} ..." and str(corpus.FileCorpus(files[1:2])) == files[1]
  assert [source.host_share(3, i).paths for i in range(3)] == [tuple(corpus.host_files(files, 3, i)) for i in range(3)]


@dataclasses.dataclass(frozen=True)
class _Records:
  """A TfdsText-like TextSource: sentences in memory, one record each, split over hosts by record."""

  records: tuple[bytes, ...]
  shard: tuple[int, int] = (1, 0)

  def __str__(self) -> str:
    return "records"

  def pieces(self, lowercase: bool, stats=None, piece_bytes: int = corpus.PIECE_BYTES, share=(1, 0)):
    count, index = self.shard
    mine = self.records[len(self.records) * index // count:len(self.records) * (index + 1) // count]
    return corpus.chunks_to_pieces((record + b"\n" for record in mine), lowercase, stats, share)

  def identity(self) -> list:
    return [["records", len(self.records)]]

  def host_share(self, hosts: int, index: int) -> _Records:
    return dataclasses.replace(self, shard=(hosts, index))

  def check_text(self) -> None:
    pass

  def counting_processes(self, requested: int) -> int:
    return 1  # a test-module class: worker processes could not unpickle it


def test_prepare_reads_files_and_other_sources_through_one_path(write_corpus, tmp_path, monkeypatch, capsys) -> None:
  """load_vocab_and_tokens gives the same vocabulary and token stream from a FileCorpus (counted in 2 processes)
  as from a TfdsText-like source of the same lines (counted here: its counting_processes is 1), and reuses the
  latter's on a second run."""
  from configs import tiny
  from w2v_jax import prepare

  lines = [f"w{i % 7} W{i % 3} the" for i in range(300)]
  config = tiny.get_config()
  config.corpus = write_corpus("c.txt", "\n".join(lines))
  config.vocab_processes = 2
  (tmp_path / "files").mkdir()
  (tmp_path / "records").mkdir()
  want_vocab, want = prepare.load_vocab_and_tokens(config, str(tmp_path / "files"))
  monkeypatch.setattr(prepare, "corpus_input", lambda config: _Records(tuple(line.encode() for line in lines)))
  for _ in range(2):
    vocab, stream = prepare.load_vocab_and_tokens(config, str(tmp_path / "records"))
    assert vocab.words == want_vocab.words and vocab.counts.tolist() == want_vocab.counts.tolist()
    np.testing.assert_array_equal(np.asarray(stream), np.asarray(want))
  assert capsys.readouterr().out.count("skipping the counting pass") == 1
