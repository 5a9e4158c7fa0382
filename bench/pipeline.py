"""Input pipeline throughput alone (no training): tokens/s of one epoch from the token cache, tf.data and numpy.

python bench/pipeline.py --workdir runs/wiki   (a workdir where train.py already wrote vocab.tsv and tokens.i32)
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from w2v_jax import input_pipeline  # noqa: E402
from w2v_jax.vocab import Vocab  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--batch_size", type=int, default=4096)
  parser.add_argument("--block_length", type=int, default=1024)
  parser.add_argument("--sample", type=float, default=1e-3)
  args = parser.parse_args()
  vocab = Vocab.load(args.workdir)
  stream = input_pipeline.read_token_cache(os.path.join(args.workdir, "tokens.i32"))
  common = (vocab, args.sample, 0, 0, args.batch_size, args.block_length)
  for name in ("tfdata", "numpy"):
    t0 = time.perf_counter()
    if name == "tfdata":
      batches = input_pipeline.tf_batches(input_pipeline.tf_cached_ids(stream), *common).as_numpy_iterator()
    else:
      batches = input_pipeline.numpy_batches(stream, *common)
    n = sum(1 for _ in batches)
    dt = time.perf_counter() - t0
    print(f"{name:7s} {n} batches in {dt:.2f}s: {vocab.total_tokens / dt / 1e6:.1f}M corpus tokens/s, "
          f"{n * args.batch_size / dt / 1e6:.1f}M batch tokens/s")


if __name__ == "__main__":
  main()
