"""Token blocks for the device step: tf.data from text files, or numpy from a pre-tokenized id array.

A token stream is int32 ids with SEP (-1) after each sentence and OOV (-2) for unknown words.
Both paths subsample with the same counter-based hash and pack greedily into [block_length]
blocks, so for the same stream they yield identical batches: {"tokens": int32 [B, L] (SEP pads),
"raw_end": int64, corpus tokens of this epoch read up to the end of this batch}.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import numpy as np

from w2v_jax import corpus, sampling
from w2v_jax.atomic_file import atomic_write
from w2v_jax.errors import UserError
from w2v_jax.vocab import Vocab
from w2v_jax.word_count import LINE_END_HASH, hash_tokens, stream_hashes

SEP, OOV = -1, -2


def vocab_index(vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
  """The vocabulary's word hashes (word_count.hash_tokens, as counted), sorted, and the id of each."""
  hashes, _, _ = hash_tokens(b" ".join(w.encode("utf-8") for w in vocab.words))
  if len(hashes) != vocab.size:
    raise UserError("vocab.tsv: a word is empty or holds whitespace; delete vocab.tsv to rebuild it")
  order = np.argsort(hashes, kind="stable")
  return hashes[order], order.astype(np.int32)


def ids_of(stream: np.ndarray, index: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
  """Token ids of a stream of token hashes (word_count.stream_hashes): the vocabulary's id (vocab_index), OOV for
  any other word, SEP at line ends."""
  keys, ids = index
  at = np.minimum(np.searchsorted(keys, stream), len(keys) - 1)
  tokens = np.where(keys[at] == stream, ids[at], np.int32(OOV))
  tokens[stream == LINE_END_HASH] = SEP
  return tokens


def tokenize_pieces(source: corpus.TextSource, vocab: Vocab, lowercase: bool) -> Iterator[np.ndarray]:
  """The corpus's token stream, one int32 array per piece, without TensorFlow."""
  index = vocab_index(vocab)
  for piece in source.pieces(lowercase):
    hashes, starts, _ = hash_tokens(piece)
    yield ids_of(stream_hashes(piece, hashes, starts), index)


def spilled_pieces(spill: BinaryIO, vocab: Vocab, chunk_tokens: int = 1 << 22) -> Iterator[np.ndarray]:
  """The token stream of the hashes count_words spilled (read from the start), in int32 chunks: tokenizing
  without reading the text again."""
  index = vocab_index(vocab)
  spill.seek(0)
  while chunk := spill.read(8 * chunk_tokens):
    yield ids_of(np.frombuffer(chunk, np.uint64), index)


def tokenize(source: corpus.TextSource, vocab: Vocab, lowercase: bool) -> np.ndarray:
  """The whole token stream in memory (for small corpora and tests)."""
  return np.concatenate([np.zeros([0], np.int32), *tokenize_pieces(source, vocab, lowercase)])


def write_token_cache(pieces: Iterable[np.ndarray], path: str) -> TokenCache:
  """Writes a token stream (int32 arrays: tokenize_pieces or spilled_pieces) into a raw int32 file (4 bytes a
  token, any size), and its record beside it (path.json: token count and CRC-32, see check_token_cache). On any
  failure no partial file is left, and a failed write (a full disk) is one UserError line."""
  tokens, crc = 0, 0
  with atomic_write(path, "wb") as f:
    for ids in pieces:
      data = ids.tobytes()
      f.write(data)
      tokens, crc = tokens + len(ids), zlib.crc32(data, crc)
    with atomic_write(path + ".json") as record:  # replaced first: a new record with the old cache never passes
      json.dump({"tokens": tokens, "crc32": crc}, record)
  return read_token_cache(path)


def check_token_cache(paths: list[str], vocab_size: int, chunk_tokens: int = 1 << 22) -> str | None:
  """Why the token cache files cannot be reused (None: they can): a file or its record missing, a length other
  than its record's, an id outside [OOV, vocab_size), or a CRC-32 other than its record's. Reads every file."""
  for path in paths:
    name = os.path.basename(path)
    try:
      with open(path + ".json") as f:
        record = json.load(f)
      tokens, crc = int(record["tokens"]), int(record["crc32"])
    except (OSError, ValueError, KeyError, TypeError):
      return f"{name}.json (its length and checksum) is missing or unreadable"
    try:
      size = os.path.getsize(path)
      if size != 4 * tokens:
        return f"{name} holds {size} bytes, not the {4 * tokens} ({tokens} tokens) it was written with"
      actual = 0
      with open(path, "rb") as f:
        while chunk := f.read(4 * chunk_tokens):
          ids = np.frombuffer(chunk, np.int32)
          if ids.min() < OOV or ids.max() >= vocab_size:
            return f"{name} holds ids outside [{OOV}, {vocab_size})"
          actual = zlib.crc32(chunk, actual)
    except OSError as e:
      return f"{name} cannot be read ({e.strerror})"
    if actual != crc:
      return f"{name} does not match its checksum"
  return None


class TokenCache:
  """A token stream stored in one or more raw int32 files (one per host that tokenized a share of the corpus),
  read by slices with plain reads, not mapped: mapped pages that were read count toward the process's
  resident memory, which would then grow with the corpus."""

  def __init__(self, paths: list[str], length: int | None = None):
    self.paths = list(paths)
    self._starts = np.cumsum([0] + [os.path.getsize(p) // 4 for p in self.paths])
    self._len = int(self._starts[-1]) if length is None else min(length, int(self._starts[-1]))

  def head(self, length: int) -> TokenCache:
    """The first `length` tokens (e.g. up to the end of this host's shard), still read by slices."""
    return TokenCache(self.paths, min(length, self._len))

  def __len__(self) -> int:
    return self._len

  def segments(self, start: int, stop: int) -> list[tuple[str, int, int, int]]:
    """Where tokens [start, stop) are: (file, first token in it, count, the file's tokens) per file they span."""
    out = []
    for path, first, end in zip(self.paths, self._starts[:-1], self._starts[1:]):
      lo, hi = max(start, int(first)), min(stop, int(end))
      if lo < hi:
        out.append((path, lo - int(first), hi - lo, int(end - first)))
    return out

  def __getitem__(self, index: slice) -> np.ndarray:
    start, stop, step = index.indices(self._len)
    if step != 1:
      raise IndexError("a TokenCache is read by contiguous slices")
    parts = [np.zeros([0], np.int32)]
    for path, first, count, _ in self.segments(start, stop):
      with open(path, "rb") as f:
        f.seek(4 * first)
        parts.append(np.fromfile(f, np.int32, count))
    return np.concatenate(parts) if len(parts) > 2 else parts[-1]

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    return self[:].astype(dtype or np.int32, copy=False)


def read_token_cache(paths: str | list[str]) -> TokenCache:
  """Opens a token cache written by write_token_cache (several files: their concatenation, in order)."""
  return TokenCache([paths] if isinstance(paths, str) else paths)


def _pack(ids: np.ndarray, pos: np.ndarray, idx: np.ndarray, block_length: int):
  """Cuts a stream into full blocks: (blocks, raw ends, stream ends, leftover ids, pos, idx)."""
  n = len(ids) // block_length * block_length
  blocks = ids[:n].reshape(-1, block_length)
  raw_ends = pos[:n].reshape(-1, block_length).max(axis=1, initial=-1) + 1
  index_ends = idx[:n].reshape(-1, block_length).max(axis=1, initial=-1) + 1
  return blocks, raw_ends, index_ends, ids[n:], pos[n:], idx[n:]


def numpy_batches(
    stream: np.ndarray | TokenCache, vocab: Vocab, sample: float, seed: int, epoch: int, batch_size: int,
    block_length: int, start_index: int = 0, start_pos: int = 0, chunk_tokens: int = 1 << 22,
) -> Iterator[dict[str, np.ndarray]]:
  """Yields one epoch of batches from a token stream (numpy array or TokenCache), chunk by chunk.

  To resume, pass a batch's end_index and raw_end as start_index and start_pos: the batches that
  follow are exactly those an uninterrupted pass yields (packing is greedy, keeping is a hash).
  """
  thresholds = sampling.keep_thresholds(vocab.counts, sample)
  key = sampling.epoch_key(seed, epoch)
  blocks_per_batch = batch_size // block_length
  carry = (np.zeros([0], np.int32), np.zeros([0], np.int64), np.zeros([0], np.int64))
  ready: list[tuple] = []
  offset = start_pos
  for start in range(start_index, len(stream), chunk_tokens):
    ids = np.asarray(stream[start:start + chunk_tokens])
    idx = np.arange(start, start + len(ids), dtype=np.int64)
    pos = offset + np.cumsum(ids != SEP) - 1
    offset = int(pos[-1]) + 1
    real = ids >= 0
    keep = ids == SEP
    keep[real] = sampling.keep_hash_numpy(pos[real], key) < thresholds[ids[real]]
    *full, carry_ids, carry_pos, carry_idx = _pack(
        *(np.concatenate([c, a[keep]]) for c, a in zip(carry, (ids, pos, idx))), block_length)
    carry = (carry_ids, carry_pos, carry_idx)
    useful = (full[0] >= 0).any(axis=1)
    ready.extend(zip(*(a[useful] for a in full)))
    while len(ready) >= blocks_per_batch:
      yield _batch(ready[:blocks_per_batch], blocks_per_batch, block_length)
      del ready[:blocks_per_batch]
  if (carry[0] >= 0).any():
    pad = np.full([block_length - len(carry[0])], SEP, np.int32)
    ready.append((np.concatenate([carry[0], pad]), carry[1].max() + 1, carry[2].max() + 1))
  for i in range(0, len(ready), blocks_per_batch):
    yield _batch(ready[i:i + blocks_per_batch], blocks_per_batch, block_length)


def _batch(blocks: list[tuple], blocks_per_batch: int, block_length: int) -> dict[str, np.ndarray]:
  """Stacks (block, raw end, stream end) triples into a fixed-shape batch, padded with SEP blocks."""
  tokens = np.full([blocks_per_batch, block_length], SEP, np.int32)
  tokens[:len(blocks)] = [b for b, _, _ in blocks]
  return {"tokens": tokens, "raw_end": np.int64(max(e for _, e, _ in blocks)),
          "end_index": np.int64(max(e for _, _, e in blocks))}


class _TfUint32:
  """The uint32 ops sampling.keep_hash needs, from TensorFlow."""

  def __init__(self, tf):
    self.tf = tf

  def bitwise_xor(self, a, b):
    return self.tf.bitwise.bitwise_xor(a, b)

  def right_shift(self, a, n):
    return self.tf.bitwise.right_shift(a, self.tf.constant(n, self.tf.uint32))


def _tf():
  import tensorflow as tf  # TF is optional: the numpy path runs without it

  return tf


def tf_text_ids(source: corpus.TextSource, vocab: Vocab, lowercase: bool):
  """tf.data stage 1: read → tokenize → look up ids; one int32 stream element per piece."""
  tf = _tf()
  table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(vocab.words), tf.range(vocab.size, dtype=tf.int64)), default_value=OOV)

  def to_ids(piece):
    lines = tf.strings.split(piece, "\n")
    words = tf.strings.split(lines)
    ids = words.with_flat_values(tf.cast(table.lookup(words.flat_values), tf.int32))
    n = tf.shape(lines, out_type=tf.int64)[0]
    seps = tf.RaggedTensor.from_row_lengths(
        tf.fill([n - 1], SEP), tf.concat([tf.ones([n - 1], tf.int64), [0]], 0))
    return tf.concat([ids, seps], axis=1).flat_values

  ds = tf.data.Dataset.from_generator(
      lambda: source.pieces(lowercase), output_signature=tf.TensorSpec((), tf.string))
  return ds.map(to_ids)


def tf_cached_ids(stream: TokenCache, start_index: int = 0, chunk_tokens: int = 1 << 22):
  """tf.data stage 1 from a token cache: its tokens from start_index on, in chunks, read by TensorFlow itself.

  Not a Python generator: TF's GeneratorDataset pins glibc's mmap threshold at 128 KiB, after which every
  scratch buffer of XLA:CPU's fused dots is a fresh mmap and the step runs 1.35x slower (BENCHMARKS.md).
  """
  tf = _tf()
  little_endian = sys.byteorder == "little"  # as write_token_cache wrote it
  ids = tf.data.Dataset.from_tensors(tf.zeros([0], tf.int32))  # an empty first chunk: the rest may be empty
  for path, first, count, file_tokens in stream.segments(start_index, len(stream)):
    full, tail = divmod(count, chunk_tokens)
    for start, records, tokens in ((first, full, chunk_tokens), (first + full * chunk_tokens, 1, tail)):
      if records and tokens:
        part = tf.data.FixedLengthRecordDataset(path, 4 * tokens, header_bytes=4 * start,
                                                footer_bytes=4 * (file_tokens - start - records * tokens))
        ids = ids.concatenate(part.map(lambda record: tf.io.decode_raw(record, tf.int32, little_endian=little_endian)))
  return ids


def tf_batches(
    ids, vocab: Vocab, sample: float, seed: int, epoch: int, batch_size: int, block_length: int,
    start_index: int = 0, start_pos: int = 0, prefetch: int = 4,
):
  """tf.data stage 2, one epoch: drop OOV → subsample → pack into blocks → batch → prefetch.

  ids must start at stream index start_index, where start_pos words precede (see numpy_batches).
  """
  tf = _tf()
  tfu = _TfUint32(tf)
  thresholds = tf.constant(sampling.keep_thresholds(vocab.counts, sample))
  key = tf.constant(sampling.epoch_key(seed, epoch), tf.uint32)
  blocks_per_batch = batch_size // block_length

  def positions(offsets, ids):
    word = tf.cast(ids != SEP, tf.int64)
    n = tf.size(ids, out_type=tf.int64)
    idx = offsets[1] + tf.range(n, dtype=tf.int64)
    return (offsets[0] + tf.reduce_sum(word), offsets[1] + n), (ids, offsets[0] + tf.cumsum(word) - 1, idx)

  def subsample(ids, pos, idx):
    lo = tf.cast(tf.bitwise.bitwise_and(pos, 0xFFFFFFFF), tf.uint32)
    hi = tf.cast(tf.bitwise.right_shift(pos, tf.constant(32, tf.int64)), tf.uint32)
    h = sampling.keep_hash(hi, lo, key, tfu)
    keep_word = tf.cast(h, tf.int64) < tf.gather(thresholds, tf.maximum(ids, 0))
    keep = (ids == SEP) | ((ids >= 0) & keep_word)
    return tf.boolean_mask(ids, keep), tf.boolean_mask(pos, keep), tf.boolean_mask(idx, keep)

  def pack(carry, element):
    ids, pos, idx = (tf.concat([c, e], 0) for c, e in zip(carry, element))
    n = tf.size(ids) // block_length * block_length
    blocks = tf.reshape(ids[:n], [-1, block_length])
    raw_ends = tf.reduce_max(tf.reshape(pos[:n], [-1, block_length]), axis=1) + 1
    index_ends = tf.reduce_max(tf.reshape(idx[:n], [-1, block_length]), axis=1) + 1
    return (ids[n:], pos[n:], idx[n:]), (blocks, raw_ends, index_ends)

  def to_batch(blocks, raw_ends, index_ends):
    pad = blocks_per_batch - tf.shape(blocks)[0]
    return {"tokens": tf.pad(blocks, [[0, pad], [0, 0]], constant_values=SEP),
            "raw_end": tf.reduce_max(raw_ends), "end_index": tf.reduce_max(index_ends)}

  minus_one = tf.fill([block_length], tf.constant(-1, tf.int64))
  flush = (tf.fill([block_length], SEP), minus_one, minus_one)
  empty = (tf.zeros([0], tf.int32), tf.zeros([0], tf.int64), tf.zeros([0], tf.int64))
  start = (tf.constant(start_pos, tf.int64), tf.constant(start_index, tf.int64))
  ds = ids.scan(start, positions).map(subsample)
  ds = ds.concatenate(tf.data.Dataset.from_tensors(flush)).scan(empty, pack)
  ds = ds.unbatch().filter(lambda block, raw_end, index_end: tf.reduce_any(block >= 0))
  options = tf.data.Options()
  # Nothing to tune (sequential maps, a fixed prefetch), and the tuner's thread, sleeping up to a minute between
  # rounds, at times held up the iterator's deletion (each epoch's end, the exit) by ~40 s (BENCHMARKS.md).
  options.autotune.enabled = False
  return ds.batch(blocks_per_batch).map(to_batch).prefetch(prefetch).with_options(options)
