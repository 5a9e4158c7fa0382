"""train_and_evaluate: vocabulary → token blocks → jitted steps → export → evaluation, with progress."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import resource
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from w2v_jax import (
  checkpointing,
  corpus,
  distributed,
  evaluation,
  host_memory,
  input_pipeline,
  parallel,
  tfds_text,
  word2vec_format,
  workdir_lock,
)
from w2v_jax.atomic_file import atomic_write
from w2v_jax.background import in_background
from w2v_jax.checkpointing import Checkpointer
from w2v_jax.errors import UserError
from w2v_jax.logs import LOGGER
from w2v_jax.model import Tables, Word2Vec
from w2v_jax.settings import check_memory, resolve_alpha, shape_blocks, update_blocks, validate_config
from w2v_jax.train_step import compile_ahead, make_sampler, make_train_step, step_config, step_key
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

# on_epoch_end(epochs done, words, vectors, scores) -> whether to stop there.
EpochCallback = Callable[[int, list[str], np.ndarray, dict[str, float]], bool | None]


def prepare_workdir(workdir: str) -> None:
  """Creates the workdir and checks it is writable, failing early with one line."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test.{socket.gethostname()}.{os.getpid()}")  # hosts may share it
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise UserError(f"workdir {workdir!r} is not writable ({e.strerror}); choose another --workdir") from None


def _quiet_event_writer_errors(args: threading.ExceptHookArgs) -> None:
  """Drops the OSError (a full disk) that kills tensorboardX's writer thread: Progress.close reports it in one
  line. Anything else goes to the default hook."""
  if type(args.thread).__name__ == "_EventLoggerThread" and issubclass(args.exc_type, OSError):
    return
  threading.__excepthook__(args)


