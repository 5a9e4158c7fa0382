"""Data preparation: the corpus source, its vocabulary and token cache (built once, reused while they check out),
this host's shard of the token stream and the negative sampler: everything training reads."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import NamedTuple

import jax
import ml_collections

from w2v_jax import checkpointing, corpus, distributed, input_pipeline, tfds_text
from w2v_jax.errors import UserError
from w2v_jax.train_step import Sampler, make_sampler
from w2v_jax.vocab import (
  Vocab,
  count_corpus,
  load_counts,
  merge_counts,
  save_counts,
  saved_source,
  saved_token_cache,
  vocab_from_counts,
)
from w2v_jax.workdir import Workdir


def corpus_input(config) -> corpus.TextSource:
  """The corpus: files, or a TFDS split's text feature when config.corpus starts with 'tfds:'."""
  if config.corpus.startswith(tfds_text.PREFIX):
    return tfds_text.parse(config.corpus, config.tfds_split, config.tfds_text_key, config.tfds_data_dir)
  return corpus.FileCorpus(corpus.corpus_files(config.corpus))


def corpus_source(config, whole: corpus.TextSource) -> dict:
  """What a vocabulary and token cache are built from: the corpus's identity (the files' fingerprints, or the
  dataset) and the vocabulary settings."""
  return {"files": whole.identity(), "lowercase": config.lowercase,
          "min_count": config.min_count, "max_vocab_size": config.max_vocab_size}


def load_vocab_and_tokens(config, workdir: str) -> tuple[Vocab, input_pipeline.TokenCache]:
  """The vocabulary and the token cache: reused when built from the same corpus and settings and the cache
  checks out (input_pipeline.check_token_cache: length, ids, checksum), else built, saying why.

  Each process reads only its share of the corpus (host_share): it counts it, process 0 merges the
  counts into vocab.tsv, then each tokenizes its share into its own cache file; the files in process
  order are the token stream of the whole corpus, whatever the number of processes (the workdir is shared).
  """
  run_dir, whole = Workdir(workdir), corpus_input(config)
  if not config.allow_binary_corpus:
    whole.check_text()
  source = corpus_source(config, whole)
  saved = saved_source(workdir)
  resumable = [{**s, "files": corpus.content_identity(s.get("files", []))} for s in (saved or {}, source)]
  if run_dir.has_checkpoints() and saved and resumable[0] != resumable[1]:
    checkpointing.check_resume(*resumable)  # refuse before the workdir's vocabulary is replaced
  why = None
  if saved and saved != source:
    changed = ["the corpus" if k == "files" else k for k in sorted(set(saved) | set(source))
               if saved.get(k) != source.get(k)]
    why = f"{' and '.join(changed)} changed since they were built"
  elif saved:
    t0 = time.time()
    cache = saved_token_cache(workdir)
    try:
      vocab = Vocab.load(workdir)
      why = input_pipeline.check_token_cache(cache, vocab.size) if cache else "no token cache is recorded"
    except UserError as e:
      why = str(e)
    if why is None:
      distributed.log(f"vocabulary: reusing {run_dir.vocab_tsv} ({vocab.size} words) and its token cache (checked "
                      f"in {time.time() - t0:.1f}s), built from the same corpus and vocabulary settings; skipping "
                      "the counting pass")
      return vocab, input_pipeline.read_token_cache(cache)
  if why:
    distributed.log(f"rebuilding the vocabulary and token cache: {why}")
  distributed.barrier("vocabulary checked")  # before process 0 replaces vocab.json
  hosts, index = jax.process_count(), jax.process_index()
  mine = whole.host_share(hosts, index)
  names = Workdir.token_cache_names(hosts)
  # The count's token hashes (8 bytes a token, an unlinked file in the workdir) become the token cache once the
  # vocabulary is known, without a second pass over the text.
  with tempfile.TemporaryFile(dir=workdir) as spill:
    t0 = time.time()
    try:  # the corpus's own read errors are UserErrors already: an OSError here is the scratch file's
      counts, spilled = count_corpus(mine, config.lowercase, config.max_vocab_size, config.vocab_processes, spill)
    except OSError as e:
      raise UserError(f"cannot write the token hashes' scratch file in {workdir} ({e.strerror or e}); free space "
                      "(8 bytes a corpus token) and run the same command") from None
    vocab = _merged_vocab(config, workdir, counts, str(whole))
    distributed.log(f"vocabulary: {vocab.size} words with count >= {config.min_count}, {vocab.total_tokens} corpus "
                    f"tokens, {time.time() - t0:.1f}s" + (f" ({hosts} processes, each counting its share)"
                                                          if hosts > 1 else "")
                    + (f"; {vocab.invalid_utf8} invalid UTF-8 sequences replaced" if vocab.invalid_utf8 else ""))
    t0 = time.time()
    pieces = (input_pipeline.spilled_pieces(spill, vocab) if spilled
              else input_pipeline.tokenize_pieces(mine, vocab, config.lowercase))
    input_pipeline.write_token_cache(pieces, run_dir.file(names[index]))
  distributed.barrier("tokenized")
  cache = [_shared(run_dir.file(name)) for name in names]
  if distributed.is_main():
    vocab.save(workdir, source, names)
  distributed.log(f"tokenized into {', '.join(names)} in {time.time() - t0:.1f}s")
  return vocab, input_pipeline.read_token_cache(cache)


