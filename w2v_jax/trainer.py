"""train_and_evaluate in phases: prepare the data → build the run → restore or start → train epochs → finish.

Each phase is a function of what the previous ones made: `Run` holds what is set up once, `TrainState` what the
loop carries (the arrays the step donates, and the LoopState that every checkpoint saves).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import importlib
import json
import resource
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from w2v_jax import (
  checkpointing,
  distributed,
  evaluation,
  feed,
  host_memory,
  loop_state,
  parallel,
  prepare,
  settings,
  workdir_lock,
)
from w2v_jax.atomic_file import atomic_write
from w2v_jax.background import in_background
from w2v_jax.checkpointing import Checkpointer
from w2v_jax.errors import UserError
from w2v_jax.loop_state import LoopState
from w2v_jax.model import Tables, Word2Vec
from w2v_jax.prepare import Data
from w2v_jax.progress import Progress
from w2v_jax.stop_request import StopRequest
from w2v_jax.train_step import compile_ahead, make_train_step, step_config, step_key
from w2v_jax.workdir import Workdir

# on_epoch_end(epochs done, words, vectors, scores) -> whether to stop there.
EpochCallback = Callable[[int, list[str], np.ndarray, dict[str, float]], bool | None]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, exit_on_second_signal: bool = True,
                       on_epoch_end: EpochCallback | None = None) -> dict:
  """Trains word2vec as configured (resuming from the latest checkpoint), writes the outputs into workdir.

  A first SIGINT/SIGTERM checkpoints and stops; a second exits at once, or with exit_on_second_signal=False raises
  KeyboardInterrupt. on_epoch_end(epoch, words, vectors, scores) runs on process 0 after each epoch's checkpoint
  but the last (epochs counted from 1; scores empty where the epoch was not evaluated); a true result ends training
  there, and the outputs are that epoch's. Process 0 holds the workdir's lock for the whole run, so a second run
  on it is refused before it changes anything; the processes of one multi-host run share the workdir.
  """
  settings.validate_config(config)
  host_memory.pin_mmap_threshold()
  distributed.initialize(config)
  with workdir_lock.hold_for_run(workdir):
    run_dir = Workdir(workdir)
    run = build_run(config, run_dir, prepare_data(config, run_dir))
    with run.services(exit_on_second_signal):
      state = restore_or_start(run)
      while state.loop.epoch < config.epochs:
        if not train_epoch(run, state):
          return {"stopped_at_step": state.loop.step}
        if end_epoch(run, state, on_epoch_end):
          break
      jax.block_until_ready(state.tables)
    return finish(run, state)


# ---- 1. Data ----

def prepare_data(config: ml_collections.ConfigDict, workdir: Workdir) -> Data:
  """The workdir (made, or emptied of checkpoints with config.restart), the data, and the run's config.json."""
  workdir.make()
  if config.restart and distributed.is_main():
    checkpointing.remove_checkpoints(workdir.path)
  if config.input == "tfdata":  # TensorFlow's import (3-6 s, mostly loading its libraries) overlaps the counting
    in_background(importlib.import_module, "tensorflow")
  data = prepare.training_data(config, workdir)
  if distributed.is_main():
    with atomic_write(workdir.config) as f:
      f.write(config.to_json(indent=2))
  return data


# ---- 2. Run: mesh, step, checkpointer ----

