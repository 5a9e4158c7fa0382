"""input_pipeline: tokenization, numpy vs tf.data batches, and that packing never loses a token."""

from __future__ import annotations

import builtins
import errno
import functools
import os
import re

import numpy as np
import pytest

from w2v_jax import corpus, input_pipeline, prepare
from w2v_jax import vocab as vocab_lib
from w2v_jax.errors import UserError
from w2v_jax.vocab import Vocab, build_vocab

SEP, OOV = input_pipeline.SEP, input_pipeline.OOV


def make_text(seed: int, n_lines: int = 120) -> str:
  """Lines of common words, one-off (OOV) words, blank lines, tabs/CRs and a few lines > a block."""
  rng = np.random.default_rng(seed)
  words = [f"w{i}" for i in range(25)] + ["Über", "ÉCOLE", "naïve"]
  lines = []
  for n in range(n_lines):
    length = int(rng.integers(0, 12)) if n % 17 else 70  # every 17th line is longer than a block
    line = [str(rng.choice(words)) if rng.random() > 0.1 else f"rare{n}x{k}" for k in range(length)]
    sep = str(rng.choice([" ", "  ", "\t", " \t "]))
    lines.append(sep.join(line) + ("\r" if n % 11 == 3 else ""))
  return "\n".join(lines) + "\n"


def reference_ids(texts: list[str], vocab: Vocab, lowercase: bool) -> list[int]:
  """Split-based tokenization: ids (OOV for unknown words), a SEP after every line of every file."""
  index = {w: i for i, w in enumerate(vocab.words)}
  ids: list[int] = []
  for text in texts:
    lines = (text.lower() if lowercase else text).split("\n")
    if lines[-1] == "":
      lines.pop()
    for line in lines:
      ids.extend(index.get(w, OOV) for w in re.split(r"[ \t\r\x0b\x0c]+", line) if w)
      ids.append(SEP)
  return ids


@pytest.fixture
def two_files(write_corpus) -> tuple[corpus.FileCorpus, list[str]]:
  """Two corpus files (the second without a final newline) and their texts."""
  texts = [make_text(0), make_text(1).rstrip("\n")]
  return corpus.FileCorpus([write_corpus("a.txt", texts[0]), write_corpus("b.txt", texts[1])]), texts


def cache_of(stream: np.ndarray, path) -> input_pipeline.TokenCache:
  """A token cache file holding stream (what tf_cached_ids reads)."""
  np.asarray(stream, np.int32).tofile(path)
  return input_pipeline.read_token_cache(str(path))


@pytest.mark.parametrize("lowercase", [False, True])
def test_tokenize_matches_split_reference(two_files, lowercase: bool) -> None:
  """tokenize() equals a Python split-based tokenization, SEPs at line ends and at each file's end."""
  files, texts = two_files
  vocab = build_vocab(files, lowercase, min_count=2)
  assert ("über" in vocab.words) == lowercase and ("Über" in vocab.words) != lowercase
  got = input_pipeline.tokenize(files, vocab, lowercase)
  assert got.dtype == np.int32
  want = reference_ids(texts, vocab, lowercase)
  assert OOV in want and want.count(SEP) == texts[0].count("\n") + texts[1].count("\n") + 1
  np.testing.assert_array_equal(got, want)


def test_tokenize_with_tiny_pieces(two_files, monkeypatch) -> None:
  """Lines longer than a piece are cut at whitespace: the stream is unchanged, no token lost or split."""
  files, texts = two_files
  vocab = build_vocab(files, False, min_count=2)
  monkeypatch.setattr(corpus.FileCorpus, "pieces", functools.partialmethod(corpus.FileCorpus.pieces, piece_bytes=37))
  assert len(list(files.pieces(False))) > 100
  np.testing.assert_array_equal(input_pipeline.tokenize(files, vocab, False), reference_ids(texts, vocab, False))


def test_token_cache_round_trip(two_files, tmp_path) -> None:
  """write_token_cache maps back exactly the tokenize() stream; an empty cache reads as no tokens."""
  files, _ = two_files
  vocab = build_vocab(files, False, min_count=2)
  cache = input_pipeline.write_token_cache(input_pipeline.tokenize_pieces(files, vocab, False),
                                           str(tmp_path / "tokens.i32"))
  np.testing.assert_array_equal(cache, input_pipeline.tokenize(files, vocab, False))
  (tmp_path / "empty.i32").write_bytes(b"")
  assert len(input_pipeline.read_token_cache(str(tmp_path / "empty.i32"))) == 0


