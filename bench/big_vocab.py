"""A 3M-word × 300 vocabulary on one host: initialisation, steps and a checkpoint, with host memory after each.

python bench/big_vocab.py [--vocab 3000000] [--dim 300] [--steps 10] [--workdir /tmp/w2v_big] [--layout sharded]
With --layout sharded (or replicated) the tables are laid out over all visible devices, e.g. 4 fake CPU devices
with XLA_FLAGS=--xla_force_host_platform_device_count=4.
Zipf-distributed tokens (no corpus needed); the checkpoint is written to --workdir and removed afterwards.
"""

import argparse
import os
import resource
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from w2v_jax import checkpointing, parallel, settings  # noqa: E402
from w2v_jax.model import Word2Vec  # noqa: E402
from w2v_jax.train_step import make_sampler, new_scratch, step_config, step_key  # noqa: E402


def memory() -> str:
  """Current and peak resident memory of this process."""
  with open("/proc/self/status") as f:
    rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return f"RSS {rss / 2**20:.1f} GiB (peak {peak / 2**20:.1f} GiB)"


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--vocab", type=int, default=3_000_000)
  parser.add_argument("--dim", type=int, default=300)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--batch_size", type=int, default=4096)
  parser.add_argument("--workdir", default="/tmp/w2v_big")
  parser.add_argument("--layout", default="single", help="single (one device), or a table layout over all devices")
  args = parser.parse_args()
  print(f"{len(jax.devices())} x {jax.devices()[0].device_kind} ({args.layout}), V={args.vocab}, D={args.dim}: "
        "each table "
        f"{args.vocab * args.dim * 4 / 1e9:.2f} GB; load average {os.getloadavg()[0]:.2f}", flush=True)

  t0 = time.perf_counter()
  tables = jax.block_until_ready(Word2Vec(args.vocab, args.dim, rngs=nnx.Rngs(0)).tables())
  print(f"init: {time.perf_counter() - t0:.1f}s, {memory()}", flush=True)

  counts = np.maximum((1e9 / np.arange(1, args.vocab + 1)).astype(np.int64), 5)
  sampler = make_sampler(counts, 0.75, 1e-3)
  step = common.default_step("skipgram", args.batch_size, 1024)
  scratch = new_scratch(args.vocab)
  if args.layout != "single":
    mesh = parallel.make_mesh()
    t0 = time.perf_counter()
    tables = jax.block_until_ready(parallel.shard_tables(tables, mesh, args.layout))
    scratch = parallel.shard_scratch(args.vocab, mesh, args.layout)
    print(f"laid out on {mesh.size} devices: {time.perf_counter() - t0:.1f}s, {memory()}", flush=True)
    config = common.default_config("skipgram", args.batch_size, 1024)
    blocks = settings.update_blocks(config, mesh.size)
    step = parallel.make_parallel_train_step(step_config(config), mesh, args.layout, blocks,
                                             settings.shape_blocks(config, blocks))
  rng = np.random.default_rng(0)
  ranks = rng.zipf(1.1, size=(args.steps + 1, args.batch_size // 1024, 1024))
  batches = np.minimum(ranks - 1, args.vocab - 1).astype(np.int32)
  metrics, key = jnp.zeros(2), jax.random.key(0)
  t0 = time.perf_counter()
  tables, scratch, metrics = jax.block_until_ready(
      step(tables, scratch, metrics, batches[0], np.float32(0.025), key, sampler))
  print(f"first step (compile): {time.perf_counter() - t0:.1f}s, {memory()}", flush=True)
  times = []
  for i in range(args.steps):
    t0 = time.perf_counter()
    tables, scratch, metrics = jax.block_until_ready(
        step(tables, scratch, metrics, batches[i + 1], np.float32(0.025), step_key(key, i), sampler))
    times.append(time.perf_counter() - t0)
  ms = 1e3 * float(np.median(times))
  print(f"{args.steps} steps of {args.batch_size} tokens: median {ms:.1f} ms/step "
        f"({args.batch_size / ms * 1e3:.0f} tokens/s), {memory()}", flush=True)

  shutil.rmtree(args.workdir, ignore_errors=True)
  checkpointer = checkpointing.Checkpointer(args.workdir, 1, 0, 0)
  t0 = time.perf_counter()
  checkpointer.save(args.steps, parallel.unshard_tables(tables, args.vocab), {"epoch": 0})
  blocked = time.perf_counter() - t0
  checkpointer.close()
  size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(checkpointer.directory) for f in files)
  print(f"checkpoint: training blocked {blocked:.1f}s, on disk after {time.perf_counter() - t0:.1f}s, "
        f"{size / 1e9:.2f} GB; {memory()}", flush=True)
  shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
  main()