@dataclasses.dataclass
class Run:
  """What the loop needs, set up once by build_run."""

  config: ml_collections.ConfigDict
  workdir: Workdir
  data: Data
  mesh: Mesh  # 1-D 'data' mesh; every array the step takes is placed on it, on one device too
  step: Callable  # (tables, scratch, metrics, tokens, lr, key, sampler) -> (tables, scratch, metrics), compiling
  key: jax.Array  # the run's key: step i draws with fold_in(key, i)
  identity: dict  # what a checkpoint must match to be resumed
  checkpointer: Checkpointer | None = None
  progress: Progress | None = None  # on process 0, once training starts
  stop: StopRequest | None = None

  @property
  def epoch_tokens(self) -> int:
    return self.data.vocab.total_tokens

  @property
  def total_words(self) -> int:
    return self.config.epochs * self.epoch_tokens

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def place_tables(self, tables: Tables) -> Tables:
    """[V, D] tables laid out as the step takes them (padded when sharded)."""
    return parallel.shard_tables(tables, self.mesh, self.config.table_layout)

  def new_metrics(self) -> jax.Array:
    """The step's [loss sum, examples] accumulator, at zero."""
    return parallel.replicate(jnp.zeros(2, jnp.float32), self.mesh)

  @contextlib.contextmanager
  def services(self, exit_on_second_signal: bool) -> Iterator[None]:
    """The checkpointer and the signal handlers for the block, then closed; a failure while closing is reported
    unless an earlier one (the first to report) ended the block."""
    self.checkpointer = Checkpointer(self.workdir.path, self.config.keep_checkpoints,
                                     self.config.checkpoint_every_steps, self.config.checkpoint_every_secs)
    self.stop = StopRequest(exit_on_second_signal)
    failed = True
    try:
      yield
      failed = False
    finally:
      self.stop.restore()
      try:
        self.checkpointer.close()
      except BaseException:
        failed = True
        raise
      finally:
        if self.progress is not None:
          try:
            self.progress.close()
          except UserError:
            if not failed:
              raise