@pytest.mark.parametrize("lowercase", [False, True])
def test_the_counts_spilled_hashes_tokenize_as_the_text_does(two_files, tmp_path, lowercase: bool) -> None:
  """The token hashes count_words spills while counting, mapped once the vocabulary is known (in chunks smaller
  than a piece), give the split-based reference stream: ids, OOV words, a SEP at each line end."""
  files, texts = two_files
  with open(tmp_path / "spill", "w+b") as spill:
    counts = vocab_lib.count_words(files, lowercase, spill=spill)
    vocab = vocab_lib.vocab_from_counts(counts, 2, 0, "two files")
    cache = input_pipeline.write_token_cache(input_pipeline.spilled_pieces(spill, vocab, chunk_tokens=5),
                                             str(tmp_path / "tokens.i32"))
  np.testing.assert_array_equal(cache, reference_ids(texts, vocab, lowercase))


class _FullDisk:
  """A file whose writes fail as on a full disk."""

  def __init__(self, f):
    self.f = f

  def write(self, data) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  def __getattr__(self, name):
    return getattr(self.f, name)

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.f.close()


def test_full_disk_while_counting_spills_is_one_line(two_files, tmp_path, monkeypatch) -> None:
  """The count's scratch file of token hashes failing with ENOSPC is a one-line UserError saying to free space."""
  from configs import tiny

  files, _ = two_files
  config = tiny.get_config()
  config.corpus = ",".join(files.paths)
  monkeypatch.setattr(prepare.tempfile, "TemporaryFile", lambda **kwargs: _FullDisk(open(tmp_path / "spill", "w+b")))
  with pytest.raises(UserError, match="scratch file .*No space left on device.*free space") as info:
    prepare.load_vocab_and_tokens(config, str(tmp_path / "run"))
  assert "\n" not in str(info.value)


def test_full_disk_while_tokenizing_is_one_line_and_leaves_nothing(two_files, tmp_path, monkeypatch) -> None:
  """A write failing with ENOSPC is a one-line UserError saying to free space; no tokens.i32(.tmp) is left."""
  files, _ = two_files
  vocab = build_vocab(files, False, min_count=2)
  real_open = builtins.open

  def open_full(path, mode="r", *args, **kwargs):
    f = real_open(path, mode, *args, **kwargs)
    return _FullDisk(f) if "w" in mode and str(path).endswith(".tmp") else f

  monkeypatch.setattr(builtins, "open", open_full)
  with pytest.raises(UserError, match="free space") as info:
    input_pipeline.write_token_cache(input_pipeline.tokenize_pieces(files, vocab, False), str(tmp_path / "tokens.i32"))
  monkeypatch.undo()
  assert "\n" not in str(info.value) and "tokens.i32" in str(info.value)
  assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("tokens")]


