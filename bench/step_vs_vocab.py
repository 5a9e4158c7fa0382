"""Step time against vocabulary size (and dim) at a fixed batch: the step must not grow with V.

python bench/step_vs_vocab.py [--vocab 10000,1000000] [--dims 100] [--batch_size 4096]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from w2v_jax import sampling
from w2v_jax.model import Word2Vec
from w2v_jax.train_step import Sampler, StepConfig, make_train_step


def time_step(vocab_size: int, dim: int, batch_size: int, block_length: int, model: str, steps: int) -> float:
  """Median seconds per step on Zipf-distributed tokens drawn from a vocabulary of vocab_size."""
  rng = np.random.default_rng(0)
  counts = np.maximum((1e7 / np.arange(1, vocab_size + 1)).astype(np.int64), 5)
  thresholds, alias = sampling.alias_table(sampling.negative_weights(counts, 0.75))
  sampler = Sampler(jnp.asarray(thresholds), jnp.asarray(alias))
  tables = Word2Vec(vocab_size, dim, rngs=nnx.Rngs(0)).tables()
  step = make_train_step(StepConfig(model, 5, 5, duplicate_cap=8.0))
  probs = counts / counts.sum()
  batches = [rng.choice(vocab_size, size=(batch_size // block_length, block_length), p=probs).astype(np.int32)
             for _ in range(4)]
  metrics, key = jnp.zeros(2), jax.random.key(0)
  tables, metrics = step(tables, metrics, batches[0], np.float32(0.025), key, sampler)
  jax.block_until_ready(tables)
  times = []
  for i in range(steps):
    t0 = time.perf_counter()
    tables, metrics = step(tables, metrics, batches[i % 4], np.float32(0.025), jax.random.fold_in(key, i), sampler)
    jax.block_until_ready(tables)
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--vocab", default="10000,1000000")
  parser.add_argument("--dims", default="100")
  parser.add_argument("--batch_size", type=int, default=4096)
  parser.add_argument("--block_length", type=int, default=1024)
  parser.add_argument("--model", default="skipgram")
  parser.add_argument("--steps", type=int, default=30)
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind}, batch {args.batch_size} tokens, {args.model}")
  print(f"{'vocab':>10} {'dim':>5} {'ms/step':>9} {'tokens/s':>10}")
  for dim in map(int, args.dims.split(",")):
    for vocab_size in map(int, args.vocab.split(",")):
      t = time_step(vocab_size, dim, args.batch_size, args.block_length, args.model, args.steps)
      print(f"{vocab_size:>10} {dim:>5} {t * 1e3:>9.2f} {args.batch_size / t:>10.0f}", flush=True)


if __name__ == "__main__":
  main()
