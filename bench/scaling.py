"""Step time against vocabulary size and dim; input pipeline alone against the step alone (which one limits).

python bench/scaling.py [--vocab 10000,100000,1000000,3000000] [--dims 100,300] [--workdir RUN]
The first part times the jitted step on synthetic Zipf batches (its cost must not grow with V). With --workdir
(a run of train.py: vocab.tsv, tokens.i32), the second part reads one epoch through the tf.data and numpy
pipelines with no training, then times the step alone on that run's first batches, in corpus tokens/s both.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from bench import common  # noqa: E402
from configs import text8  # noqa: E402
from w2v_jax import feed, host_memory, input_pipeline  # noqa: E402
from w2v_jax.model import Word2Vec  # noqa: E402
from w2v_jax.train_step import Sampler, make_sampler, new_scratch, step_key  # noqa: E402
from w2v_jax.vocab import Vocab, saved_token_cache  # noqa: E402


def time_step(vocab_size: int, dim: int, model: str, sampler: Sampler, batches: list[np.ndarray],
              steps: int) -> float:
  """Median seconds per step of the donated, jitted step over fresh [vocab_size, dim] tables (on huge pages,
  as the trainer lays them out), cycling batches."""
  tables = Word2Vec(vocab_size, dim, rngs=nnx.Rngs(0)).tables()
  host_memory.use_huge_pages(tables.input, tables.output)  # as the trainer does
  step = common.default_step(model, batches[0].size, batches[0].shape[1])
  scratch, metrics, key, lr = new_scratch(vocab_size), jax.numpy.zeros(2), jax.random.key(0), np.float32(0.025)
  times = []
  for i in range(steps + 1):  # the first one compiles
    t0 = time.perf_counter()
    tables, scratch, metrics = step(tables, scratch, metrics, batches[i % len(batches)], lr, step_key(key, i), sampler)
    jax.block_until_ready(tables)
    times.append(time.perf_counter() - t0)
  return float(np.median(times[1:]))


def vocab_scaling(args: argparse.Namespace) -> None:
  """Prints ms/step and tokens/s for every (dim, vocab) pair on synthetic Zipf batches."""
  print(f"step time against vocabulary size and dim: {jax.devices()[0].device_kind}, batch {args.batch_size} "
        f"tokens, {args.model}, median of {args.steps} steps")
  print(f"{'vocab':>10} {'dim':>5} {'ms/step':>9} {'tokens/s':>10} {'tables MB':>10}  load (1/5/15 min)")
  for dim in map(int, args.dims.split(",")):
    for vocab_size in map(int, args.vocab.split(",")):
      sampler, batches = common.zipf_inputs(vocab_size, args.batch_size, args.block_length)
      t = time_step(vocab_size, dim, args.model, sampler, batches, args.steps)
      print(f"{vocab_size:>10} {dim:>5} {t * 1e3:>9.2f} {args.batch_size / t:>10.0f} "
            f"{2 * vocab_size * dim * 4 / 1e6:>10.0f}  {common.load()}", flush=True)


def input_vs_step(args: argparse.Namespace) -> None:
  """Prints corpus tokens/s of each input pipeline alone and of the step alone on the run's real batches."""
  config = text8.get_config()
  config.batch_size, config.block_length, config.dim, config.model = (args.batch_size, args.block_length, args.dim,
                                                                      args.model)
  vocab = Vocab.load(args.workdir)
  stream = input_pipeline.read_token_cache(saved_token_cache(args.workdir))
  print(f"\ninput pipeline alone vs step alone: {args.workdir}, V={vocab.size}, {vocab.total_tokens} corpus tokens,"
        f" batch {args.batch_size}, dim {args.dim}")
  rates = {}
  for name in ("tfdata", "numpy"):
    config.input = name
    t0 = time.perf_counter()
    n = sum(1 for _ in feed.epoch_batches(config, vocab, stream, 0, 0, 0, args.batch_size))
    dt = time.perf_counter() - t0
    rates[name] = vocab.total_tokens / dt
    print(f"{name + ' input':14} {dt:7.2f} s/epoch {rates[name] / 1e6:8.2f}M corpus tokens/s  "
          f"({n} batches, {n * args.batch_size / dt / 1e6:.2f}M batch tokens/s)  {common.load()}", flush=True)
  corpus_per_batch_token = vocab.total_tokens / (n * args.batch_size)  # subsampling and padding shrink the stream
  epoch = feed.epoch_batches(config, vocab, stream, 0, 0, 0, args.batch_size)
  batches = [b["tokens"] for _, b in zip(range(8), epoch)]
  sampler = make_sampler(vocab.counts, config.ns_exponent, config.sample, config.negative, config.curvature_words)
  t = time_step(vocab.size, args.dim, args.model, sampler, batches, args.steps)
  step_rate = args.batch_size / t * corpus_per_batch_token
  print(f"{'step alone':14} {t * 1e3:7.2f} ms/step {step_rate / 1e6:8.2f}M corpus tokens/s  "
        f"({args.batch_size / t / 1e6:.2f}M batch tokens/s)  {common.load()}")
  slowest = min(rates, key=rates.get)
  limit = "the step" if step_rate < rates[slowest] else f"the {slowest} input"
  print(f"slowest input ({slowest}) / step = {rates[slowest] / step_rate:.1f}: {limit} limits training")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--vocab", default="10000,100000,1000000,3000000", help="empty: skip the vocabulary sweep")
  parser.add_argument("--dims", default="100,300")
  parser.add_argument("--workdir", default="", help="a train.py run to time input against the step on")
  parser.add_argument("--dim", type=int, default=100, help="dim of the step timed against the input")
  parser.add_argument("--batch_size", type=int, default=4096)
  parser.add_argument("--block_length", type=int, default=256)
  parser.add_argument("--model", default="skipgram")
  parser.add_argument("--steps", type=int, default=20)
  args = parser.parse_args()
  if args.vocab:
    vocab_scaling(args)
  if args.workdir:
    input_vs_step(args)


if __name__ == "__main__":
  main()
