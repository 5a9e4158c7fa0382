"""Data-parallel step on fake CPU devices: tokens/s on 1, 2, 4, 8 devices, and step time vs vocabulary size.

python bench/parallel_scaling.py [--devices 1,2,4,8] [--vocab 100000] [--vocab_sizes 10000,1000000]

Each device count runs in its own subprocess (the count is fixed when JAX starts), its layouts'
steps interleaved; with 2 devices the single-device step (on device 0) runs alongside, the A/B for
"does a 2-core host gain from 2 CPU devices". Fake CPU devices share the host's cores, so this shows
that the code path does not serialise or grow with V, not a real speed-up; 'cpu/wall' > 1 means
several cores were busy during a step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402


def time_layouts(vocab_size: int, args: argparse.Namespace, layouts: list[str]) -> list[dict]:
  """Median wall and process-CPU seconds per step for each layout ('single': make_train_step on one device).

  The layouts' steps are interleaved, so they see the same load from anything else on the machine.
  """
  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx

  from w2v_jax import parallel, settings
  from w2v_jax.model import Word2Vec
  from w2v_jax.train_step import make_train_step, new_scratch, step_config, step_key

  lr = np.float32(0.025)
  sampler, batches = common.zipf_inputs(vocab_size, args.batch_size, args.block_length)
  config = common.default_config(args.model, args.batch_size, args.block_length)
  cfg = step_config(config)
  mesh = parallel.make_mesh()
  steps, state = {}, {}
  for layout in layouts:
    tables = Word2Vec(vocab_size, args.dim, rngs=nnx.Rngs(0)).tables()
    blocks = settings.update_blocks(config, 1 if layout == "single" else mesh.size)
    shape_blocks = settings.shape_blocks(config, blocks)
    if layout == "single":
      steps[layout] = make_train_step(cfg, blocks, shape_blocks)
      state[layout] = tables, new_scratch(vocab_size), jnp.zeros(2)
    else:
      steps[layout] = parallel.make_parallel_train_step(cfg, mesh, layout, blocks, shape_blocks)
      state[layout] = (parallel.shard_tables(tables, mesh, layout), parallel.shard_scratch(vocab_size, mesh, layout),
                       parallel.replicate(jnp.zeros(2), mesh))
  key = jax.random.key(0)
  walls, cpus = {layout: [] for layout in layouts}, {layout: [] for layout in layouts}
  for i in range(args.steps + 2):  # the first two compile and warm up
    key_i = step_key(key, i)
    for layout in layouts:
      wall, cpu = time.perf_counter(), time.process_time()
      state[layout] = steps[layout](*state[layout], batches[i % 4], lr, key_i, sampler)
      jax.block_until_ready(state[layout])
      if i >= 2:
        walls[layout].append(time.perf_counter() - wall)
        cpus[layout].append(time.process_time() - cpu)
  rows = []
  for layout in layouts:
    wall, cpu = float(np.median(walls[layout])), float(np.median(cpus[layout]))
    rows.append({"devices": 1 if layout == "single" else mesh.size, "layout": layout, "vocab": vocab_size,
                 "ms": wall * 1e3, "tokens_s": args.batch_size / wall, "cpu_wall": cpu / wall})
  return rows


def run_worker(devices: int, argv: list[str]) -> list[dict]:
  """This script in a subprocess with `devices` fake CPU devices; returns its JSON rows."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices), TF_CPP_MIN_LOG_LEVEL="3")
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
  proc = subprocess.run([sys.executable, __file__, *argv], env=env, capture_output=True, text=True, check=False)
  if proc.returncode:
    sys.exit(f"worker with {devices} devices failed:\n{proc.stderr[-4000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def print_rows(rows: list[dict]) -> None:
  for r in rows:
    print(f"{r['devices']:>7} {r['layout']:>10} {r['vocab']:>9} {r['ms']:>9.1f} {r['tokens_s']:>10.0f} "
          f"{r['cpu_wall']:>8.2f}", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--devices", default="1,2,4,8")
  parser.add_argument("--vocab", type=int, default=100_000, help="vocabulary of the device-count sweep")
  parser.add_argument("--vocab_sizes", default="10000,1000000", help="vocabularies compared on the most devices")
  parser.add_argument("--dim", type=int, default=100)
  parser.add_argument("--batch_size", type=int, default=4096)
  parser.add_argument("--block_length", type=int, default=512)
  parser.add_argument("--model", default="skipgram")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)  # 'layouts:<vocab>:<layout,...>'
  args = parser.parse_args()
  if args.worker:
    _, vocab, layouts = args.worker.split(":")
    print(json.dumps(time_layouts(int(vocab), args, layouts.split(","))))
    return

  common = [f"--{k}={getattr(args, k)}" for k in ("dim", "batch_size", "block_length", "model", "steps")]
  print(f"{os.cpu_count()} CPU cores, batch {args.batch_size} tokens ({args.batch_size // args.block_length} blocks),"
        f" D={args.dim}, {args.model}; median of {args.steps} steps")
  header = f"{'devices':>7} {'layout':>10} {'vocab':>9} {'ms/step':>9} {'tokens/s':>10} {'cpu/wall':>8}"
  print(f"\nscaling with the number of devices\n{header}", flush=True)
  counts = [int(n) for n in args.devices.split(",")]
  for n in counts:
    layouts = ("single," if n <= 2 else "") + "replicated,sharded"  # 2: does a 2-core host gain from 2 devices?
    print_rows(run_worker(n, [*common, f"--worker=layouts:{args.vocab}:{layouts}"]))
  print(f"\nstep time against vocabulary size on {max(counts)} devices\n{header}", flush=True)
  for vocab in map(int, args.vocab_sizes.split(",")):
    print_rows(run_worker(max(counts), [*common, f"--worker=layouts:{vocab}:replicated,sharded"]))


if __name__ == "__main__":
  main()
