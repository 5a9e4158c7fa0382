"""What one device does per 1M tokens at a config: sequential updates, gather/scatter ops, and the step's wall time.

python bench/step_report.py [--config configs/accelerator.py] [--vocab 67873] [--steps 3]
Counts come from the lowered (StableHLO) update and per-step parts, on a synthetic Zipf batch over --vocab words;
the wall time is the jitted step on this machine's first device (minimum of --steps after a warm-up).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from bench import common  # noqa: E402
from w2v_jax import settings, train_step  # noqa: E402
from w2v_jax.model import Word2Vec  # noqa: E402

MILLION = 1 << 20
OPS = ("gather", "scatter", "dot_general", "while")


def load_config(path: str):
  """get_config() of a config file."""
  spec = importlib.util.spec_from_file_location("config_module", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def op_counts(lowered) -> dict[str, int]:
  """Occurrences of each op of OPS in a lowered computation's StableHLO text."""
  text = lowered.as_text()
  return {op: len(re.findall(rf"stablehlo\.{op}\b", text)) for op in OPS}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="configs/accelerator.py")
  parser.add_argument("--vocab", type=int, default=67873)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  config = load_config(args.config)
  cfg = train_step.step_config(config)
  blocks = settings.update_blocks(config, 1)
  shape_blocks = settings.shape_blocks(config, blocks)
  update_tokens = blocks * config.block_length
  sampler, batches = common.zipf_inputs(args.vocab, config.batch_size, config.block_length, 1, config)
  tokens = jnp.asarray(batches[0])
  tables = Word2Vec(args.vocab, config.dim, rngs=nnx.Rngs(0)).tables()
  key = jax.random.key(0)

  shrink, negatives = jax.jit(functools.partial(train_step.draw, cfg))(key, tokens, sampler)
  shape = jax.jit(functools.partial(train_step.curvature_shape, cfg))(tables, sampler)
  update = jax.jit(functools.partial(train_step.update_step, cfg))
  scratch = train_step.new_scratch(args.vocab)
  per_update = op_counts(update.lower(shape, tables, scratch, jnp.zeros(2), tokens[:blocks], shrink[:blocks],
                                      negatives[:blocks], np.float32(0.01)))

  per_step = op_counts(jax.jit(functools.partial(train_step.draw, cfg)).lower(key, tokens, sampler))
  per_shape = op_counts(jax.jit(functools.partial(train_step.curvature_shape, cfg)).lower(tables, sampler))
  steps_per_million = MILLION / config.batch_size
  shapes_per_million = MILLION / (shape_blocks * config.block_length)
  updates_per_million = MILLION / update_tokens
  print(f"config {args.config}: batch {config.batch_size} tokens, {update_tokens} tokens per update, "
        f"{updates_per_million:g} sequential updates and {shapes_per_million:g} curvature shapes per 1M tokens, "
        f"damping {config.damping}, "
        f"curvature_rank {config.curvature_rank}")
  for op in OPS:
    total = (per_update[op] * updates_per_million + per_step[op] * steps_per_million
             + per_shape[op] * shapes_per_million)
    print(f"  {op:12} per update {per_update[op]:3d}  per shape {per_shape[op]:3d}  per step (the draw) "
          f"{per_step[op]:3d}  per 1M tokens {total:7.1f}")

  step = train_step.make_train_step(cfg, blocks, shape_blocks)
  metrics = jnp.zeros(2)
  tables, scratch, metrics = step(tables, scratch, metrics, tokens, np.float32(0.01), key, sampler)
  jax.block_until_ready(tables)
  best = float("inf")
  for i in range(args.steps):
    start = time.perf_counter()
    tables, scratch, metrics = step(tables, scratch, metrics, tokens, np.float32(0.01), train_step.step_key(key, i),
                                    sampler)
    jax.block_until_ready(tables)
    best = min(best, time.perf_counter() - start)
  print(f"  step wall time on {jax.devices()[0].device_kind}: {best * 1e3:.1f} ms per {config.batch_size} tokens "
        f"({config.batch_size / best / 1e6:.2f}M batch tokens/s; {common.load()})")


if __name__ == "__main__":
  main()