def build_run(config: ml_collections.ConfigDict, workdir: Workdir, data: Data) -> Run:
  """The mesh and the jitted step, compiling in the background for the tables' layout while the run restores."""
  settings.check_memory(config, data.vocab.size)
  mesh = parallel.make_mesh(settings.mesh_devices(config))
  blocks = settings.update_blocks(config, mesh.size)
  shape_blocks = settings.shape_blocks(config, blocks)
  if mesh.size == 1:
    step = make_train_step(step_config(config), blocks, shape_blocks)
  else:
    step = parallel.make_parallel_train_step(step_config(config), mesh, config.table_layout, blocks, shape_blocks)
  identity = prepare.resume_identity(config, workdir.path)
  run = Run(config, workdir, data, mesh, step, jax.random.key(config.seed), identity)
  rows = parallel.padded_vocab_size(data.vocab.size, mesh, config.table_layout)
  layout = parallel.table_specs(config.table_layout)
  tables = Tables(*(jax.ShapeDtypeStruct((rows, config.dim), jnp.float32, sharding=NamedSharding(mesh, spec))
                    for spec in layout))
  tokens = jax.ShapeDtypeStruct((config.batch_size // config.block_length, config.block_length), jnp.int32,
                                sharding=parallel.batch_sharding(mesh))
  scratch = jax.ShapeDtypeStruct((rows,), jnp.float32,
                                 sharding=NamedSharding(mesh, parallel.scratch_spec(config.table_layout)))
  metrics = jax.ShapeDtypeStruct((2,), jnp.float32, sharding=run.replicated)
  lr = jax.ShapeDtypeStruct((), jnp.float32, sharding=run.replicated)
  run.step = compile_ahead(step, tables, scratch, metrics, tokens, lr, run.key, data.sampler)
  distributed.log(f"training {config.model}, dim {config.dim}, {config.epochs} epochs over {run.epoch_tokens} tokens "
                  f"on {mesh.size} {jax.devices()[0].platform} device(s)"
                  + (f" of {jax.process_count()} processes" if jax.process_count() > 1 else "")
                  + (f", tables {config.table_layout}" if mesh.size > 1 else ""))
  return run


# ---- 3. Restore or start ----

@dataclasses.dataclass
class TrainState:
  """What the loop carries: the arrays the step donates and returns, and where the loop stands."""

  tables: Tables
  scratch: jax.Array
  metrics: jax.Array
  loop: LoopState
  schedule: Callable  # the jitted learning rate of the words read, from loop.anchor
  first_step: int  # this process's first step (it waits for the compile)
  start_words: int  # words read when this process began (words_read)
  train_start: float  # when this process's training began (time.time())
  eval_seconds: float = 0.0
  scores: dict = dataclasses.field(default_factory=dict)
  trained: Tables | None = None  # the [V, D] tables at the latest epoch end
  vectors: np.ndarray | None = None  # their input table on the host, when evaluated or given to on_epoch_end
  exporting: concurrent.futures.Future | None = None  # the vectors files being written, from the last epoch's end


def restore_or_start(run: Run) -> TrainState:
  """The latest good checkpoint's tables and loop state, or fresh tables (as word2vec.c initialises them)."""
  config, vocab = run.config, run.data.vocab
  abstract = jax.ShapeDtypeStruct((vocab.size, config.dim), jnp.float32, sharding=run.replicated)
  restored = run.checkpointer.restore_latest(Tables(abstract, abstract), run.identity)
  if restored is None:
    tables, loop = Word2Vec(vocab.size, config.dim, rngs=nnx.Rngs(config.seed)).tables(), loop_state.start(config)
  else:
    tables, loop = restored[0], loop_state.resumed(restored[1], config, run.epoch_tokens)
    distributed.log(f"resumed from step {loop.step}: epoch {loop.epoch + 1}, {loop.words_read(run.epoch_tokens)} "
                    f"of {run.total_words} words")
  tables = run.place_tables(tables)
  host_memory.use_huge_pages(tables.input, tables.output)  # on CPU devices; kept by the donated steps
  scratch = parallel.shard_scratch(vocab.size, run.mesh, config.table_layout)
  # Each step's lr on the device (one small dispatch), replicated as the step takes it.
  schedule = jax.jit(loop_state.lr_schedule(loop.anchor, run.total_words, config.min_alpha),
                     out_shardings=run.replicated)
  if distributed.is_main():
    run.progress = Progress(run.workdir.tensorboard, config, run.total_words, loop.words_read(run.epoch_tokens))
  return TrainState(tables, scratch, run.new_metrics(), loop, schedule, loop.step, loop.words_read(run.epoch_tokens),
                    time.time())


# ---- 4. Train epochs ----

def train_epoch(run: Run, state: TrainState) -> bool:
  """The rest of the current epoch, step by step, with the periodic actions; False when a signal stopped training
  (at a step, after its checkpoint)."""
  loop, sampler = state.loop, run.data.sampler
  for fed in feed.epoch_input(run.config, run.data, loop.epoch, loop.positions, parallel.batch_sharding(run.mesh)):
    lr = state.schedule(np.float32(loop.words_read(run.epoch_tokens)))
    state.tables, state.scratch, state.metrics = run.step(state.tables, state.scratch, state.metrics, fed.tokens, lr,
                                                          step_key(run.key, loop.step), sampler)
    if run.progress is not None and loop.step == state.first_step:  # the first call waited for the compile
      run.progress.begin(loop.words_read(run.epoch_tokens))
    loop.step, loop.words, loop.positions = loop.step + 1, fed.words, fed.positions
    report(run, state, lr)
    save, stop = save_and_stop(run, loop.step)
    if save or stop:
      run.checkpointer.save(loop.step, parallel.unshard_tables(state.tables, run.data.vocab.size),
                            loop.meta(run.identity))
    if stop:
      run.checkpointer.wait()
      distributed.log(f"stopped at step {loop.step}; checkpoint saved in {run.checkpointer.directory}. "
                      "Run the same command to resume.")
      return False
  return True


def itstime(step: int, every: int) -> bool:
  """Whether a periodic action every `every` steps is due after `step` steps."""
  return step % every == 0


def report(run: Run, state: TrainState, lr: jax.Array) -> None:
  """The loss since the last report, checked finite, to the console and TensorBoard when each is due."""
  step, config = state.loop.step, run.config
  console, tensorboard = itstime(step, config.log_every_steps), itstime(step, config.tensorboard_every_steps)
  if not (console or tensorboard):
    return
  loss_sum, pairs = np.asarray(state.metrics)
  state.metrics = run.new_metrics()
  if not np.isfinite(loss_sum):
    raise UserError(f"the loss became {loss_sum} at step {step}; lower --config.alpha or raise --config.damping")
  if run.progress is not None:
    run.progress.report(step, state.loop.epoch, config.epochs, state.loop.words_read(run.epoch_tokens),
                        loss_sum / max(pairs, 1), float(lr), console, tensorboard)


def save_and_stop(run: Run, step: int) -> tuple[bool, bool]:
  """Whether to checkpoint and whether to stop now, the same on every process: clocks and signals are per
  process, so several processes agree on them only every log_every_steps."""
  if jax.process_count() == 1:
    return run.checkpointer.due(step), run.stop.requested
  if not itstime(step, run.config.log_every_steps):
    return run.checkpointer.due(step, by_time=False), False
  return distributed.any_process(run.checkpointer.due(step), run.stop.requested)


def end_epoch(run: Run, state: TrainState, on_epoch_end: EpochCallback | None) -> bool:
  """The epoch's checkpoint, its evaluation (every epoch, or the last), the export after the last, and
  on_epoch_end; whether that callback ended training."""
  config, vocab, loop = run.config, run.data.vocab, state.loop
  loop.next_epoch()
  state.trained = parallel.unshard_tables(state.tables, vocab.size)
  run.checkpointer.save(loop.step, state.trained, loop.meta(run.identity))
  last = loop.epoch == config.epochs
  evaluate = config.eval_every_epoch or last
  if evaluate or on_epoch_end is not None:
    state.vectors = Word2Vec.of(state.trained).word_vectors()
  if last and distributed.is_main():  # written while the last evaluation runs
    state.exporting = in_background(Word2Vec.export, run.workdir, vocab.words, state.vectors)
  if evaluate and distributed.is_main():
    eval_start = time.time()
    state.scores = evaluation.headline_scores(evaluation.evaluate_all(evaluation.Embeddings(vocab.words,
                                                                                            state.vectors)))
    state.eval_seconds += time.time() - eval_start
    run.progress.scalars("eval", state.scores, loop.step)
    distributed.log(f"epoch {loop.epoch}: " + "  ".join(f"{k} {v:.3f}" for k, v in state.scores.items()))
  if on_epoch_end is None or last:
    return False
  done = distributed.is_main() and bool(on_epoch_end(loop.epoch, vocab.words, state.vectors,
                                                     state.scores if evaluate else {}))
  if distributed.any_process(done)[0]:
    distributed.log(f"on_epoch_end ended training after epoch {loop.epoch} of {config.epochs}")
    return True
  return False


# ---- 5. Finish ----

def finish(run: Run, state: TrainState) -> dict:
  """The summary (results.json), the vectors files and the probe words' neighbours; process 0 writes them, every
  process takes part in gathering the tables."""
  elapsed = time.time() - state.train_start - state.eval_seconds  # training time, as the peers report it
  if state.trained is None:  # resumed after the last epoch: no epoch end ran here
    state.trained = parallel.unshard_tables(state.tables, run.data.vocab.size)
  if state.vectors is None:  # not evaluated (nor given to on_epoch_end) at the epoch end
    state.vectors = Word2Vec.of(state.trained).word_vectors()
  trained = state.loop.words_read(run.epoch_tokens) - state.start_words
  summary = {"train_seconds": elapsed, "words_per_sec": trained / max(elapsed, 1e-9),
             "eval_seconds": state.eval_seconds, "steps": state.loop.step,
             "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             "tables_sha256": tables_sha256(state.vectors, distributed.to_host(state.trained.output)), **state.scores}
  if not distributed.is_main():
    return summary
  if state.exporting is None:  # resumed after the last epoch, or on_epoch_end ended training early
    Word2Vec.export(run.workdir, run.data.vocab.words, state.vectors)
  else:
    state.exporting.result()  # its errors (a full disk) are raised here
  with atomic_write(run.workdir.results) as f:
    json.dump({k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()},
              f, indent=2)
  distributed.log(f"trained {trained} words in {elapsed:.1f}s ({summary['words_per_sec'] / 1e3:.0f}k words/s; "
                  f"evaluation {state.eval_seconds:.1f}s besides); vectors in {run.workdir.vectors_txt} and "
                  "vectors.bin")
  evaluation.log_neighbors(evaluation.Embeddings(run.data.vocab.words, state.vectors), run.config.probe_words)
  return summary


def tables_sha256(input_table: np.ndarray, output_table: np.ndarray) -> str:
  """sha256 of both tables as this process holds them (on the host): equal on every process of a correct run."""
  digest = hashlib.sha256()
  for x in (input_table, output_table):
    digest.update(x.tobytes())
  return digest.hexdigest()
