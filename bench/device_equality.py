"""8 fake CPU devices against one at a config's update size: the largest table difference after a few steps.

python bench/device_equality.py [--config configs/accelerator.py] [--devices 8] [--vocab 67873] [--steps 3]
Each global update (65,536 tokens at the accelerator config) is split over the devices; both table layouts
are run from the same tables, batches and keys as the single-device step, on a synthetic Zipf corpus.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="configs/accelerator.py")
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--vocab", type=int, default=67873)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={args.devices}"

  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx

  from bench import common
  from bench.step_report import load_config
  from w2v_jax import parallel, settings
  from w2v_jax.model import Word2Vec
  from w2v_jax.train_step import make_train_step, new_scratch, step_config, step_key

  config = load_config(args.config)
  cfg = step_config(config)
  sampler, batches = common.zipf_inputs(args.vocab, config.batch_size, config.block_length, args.steps, config)
  key, lr = jax.random.key(config.seed), np.float32(0.025)

  def train(step, tables, scratch, metrics):
    for i, batch in enumerate(batches):
      tables, scratch, metrics = step(tables, scratch, metrics, jnp.asarray(batch), lr, step_key(key, i), sampler)
    return tables

  blocks = settings.update_blocks(config, 1)
  initial = Word2Vec(args.vocab, config.dim, rngs=nnx.Rngs(0)).tables()
  want = train(make_train_step(cfg, blocks, settings.shape_blocks(config, blocks)),
               jax.tree.map(jnp.copy, initial), new_scratch(args.vocab), jnp.zeros(2))
  mesh = parallel.make_mesh(args.devices)
  blocks = settings.update_blocks(config, args.devices)
  print(f"config {args.config}: {config.batch_size} tokens per step, {blocks * config.block_length} per update, "
        f"{args.steps} steps, V {args.vocab}, dim {config.dim}; 1 device against {args.devices}")
  scale = float(jnp.max(jnp.abs(want.output)))
  for layout in parallel.TABLE_LAYOUTS:
    step = parallel.make_parallel_train_step(cfg, mesh, layout, blocks, settings.shape_blocks(config, blocks))
    got = train(step, parallel.shard_tables(jax.tree.map(jnp.copy, initial), mesh, layout),
                parallel.shard_scratch(args.vocab, mesh, layout), parallel.replicate(jnp.zeros(2), mesh))
    got = parallel.unshard_tables(got, args.vocab)
    diffs = [float(jnp.max(jnp.abs(g - w))) for g, w in ((got.input, want.input), (got.output, want.output))]
    print(f"  {layout:10} max |difference|: input {diffs[0]:.2e}, output {diffs[1]:.2e} "
          f"(largest output entry {scale:.3f})")


if __name__ == "__main__":
  main()