class Progress:
  """Progress lines through the logger every log_every_steps, the same metrics as TensorBoard events every
  tensorboard_every_steps, and the run's config as TensorBoard text."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, total_words: int, start_words: int):
    from tensorboardX import SummaryWriter

    self.writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
    threading.excepthook = _quiet_event_writer_errors
    self.writer.add_text("config", "```\n" + config.to_json(indent=2) + "\n```", 0)
    self.total_words = total_words
    self.begin(start_words)  # the words trained before a resume do not count toward words/s and the ETA

  def begin(self, words: int) -> None:
    """Starts the clock for words/s and the ETA at words (after the first step, which waits for the compile)."""
    self.start, self.start_words = time.time(), words
    self.last = {"console": (self.start, words), "tensorboard": (self.start, words)}  # per output: time, words

  def _rate(self, output: str, now: float, words: int) -> float:
    last_time, last_words = self.last[output]
    self.last[output] = now, words
    return (words - last_words) / max(now - last_time, 1e-9)

  def report(self, step: int, epoch: int, epochs: int, words: int, loss: float, lr: float, console: bool = True,
             tensorboard: bool = True) -> None:
    """A progress line (console) and the train/ scalars (tensorboard); loss is the mean since the last report."""
    now, done = time.time(), words / self.total_words
    if tensorboard:
      rate = self._rate("tensorboard", now, words)
      for name, value in (("loss", loss), ("learning_rate", lr), ("words_per_sec", rate), ("progress", done)):
        self.writer.add_scalar(f"train/{name}", value, step)
    if console:
      rate = self._rate("console", now, words)
      eta = (now - self.start) / max(words - self.start_words, 1) * (self.total_words - words)
      LOGGER.info(f"epoch {epoch + 1}/{epochs}  {100 * done:5.1f}%  {rate / 1e3:7.1f}k words/s  loss {loss:.4f}  "
                  f"lr {lr:.5f}  ETA {int(eta) // 60}m{int(eta) % 60:02d}s")

  def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
    for name, value in values.items():
      if np.isfinite(value):  # a benchmark with no known word scores NaN
        self.writer.add_scalar(f"{prefix}/{name}", value, step)
    self.writer.flush()

  def close(self) -> None:
    """Flushes the events; a failed write (a full disk) is one line, as for the other outputs."""
    try:
      self.writer.close()
    except OSError as e:
      event_writer = self.writer.file_writer.event_writer
      event_writer._closed = True  # so tensorboardX's exit hook does not retry and print
      event_writer._worker.stop()  # its thread ends (its own write errors are dropped, see above)
      raise UserError(f"cannot write TensorBoard events in {self.writer.logdir} ({e.strerror or e}); "
                      "free space and run the same command to resume") from None


def epoch_batches(config, vocab: Vocab, stream: input_pipeline.TokenCache, epoch: int, start_index: int, start_pos: int,
                  batch_size: int):
  """The rest of an epoch's batches (of this host's batch_size tokens) from the token cache (up to the end
  of this host's shard), via tf.data (or numpy without TensorFlow)."""
  args = (vocab, config.sample, config.seed, epoch, batch_size, config.block_length, start_index, start_pos)
  if config.input == "tfdata":
    ds = input_pipeline.tf_batches(input_pipeline.tf_cached_ids(stream, start_index), *args)
    return ds.as_numpy_iterator()
  return input_pipeline.numpy_batches(stream, *args)


def corpus_input(config, shard: tuple[int, int] = (1, 0)) -> list[str] | tfds_text.TfdsText:
  """The corpus as files, or as a TFDS split's text feature when config.corpus starts with 'tfds:'; with
  shard = (hosts, index), only that host's share: a contiguous run of the files, or of the split."""
  if config.corpus.startswith(tfds_text.PREFIX):
    return tfds_text.parse(config.corpus, config.tfds_split, config.tfds_text_key, config.tfds_data_dir, shard)
  return corpus.host_files(corpus.corpus_files(config.corpus), *shard)


def corpus_source(config, files: list[str] | tfds_text.TfdsText) -> dict:
  """What a vocabulary and token cache are built from: the files' fingerprints (corpus.fingerprint) or the
  dataset, and the vocabulary settings."""
  return {"files": corpus.identity(files), "lowercase": config.lowercase,
          "min_count": config.min_count, "max_vocab_size": config.max_vocab_size}


def load_vocab_and_tokens(config, workdir: str) -> tuple[Vocab, input_pipeline.TokenCache]:
  """The vocabulary and the token cache: reused when built from the same corpus and settings and the cache
  checks out (input_pipeline.check_token_cache: length, ids, checksum), else built, saying why.

  Each process reads only its share of the corpus (corpus_input): it counts it, process 0 merges the
  counts into vocab.tsv, then each tokenizes its share into its own cache file; the files in process
  order are the token stream of the whole corpus, whatever the number of processes (the workdir is shared).
  """
  whole = corpus_input(config)
  if isinstance(whole, list) and not config.allow_binary_corpus:
    corpus.check_text(whole)
  source = corpus_source(config, whole)
  saved = saved_source(workdir)
  resumable = [{**s, "files": corpus.content_identity(s.get("files", []))} for s in (saved or {}, source)]
  if checkpointing.has_checkpoints(workdir) and saved and resumable[0] != resumable[1]:
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
      distributed.log(f"vocabulary: reusing {workdir}/vocab.tsv ({vocab.size} words) and its token cache (checked "
                      f"in {time.time() - t0:.1f}s), built from the same corpus and vocabulary settings; skipping "
                      "the counting pass")
      return vocab, input_pipeline.read_token_cache(cache)
  if why:
    distributed.log(f"rebuilding the vocabulary and token cache: {why}")
  distributed.barrier("vocabulary checked")  # before process 0 replaces vocab.json
  hosts, index = jax.process_count(), jax.process_index()
  mine = corpus_input(config, (hosts, index))
  names = ["tokens.i32"] if hosts == 1 else [f"tokens-{i:05d}-of-{hosts:05d}.i32" for i in range(hosts)]
  # The count's token hashes (8 bytes a token, an unlinked file in the workdir) become the token cache once the
  # vocabulary is known, without a second pass over the text.
  with tempfile.TemporaryFile(dir=workdir) as spill:
    t0 = time.time()
    try:  # the corpus's own read errors are UserErrors already: an OSError here is the scratch file's
      counts, spilled = count_corpus(mine, config.lowercase, config.max_vocab_size, config.vocab_processes, spill)
    except OSError as e:
      raise UserError(f"cannot write the token hashes' scratch file in {workdir} ({e.strerror or e}); free space "
                      "(8 bytes a corpus token) and run the same command") from None
    vocab = _merged_vocab(config, workdir, counts, corpus.describe(whole))
    distributed.log(f"vocabulary: {vocab.size} words with count >= {config.min_count}, {vocab.total_tokens} corpus "
                    f"tokens, {time.time() - t0:.1f}s" + (f" ({hosts} processes, each counting its share)"
                                                          if hosts > 1 else "")
                    + (f"; {vocab.invalid_utf8} invalid UTF-8 sequences replaced" if vocab.invalid_utf8 else ""))
    t0 = time.time()
    pieces = (input_pipeline.spilled_pieces(spill, vocab) if spilled
              else input_pipeline.tokenize_pieces(mine, vocab, config.lowercase))
    input_pipeline.write_token_cache(pieces, os.path.join(workdir, names[index]))
  distributed.barrier("tokenized")
  cache = [_shared(workdir, name) for name in names]
  if distributed.is_main():
    vocab.save(workdir, source, names)
  distributed.log(f"tokenized into {', '.join(names)} in {time.time() - t0:.1f}s")
  return vocab, input_pipeline.read_token_cache(cache)


def _merged_vocab(config, workdir: str, counts, corpus_name: str) -> Vocab:
  """The vocabulary of every process's counts: process 0 merges them (through the shared workdir), saves
  vocab.tsv without its source (so a crash before the cache is complete is not reused), the others load it."""
  hosts, index = jax.process_count(), jax.process_index()
  parts = os.path.join(workdir, "vocab_counts")
  if hosts > 1:
    os.makedirs(parts, exist_ok=True)
    save_counts(os.path.join(parts, f"{index}.pkl"), counts)
    distributed.barrier("counted")
  if distributed.is_main():
    if hosts > 1:
      counts = merge_counts(load_counts(_shared(parts, f"{i}.pkl")) for i in range(hosts))
      shutil.rmtree(parts)
    vocab = vocab_from_counts(counts, config.min_count, config.max_vocab_size, corpus_name)
    vocab.save(workdir)
  distributed.barrier("vocabulary")
  if not distributed.is_main():
    _shared(workdir, "vocab.tsv")  # one clear line where the workdir is not shared
    vocab = Vocab.load(workdir)
  return vocab


def _shared(directory: str, name: str) -> str:
  """directory/name, which another process wrote: a clear error if this process does not see it."""
  path = os.path.join(directory, name)
  if not os.path.exists(path):
    raise UserError(f"process {jax.process_index()} does not see {path}, written by another process: the workdir "
                    "must be shared by all hosts")
  return path


def resume_identity(config, workdir: str) -> dict:
  """What must be equal for a checkpoint to be resumed: config fields, vocabulary, corpus."""
  return {**config.to_dict(), "vocab_sha256": checkpointing.file_sha256(os.path.join(workdir, "vocab.tsv")),
          "corpus_files": corpus.content_identity(saved_source(workdir)["files"])}


class StopRequest:
  """SIGTERM/SIGINT ask the loop to checkpoint and stop; a second signal exits at once (exit_on_second), or raises
  KeyboardInterrupt so that an interpreter (Jupyter) survives. Handlers exist only on the main thread."""

  def __init__(self, exit_on_second: bool = True):
    self.requested = False
    self.exit_on_second = exit_on_second
    self.previous = {}
    if threading.current_thread() is threading.main_thread():  # signal.signal works only there
      self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

  def _handle(self, signum, frame):
    if self.requested:
      if not self.exit_on_second:
        raise KeyboardInterrupt
      LOGGER.warning("second interrupt: exiting without a checkpoint")
      os._exit(128 + signum)
    self.requested = True
    LOGGER.warning(f"{signal.Signals(signum).name}: saving a checkpoint at the current step, then stopping "
                   f"(again to {'exit' if self.exit_on_second else 'interrupt'} at once)")

  def restore(self) -> None:
    for sig, handler in self.previous.items():
      signal.signal(sig, handler)


def export_vectors(workdir: str, vocab: Vocab, vectors: np.ndarray) -> None:
  """Writes vectors.txt and vectors.bin in word2vec's formats, replacing both together (or neither)."""
  word2vec_format.write_word2vec_files(
      [(os.path.join(workdir, "vectors.txt"), False), (os.path.join(workdir, "vectors.bin"), True)], vocab.words,
      vectors)


def make_mesh(config):
  """The 1-D data mesh over config.num_devices devices (0: all, of every process), checked against the batch."""
  available = len(jax.devices())
  if jax.process_count() > 1 and config.num_devices not in (0, available):
    raise UserError(f"config.num_devices={config.num_devices}: with several processes the mesh spans all "
                    f"{available} devices; leave it at 0")
  if config.num_devices > available:
    raise UserError(f"config.num_devices={config.num_devices} but only {available} device(s) are visible")
  n = config.num_devices or available
  if (config.batch_size // config.block_length) % n:
    raise UserError(f"config.batch_size={config.batch_size} gives {config.batch_size // config.block_length} blocks, "
                    f"not divisible by {n} devices; use a multiple of {n * config.block_length}")
  return parallel.make_mesh(n)


def lr_schedule(anchor: tuple[int, float], total_words: int, min_alpha: float) -> optax.Schedule:
  """The learning rate against corpus tokens read: linear from the anchor (words, lr) down to min_alpha at
  total_words, then flat. Its counts are floats, so that runs past 2**31 words do not overflow int32."""
  anchor_words, anchor_lr = anchor
  return optax.linear_schedule(anchor_lr, min_alpha, float(max(total_words - anchor_words, 1)), float(anchor_words))


class HostShard(NamedTuple):
  """This process's part of the token stream: [start, end) indices, and the word position of start."""

  start: int
  end: int
  words_start: int


def host_shard(stream: input_pipeline.TokenCache) -> HostShard:
  """This process's contiguous, sentence-aligned range of the token stream (all of it on one process)."""
  start, end = distributed.shard_bounds(stream, jax.process_count())[jax.process_index()]
  return HostShard(start, end, distributed.words_before(stream, start))


def tables_sha256(input_table: np.ndarray, output_table: np.ndarray) -> str:
  """sha256 of both tables as this process holds them (on the host): equal on every process of a correct run."""
  digest = hashlib.sha256()
  for x in (input_table, output_table):
    digest.update(x.tobytes())
  return digest.hexdigest()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, exit_on_second_signal: bool = True,
                       on_epoch_end: EpochCallback | None = None) -> dict:
  """Trains word2vec as configured (resuming from the latest checkpoint), writes the outputs into workdir.

  A second SIGINT/SIGTERM exits the process at once, or with exit_on_second_signal=False raises KeyboardInterrupt.
  on_epoch_end(epoch, words, vectors, scores) runs on process 0 after each epoch's checkpoint but the last (epochs
  counted from 1; scores empty where the epoch was not evaluated); a true result ends training there, and the
  outputs are that epoch's.

  Process 0 holds the workdir's lock for the whole run, so a second run on it is refused before it changes
  anything; the processes of one multi-host run share the workdir.
  """
  validate_config(config)
  host_memory.pin_mmap_threshold()
  distributed.initialize(config)
  with contextlib.ExitStack() as lock:
    refused = None
    if distributed.is_main():
      try:
        lock.enter_context(workdir_lock.hold(workdir))
      except UserError as e:
        refused = e
    if distributed.any_process(refused is not None)[0]:  # every process stops, not just process 0
      raise refused or UserError(f"workdir {workdir} is in use by another run (process 0 could not lock it)")
    return _train(config, workdir, exit_on_second_signal, on_epoch_end)


def _train(config: ml_collections.ConfigDict, workdir: str, exit_on_second_signal: bool,
           on_epoch_end: EpochCallback | None) -> dict:
  """train_and_evaluate's work, under the workdir's lock."""
  log = distributed.log
  multihost = jax.process_count() > 1
  prepare_workdir(workdir)
  if config.restart and distributed.is_main():
    checkpointing.remove_checkpoints(workdir)

  # Data: vocabulary, token cache (this host's shard of it), negative sampler.
  if config.input == "tfdata":  # TensorFlow's import (3-6 s, mostly loading its libraries) overlaps the counting
    in_background(importlib.import_module, "tensorflow")
  vocab, stream = load_vocab_and_tokens(config, workdir)
  shard = host_shard(stream)
  stream = stream.head(shard.end)
  sampler = make_sampler(vocab.counts, config.ns_exponent, config.sample, config.negative, config.curvature_words)
  if distributed.is_main():
    with atomic_write(os.path.join(workdir, "config.json")) as f:
      f.write(config.to_json(indent=2))

  # Model and step.
  check_memory(config, vocab.size)
  model = Word2Vec(vocab.size, config.dim, rngs=nnx.Rngs(config.seed))
  tables = model.tables()
  step_cfg = step_config(config)
  mesh = make_mesh(config)
  blocks_per_update = update_blocks(config, mesh.size)
  blocks_per_shape = shape_blocks(config, blocks_per_update)
  host_blocks = config.batch_size // config.block_length // jax.process_count()
  if mesh.size == 1:
    step_fn = make_train_step(step_cfg, blocks_per_update, blocks_per_shape)
    new_metrics = lambda: jnp.zeros(2, jnp.float32)  # noqa: E731
  else:
    step_fn = parallel.make_parallel_train_step(step_cfg, mesh, config.table_layout, blocks_per_update,
                                                blocks_per_shape)
    new_metrics = lambda: parallel.replicate(jnp.zeros(2, jnp.float32), mesh)  # noqa: E731
  if multihost:  # Orbax restores into global arrays: [V, D] on every device, until shard_tables
    tables = Tables(*(parallel.replicate(x, mesh) for x in tables))
  base_key = jax.random.key(config.seed)
  total_words = config.epochs * vocab.total_tokens

  # Restore or start.
  identity = resume_identity(config, workdir)
  checkpointer = Checkpointer(workdir, config.keep_checkpoints, config.checkpoint_every_steps,
                              config.checkpoint_every_secs)
  step, epoch, epoch_words, position = 0, 0, 0, (shard.start, shard.words_start)
  anchor = (0, resolve_alpha(config))
  try:
    restored = checkpointer.restore_latest(tables, identity)
  except BaseException:
    checkpointer.close()
    raise
  if restored is not None:
    tables, meta = restored
    step, epoch, epoch_words = meta["step"], meta["epoch"], meta["words"]
    position = host_position(meta["positions"], shard)
  words = words_at_start = epoch * vocab.total_tokens + epoch_words
  if restored is not None:
    anchor = tuple(meta["anchor"])
    saved_epochs = meta["identity"]["epochs"]
    if saved_epochs != config.epochs and epoch >= saved_epochs:  # a finished run given more epochs: they decay
      anchor = (words, resolve_alpha(config))                    # from alpha again, as a fresh schedule would
    elif saved_epochs != config.epochs:  # changed mid-run: from the current lr to the new end
      anchor = (words, float(lr_schedule(anchor, saved_epochs * vocab.total_tokens, config.min_alpha)(words)))
    log(f"resumed from step {step}: epoch {epoch + 1}, {words} of {total_words} words")
  if mesh.size > 1:  # checkpoints hold [V, D] tables whatever the layout, so any device count restores them
    tables = parallel.shard_tables(tables, mesh, config.table_layout)
  host_memory.use_huge_pages(tables.input, tables.output)  # on CPU devices; kept by the donated steps
  tokens_shape = (config.batch_size // config.block_length, config.block_length)
  # Each step's lr on the device (one small dispatch), replicated over a mesh as the parallel step takes it (on one
  # device left unplaced, as the step's other arguments are: a placed one would recompile the step).
  replicated = NamedSharding(mesh, PartitionSpec()) if mesh.size > 1 else None
  schedule = jax.jit(lr_schedule(anchor, total_words, config.min_alpha), out_shardings=replicated)
  step_fn = compile_ahead(step_fn, tables, new_metrics(), jax.ShapeDtypeStruct(
      tokens_shape, jnp.int32, sharding=parallel.batch_sharding(mesh) if multihost else None),
      jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated), base_key, sampler)
  log(f"training {config.model}, dim {config.dim}, {config.epochs} epochs over {vocab.total_tokens} tokens "
      f"on {mesh.size} {jax.devices()[0].platform} device(s)"
      + (f" of {jax.process_count()} processes" if multihost else "")
      + (f", tables {config.table_layout}" if mesh.size > 1 else ""))

  def meta_at(epoch: int, words: int, positions: list) -> dict:
    """Checkpoint metadata: positions holds every process's [stream index, word position] ([]: epoch start)."""
    return {"epoch": epoch, "words": words, "positions": positions, "anchor": list(anchor), "identity": identity}

  def save_and_stop(step: int) -> tuple[bool, bool]:
    """Whether to checkpoint and whether to stop now, the same on every process (clocks and signals are
    per process, so several processes agree on them only every log_every_steps)."""
    if not multihost:
      return checkpointer.due(step), stop.requested
    if step % config.log_every_steps:
      return checkpointer.due(step, by_time=False), False
    return distributed.any_process(checkpointer.due(step), stop.requested)

  # Train loop.
  progress = Progress(workdir, config, total_words, words_at_start) if distributed.is_main() else None
  stop = StopRequest(exit_on_second_signal)
  metrics = new_metrics()
  scores, start, eval_seconds = {}, time.time(), 0.0
  full = vectors = None  # the tables unsharded, and the input table on the host, at the latest epoch end
  exporting = None  # the vectors files being written, from the last epoch's end
  failed = True  # until the loop ends or stops cleanly
  first_step = step  # this process's first step
  try:
    while epoch < config.epochs:
      batches = epoch_batches(config, vocab, stream, epoch, *position, host_blocks * config.block_length)
      plan = epoch_plan(config, vocab, stream, epoch, position, shard, host_blocks) if multihost else None
      if plan is not None:
        batches = distributed.pad_batches(batches, plan.steps, host_blocks, config.block_length)
      for i, batch in enumerate(batches):
        lr = schedule(np.float32(words))
        key = step_key(base_key, step)
        tokens = batch["tokens"]
        if multihost:
          tokens = jax.make_array_from_process_local_data(parallel.batch_sharding(mesh), tokens)
        tables, metrics = step_fn(tables, metrics, tokens, lr, key, sampler)
        if progress is not None and step == first_step:  # the first call waited for the compile
          progress.begin(words)
        if plan is None:
          positions = [[int(batch["end_index"]), int(batch["raw_end"])]]
          epoch_words = int(batch["raw_end"])
        else:
          positions, epoch_words = plan.positions[i].tolist(), int(plan.words[i])
        words = epoch * vocab.total_tokens + epoch_words
        step += 1
        console, tensorboard = step % config.log_every_steps == 0, step % config.tensorboard_every_steps == 0
        if console or tensorboard:
          loss_sum, pairs = np.asarray(metrics)
          metrics = new_metrics()
          if not np.isfinite(loss_sum):
            raise UserError(
                f"the loss became {loss_sum} at step {step}; lower --config.alpha or raise --config.damping")
          if progress is not None:
            progress.report(step, epoch, config.epochs, words, loss_sum / max(pairs, 1), float(lr), console,
                            tensorboard)
        save, stop_now = save_and_stop(step)
        if save or stop_now:
          checkpointer.save(step, parallel.unshard_tables(tables, vocab.size), meta_at(epoch, epoch_words, positions))
        if stop_now:
          checkpointer.wait()
          log(f"stopped at step {step}; checkpoint saved in {checkpointer.directory}. "
              "Run the same command to resume.")
          failed = False
          return {"stopped_at_step": step}
      epoch, position = epoch + 1, (shard.start, shard.words_start)
      words = epoch * vocab.total_tokens
      full = parallel.unshard_tables(tables, vocab.size)
      checkpointer.save(step, full, meta_at(epoch, 0, []))
      evaluate = config.eval_every_epoch or epoch == config.epochs
      if evaluate or on_epoch_end is not None:
        vectors = distributed.to_host(full.input)
      if epoch == config.epochs and distributed.is_main():  # written while the last evaluation runs
        exporting = in_background(export_vectors, workdir, vocab, vectors)
      if evaluate and distributed.is_main():
        eval_start = time.time()
        scores = headline_scores(evaluation.evaluate_all(evaluation.Embeddings(vocab.words, vectors)))
        eval_seconds += time.time() - eval_start
        progress.scalars("eval", scores, step)
        log(f"epoch {epoch}: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
      if on_epoch_end is not None and epoch < config.epochs:
        done = distributed.is_main() and bool(on_epoch_end(epoch, vocab.words, vectors, scores if evaluate else {}))
        if distributed.any_process(done)[0]:
          log(f"on_epoch_end ended training after epoch {epoch} of {config.epochs}")
          break
    jax.block_until_ready(tables)
    failed = False
  finally:
    stop.restore()
    try:
      checkpointer.close()
    except BaseException:
      failed = True
      raise
    finally:
      if progress is not None:
        try:
          progress.close()
        except UserError:
          if not failed:  # else the first failure (a full disk at a checkpoint) is the one to report
            raise
  elapsed = time.time() - start - eval_seconds  # training time, as the peers report it (compile included)
  if full is None:  # resumed after the last epoch: no epoch end ran here
    full = parallel.unshard_tables(tables, vocab.size)
    vectors = distributed.to_host(full.input)
  tables = full  # the last epoch end made both (it always evaluates); nothing trained since
  model.update(tables)

  # Outputs (process 0 writes them; every process takes part in gathering the tables).
  trained = words - words_at_start
  peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  sha256 = tables_sha256(vectors, distributed.to_host(tables.output))
  summary = {"train_seconds": elapsed, "words_per_sec": trained / max(elapsed, 1e-9), "eval_seconds": eval_seconds,
             "steps": step, "peak_rss_mb": peak_rss_mb, "tables_sha256": sha256, **scores}
  if not distributed.is_main():
    return summary
  if exporting is None:  # resumed after the last epoch, or on_epoch_end ended training early
    export_vectors(workdir, vocab, vectors)
  else:
    exporting.result()  # its errors (a full disk) are raised here
  with atomic_write(os.path.join(workdir, "results.json")) as f:
    json.dump({k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()},
              f, indent=2)
  log(f"trained {trained} words in {elapsed:.1f}s ({summary['words_per_sec'] / 1e3:.0f}k words/s; evaluation "
      f"{eval_seconds:.1f}s besides); vectors in {workdir}/vectors.txt and vectors.bin")
  show_neighbors(vocab, vectors, config.probe_words)
  return summary


def host_position(positions: list, shard: HostShard) -> tuple[int, int]:
  """This process's (stream index, word position) in a checkpoint's per-process positions."""
  if not positions:
    return shard.start, shard.words_start
  if len(positions) != jax.process_count():
    raise UserError(f"the latest checkpoint is mid-epoch with {len(positions)} process(es)' stream positions; "
                    f"resume it with {len(positions)} process(es) (a checkpoint taken at an epoch end resumes "
                    "with any number)")
  return tuple(positions[jax.process_index()])


def epoch_plan(config, vocab: Vocab, stream: input_pipeline.TokenCache, epoch: int, position: tuple[int, int],
               shard: HostShard, host_blocks: int) -> distributed.EpochPlan:
  """Counts this host's remaining batches of the epoch (a numpy pass over its shard, identical to the
  training input) and agrees with the other hosts on the step count and the words read per step."""
  batches = input_pipeline.numpy_batches(stream, vocab, config.sample, config.seed, epoch,
                                         host_blocks * config.block_length, config.block_length, *position)
  ends = np.asarray([[b["end_index"], b["raw_end"]] for b in batches], np.int64).reshape(-1, 2)
  return distributed.epoch_plan(ends, position, shard.words_start)


def headline_scores(results: dict) -> dict[str, float]:
  """The few numbers shown per epoch: WordSim-353 and SimLex-999 Spearman, Google analogy accuracy."""
  sim, ana = results["similarity"], results["analogy"]
  scores = {f"{name}_spearman": sim[name]["spearman"] for name in ("wordsim353", "simlex999") if name in sim}
  if "questions-words" in ana:
    scores["analogy_accuracy"] = ana["questions-words"]["accuracy"]
  return scores


def show_neighbors(vocab: Vocab, vectors: np.ndarray, probe_words: str) -> None:
  """Prints the nearest neighbours of the probe words that are in the vocabulary."""
  emb = evaluation.Embeddings(vocab.words, vectors)
  for word in [w for w in probe_words.split(",") if w]:
    if emb.lookup(word, case_insensitive=True) is not None:
      neighbors = evaluation.nearest_neighbors(emb, word, topn=8)
      LOGGER.info(f"  {word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in neighbors))