def test_check_token_cache_finds_damage(two_files, tmp_path) -> None:
  """A written cache checks out; truncated, overwritten with 0xff (all SEPs), holding out-of-range ids, or
  without its record, it does not, each saying why."""
  files, _ = two_files
  vocab = build_vocab(files, False, min_count=2)
  path = tmp_path / "tokens.i32"
  input_pipeline.write_token_cache(input_pipeline.tokenize_pieces(files, vocab, False), str(path))
  good = path.read_bytes()
  assert input_pipeline.check_token_cache([str(path)], vocab.size, chunk_tokens=7) is None
  damage = {"truncated": (good[:len(good) // 2], "bytes, not the"), "0xff": (b"\xff" * len(good), "checksum"),
            "range": (np.full(len(good) // 4, vocab.size, np.int32).tobytes(), "ids outside")}
  for name, (data, why) in damage.items():
    path.write_bytes(data)
    assert why in input_pipeline.check_token_cache([str(path)], vocab.size, chunk_tokens=7), name
  path.write_bytes(good)
  os.remove(str(path) + ".json")
  assert "missing" in input_pipeline.check_token_cache([str(path)], vocab.size)


@pytest.mark.parametrize("damage", ["same_size_edit", "truncated", "0xff", "out_of_range", "vocab_emptied"])
def test_prepare_rebuilds_a_stale_or_damaged_cache(tmp_path, capsys, damage: str) -> None:
  """load_vocab_and_tokens reuses a good cache; after a same-size corpus edit (mtime kept) or damage to the
  cache or vocabulary it says why in one line and rebuilds, giving the fresh corpus's stream."""
  from configs import tiny

  config = tiny.get_config()
  text = "".join(f"w{i % 7} w{i % 5} w{i % 3}\n" for i in range(300))
  path = tmp_path / "corpus.txt"
  path.write_text(text)
  config.corpus = str(path)
  workdir = tmp_path / "work"
  workdir.mkdir()
  vocab, stream = prepare.load_vocab_and_tokens(config, str(workdir))
  prepare.load_vocab_and_tokens(config, str(workdir))
  assert "skipping the counting pass" in capsys.readouterr().out
  cache = workdir / "tokens.i32"
  if damage == "same_size_edit":
    stat = os.stat(path)
    path.write_text(text.replace("w6", "w9"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  elif damage == "truncated":
    cache.write_bytes(cache.read_bytes()[:len(cache.read_bytes()) * 45 // 100])
  elif damage == "0xff":
    cache.write_bytes(b"\xff" * len(cache.read_bytes()))
  elif damage == "out_of_range":
    cache.write_bytes(np.full(len(stream), 10**6, np.int32).tobytes())
  else:
    (workdir / "vocab.tsv").write_text("")
  again, rebuilt = prepare.load_vocab_and_tokens(config, str(workdir))
  out = capsys.readouterr().out
  reason = [line for line in out.splitlines() if line.startswith("rebuilding the vocabulary and token cache: ")]
  assert len(reason) == 1 and "skipping" not in out, out
  want = input_pipeline.tokenize(corpus.FileCorpus([str(path)]), again, config.lowercase)
  np.testing.assert_array_equal(np.asarray(rebuilt), want)
  assert ("w9" in again.words) == (damage == "same_size_edit")


def test_prepare_refuses_a_changed_corpus_beside_checkpoints_but_not_a_touched_one(tmp_path, capsys) -> None:
  """With checkpoints, a corpus whose content changed is refused before the vocabulary is replaced; one only
  touched (new mtime) has its vocabulary and cache rebuilt, and may resume."""
  from configs import tiny

  config = tiny.get_config()
  path = tmp_path / "corpus.txt"
  path.write_text("a b c\nb c\n" * 50)
  config.corpus = str(path)
  workdir = tmp_path / "work"
  workdir.mkdir()
  prepare.load_vocab_and_tokens(config, str(workdir))
  (workdir / "checkpoints" / "3").mkdir(parents=True)  # what has_checkpoints looks for
  stat = os.stat(path)
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  capsys.readouterr()
  prepare.load_vocab_and_tokens(config, str(workdir))
  assert "rebuilding the vocabulary and token cache: the corpus changed" in capsys.readouterr().out
  path.write_text("a b d\nb c\n" * 50)
  vocab_before = (workdir / "vocab.tsv").read_bytes()
  with pytest.raises(UserError, match="cannot resume.*files"):
    prepare.load_vocab_and_tokens(config, str(workdir))
  assert (workdir / "vocab.tsv").read_bytes() == vocab_before


def collapse_seps(ids: np.ndarray) -> np.ndarray:
  """Removes OOV, merges runs of SEP into one and strips SEPs at both ends."""
  ids = ids[ids != OOV]
  keep = np.ones(len(ids), bool)
  keep[1:] = ~((ids[1:] == SEP) & (ids[:-1] == SEP))
  ids = ids[keep]
  start = int(ids[0] == SEP) if len(ids) else 0
  end = len(ids) - int(len(ids) > 0 and ids[-1] == SEP)
  return ids[start:end]


@pytest.mark.parametrize("input_path", ["numpy", pytest.param("tfdata", marks=pytest.mark.needs_tf)])
def test_packing_by_hand(tiny_vocab: Vocab, input_path: str, tmp_path) -> None:
  """A hand-packed example: OOV dropped, greedy blocks across sentences, all-SEP blocks skipped, SEP padding."""
  S = SEP
  stream = np.array([0, 1, OOV, 2, S, 3, 4, 0, 1, 2, S, S, S, S, S, S, S, 4, S], np.int32)
  args = (tiny_vocab, 0.0, 0, 0, 8, 4)
  if input_path == "numpy":
    batches = list(input_pipeline.numpy_batches(stream, *args))
  else:
    ids = input_pipeline.tf_cached_ids(cache_of(stream, tmp_path / "t.i32"))
    batches = list(input_pipeline.tf_batches(ids, *args).as_numpy_iterator())
  assert len(batches) == 2
  np.testing.assert_array_equal(batches[0]["tokens"], [[0, 1, 2, S], [3, 4, 0, 1]])
  np.testing.assert_array_equal(batches[1]["tokens"], [[2, S, S, S], [4, S, S, S]])  # [S, S, S, S] skipped
  # raw_end: corpus tokens (OOV included, SEP not) up to the batch's last token.
  assert [int(b["raw_end"]) for b in batches] == [8, 10]


@pytest.mark.parametrize("batch_size,block_length", [(96, 16), (64, 64)])
def test_numpy_batches_without_sampling_lose_no_token(two_files, batch_size: int, block_length: int) -> None:
  """With sample=0 the batches hold every in-vocabulary token in order, a sentence break at every line end."""
  files, texts = two_files
  vocab = build_vocab(files, False, min_count=2)
  stream = np.asarray(reference_ids(texts, vocab, False), np.int32)
  batches = list(input_pipeline.numpy_batches(stream, vocab, 0.0, 0, 0, batch_size, block_length, chunk_tokens=50))
  for batch in batches:
    assert batch["tokens"].dtype == np.int32
    assert batch["tokens"].shape == (batch_size // block_length, block_length)
  flat = np.concatenate([b["tokens"].ravel() for b in batches])
  np.testing.assert_array_equal(flat[flat >= 0], stream[stream >= 0])
  np.testing.assert_array_equal(collapse_seps(flat), collapse_seps(stream))
  assert (flat >= 0).sum() == vocab.train_words
  ends = [int(b["raw_end"]) for b in batches]
  assert ends == sorted(ends) and ends[-1] == vocab.total_tokens  # OOV tokens count as read too


@pytest.mark.needs_tf
def test_tf_batches_run_without_the_autotuner(two_files, tmp_path) -> None:
  """The epoch pipeline turns tf.data's autotuner off: its thread at times held up the iterator's deletion ~40 s."""
  files, _ = two_files
  vocab = build_vocab(files, False, min_count=2)
  ids = input_pipeline.tf_cached_ids(cache_of(input_pipeline.tokenize(files, vocab, False), tmp_path / "t.i32"))
  assert input_pipeline.tf_batches(ids, vocab, 1e-3, 0, 0, 96, 16).options().autotune.enabled is False


@pytest.mark.needs_tf
@pytest.mark.parametrize("sample,seed,epoch,chunk_tokens", [
    (0.0, 0, 0, 37), (0.0, 0, 0, 1 << 22), (1e-3, 0, 1, 37), (1e-3, 5, 3, 1 << 22)])
def test_tf_batches_equal_numpy_batches(two_files, tmp_path, sample: float, seed: int, epoch: int,
                                        chunk_tokens: int) -> None:
  """tf.data (from the token cache or from the text) and numpy yield identical batches and raw_ends."""
  files, _ = two_files
  vocab = build_vocab(files, False, min_count=2)
  stream = input_pipeline.tokenize(files, vocab, False)
  args = (vocab, sample, seed, epoch, 96, 16)
  want = list(input_pipeline.numpy_batches(stream, *args, chunk_tokens=chunk_tokens))
  sources = [input_pipeline.tf_cached_ids(cache_of(stream, tmp_path / "t.i32"), chunk_tokens=chunk_tokens)]
  if chunk_tokens > 1000:
    sources.append(input_pipeline.tf_text_ids(files, vocab, False))
  if sample:
    assert sum((b["tokens"] >= 0).sum() for b in want) < 0.9 * vocab.train_words  # really subsampled
  for ids in sources:
    got = list(input_pipeline.tf_batches(ids, *args).as_numpy_iterator())
    assert len(got) == len(want)
    for g, w in zip(got, want):
      assert g.keys() == w.keys()
      np.testing.assert_array_equal(g["tokens"], w["tokens"])
      assert g["tokens"].dtype == np.int32
      for name in g.keys() - {"tokens"}:  # raw_end (and any other per-batch counters)
        assert int(g[name]) == int(w[name]), name


def test_token_cache_of_several_files_reads_their_concatenation(tmp_path) -> None:
  """A cache in several files (one per host) reads as their concatenation, slices across file ends included."""
  stream = np.random.default_rng(1).integers(-2, 1000, 50).astype(np.int32)
  paths = []
  for i, (a, b) in enumerate([(0, 20), (20, 20), (20, 33), (33, 50)]):  # one file is empty
    stream[a:b].tofile(tmp_path / f"t{i}.i32")
    paths.append(str(tmp_path / f"t{i}.i32"))
  cache = input_pipeline.read_token_cache(paths)
  assert len(cache) == 50 and len(cache.head(40)) == 40
  for start, stop in [(0, 50), (15, 25), (20, 33), (19, 21), (33, 33), (45, 60)]:
    np.testing.assert_array_equal(cache[start:stop], stream[start:stop])
  np.testing.assert_array_equal(np.asarray(cache.head(40)), stream[:40])


@pytest.mark.needs_tf
@pytest.mark.parametrize("start,head,chunk",
                         [(0, 0, 7), (5, 0, 7), (5, 40, 7), (13, 40, 100), (40, 40, 7), (0, 0, 1000)])
def test_tf_cached_ids_reads_the_cache_range(tmp_path, start: int, head: int, chunk: int) -> None:
  """tf_cached_ids yields the tokens [start, head or end) of the cache (one file or two) in chunks of at most
  `chunk`, none lost or extra."""
  stream = np.random.default_rng(0).integers(-2, 1000, 61).astype(np.int32)
  cache = cache_of(stream, tmp_path / "t.i32")
  cache = cache.head(head) if head else cache
  split = input_pipeline.read_token_cache([cache_of(stream[:30], tmp_path / "a.i32").paths[0],
                                           cache_of(stream[30:], tmp_path / "b.i32").paths[0]])
  split = split.head(head) if head else split
  got = list(input_pipeline.tf_cached_ids(split, start, chunk_tokens=chunk).as_numpy_iterator())
  np.testing.assert_array_equal(np.concatenate(got), stream[start:head or None])  # two files, as two hosts wrote
  got = list(input_pipeline.tf_cached_ids(cache, start, chunk_tokens=chunk).as_numpy_iterator())
  assert all(len(c) <= chunk for c in got)
  np.testing.assert_array_equal(np.concatenate(got), stream[start:head or None])


@pytest.mark.needs_tf
def test_tf_text_ids_with_tiny_pieces(two_files, monkeypatch) -> None:
  """tf_text_ids over pieces cut mid-line gives the same stream as the split-based reference."""
  files, texts = two_files
  vocab = build_vocab(files, True, min_count=2)
  monkeypatch.setattr(corpus.FileCorpus, "pieces", functools.partialmethod(corpus.FileCorpus.pieces, piece_bytes=29))
  got = np.concatenate(list(input_pipeline.tf_text_ids(files, vocab, True).as_numpy_iterator()))
  np.testing.assert_array_equal(got, reference_ids(texts, vocab, True))


@pytest.mark.needs_tf
def test_line_longer_than_a_piece(write_corpus) -> None:
  """A single line longer than corpus.PIECE_BYTES loses no token, in numpy and tf.data tokenization."""
  rng = np.random.default_rng(3)
  words = [f"tok{i}" for i in range(40)]
  n = corpus.PIECE_BYTES // 5 + 1000
  long_line = " ".join(words[i] for i in rng.integers(0, 40, n))
  assert len(long_line) > corpus.PIECE_BYTES
  text = "tok1 tok2\n" + long_line + "\ntok3\n"
  source = corpus.FileCorpus([write_corpus("long.txt", text)])
  vocab = build_vocab(source, False, min_count=1)
  assert vocab.total_tokens == n + 3
  want = reference_ids([text], vocab, False)
  np.testing.assert_array_equal(input_pipeline.tokenize(source, vocab, False), want)
  got = np.concatenate(list(input_pipeline.tf_text_ids(source, vocab, False).as_numpy_iterator()))
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("input_path", ["numpy", pytest.param("tfdata", marks=pytest.mark.needs_tf)])
def test_resuming_after_a_batch_yields_the_remaining_batches(two_files, input_path: str, tmp_path) -> None:
  """Restarting from a batch's end_index/raw_end gives exactly the batches an uninterrupted pass gives next."""
  files, _ = two_files
  vocab = build_vocab(files, False, min_count=2)
  stream = input_pipeline.tokenize(files, vocab, False)
  args = (vocab, 1e-3, 2, 1, 64, 16)
  full = list(input_pipeline.numpy_batches(stream, *args, chunk_tokens=41))
  assert len(full) > 5
  for k in ([0, 2, len(full) - 2] if input_path == "numpy" else [2]):
    start = (int(full[k]["end_index"]), int(full[k]["raw_end"]))
    if input_path == "numpy":
      rest = list(input_pipeline.numpy_batches(stream, *args, *start, chunk_tokens=41))
    else:
      ids = input_pipeline.tf_cached_ids(cache_of(stream, tmp_path / "t.i32"), start[0], chunk_tokens=41)
      rest = list(input_pipeline.tf_batches(ids, *args, *start).as_numpy_iterator())
    assert len(rest) == len(full) - k - 1
    for g, w in zip(rest, full[k + 1:]):
      np.testing.assert_array_equal(g["tokens"], w["tokens"])
      assert (int(g["raw_end"]), int(g["end_index"])) == (int(w["raw_end"]), int(w["end_index"]))