def _merged_vocab(config, workdir: str, counts, corpus_name: str) -> Vocab:
  """The vocabulary of every process's counts: process 0 merges them (through the shared workdir), saves
  vocab.tsv without its source (so a crash before the cache is complete is not reused), the others load it."""
  hosts, index, run_dir = jax.process_count(), jax.process_index(), Workdir(workdir)
  parts = run_dir.vocab_counts
  if hosts > 1:
    os.makedirs(parts, exist_ok=True)
    save_counts(os.path.join(parts, f"{index}.pkl"), counts)
    distributed.barrier("counted")
  if distributed.is_main():
    if hosts > 1:
      counts = merge_counts(load_counts(_shared(os.path.join(parts, f"{i}.pkl"))) for i in range(hosts))
      shutil.rmtree(parts)
    vocab = vocab_from_counts(counts, config.min_count, config.max_vocab_size, corpus_name)
    vocab.save(workdir)
  distributed.barrier("vocabulary")
  if not distributed.is_main():
    _shared(run_dir.vocab_tsv)  # one clear line where the workdir is not shared
    vocab = Vocab.load(workdir)
  return vocab


def _shared(path: str) -> str:
  """path, which another process wrote: a clear error if this process does not see it."""
  if not os.path.exists(path):
    raise UserError(f"process {jax.process_index()} does not see {path}, written by another process: the workdir "
                    "must be shared by all hosts")
  return path


class HostShard(NamedTuple):
  """This process's part of the token stream: [start, end) indices, and the word position of start."""

  start: int
  end: int
  words_start: int


def host_shard(stream: input_pipeline.TokenCache) -> HostShard:
  """This process's contiguous, sentence-aligned range of the token stream (all of it on one process)."""
  start, end = distributed.shard_bounds(stream, jax.process_count())[jax.process_index()]
  return HostShard(start, end, distributed.words_before(stream, start))


def resume_identity(config, workdir: str) -> dict:
  """What must be equal for a checkpoint to be resumed: config fields, vocabulary, corpus."""
  return {**config.to_dict(), "vocab_sha256": checkpointing.file_sha256(Workdir(workdir).vocab_tsv),
          "corpus_files": corpus.content_identity(saved_source(workdir)["files"])}


class Data(NamedTuple):
  """What training reads: the vocabulary, this host's part of the token stream, and the negative sampler."""

  vocab: Vocab
  stream: input_pipeline.TokenCache  # the whole stream up to the end of this host's shard
  shard: HostShard
  sampler: Sampler


def training_data(config: ml_collections.ConfigDict, workdir: Workdir) -> Data:
  """The vocabulary and token cache (load_vocab_and_tokens), this host's shard and the sampler."""
  vocab, stream = load_vocab_and_tokens(config, workdir.path)
  shard = host_shard(stream)
  sampler = make_sampler(vocab.counts, config.ns_exponent, config.sample, config.negative, config.curvature_words)
  return Data(vocab, stream.head(shard.end), shard, sampler)
