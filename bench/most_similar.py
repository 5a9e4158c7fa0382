"""most_similar over the whole vocabulary: w2v_jax.KeyedVectors against gensim's, on the same vectors file.

python bench/most_similar.py --vectors RUN/vectors.bin [--queries 500]
Each query is most_similar(positive=[a, b], negative=[c], topn=10) (3CosAdd) over random frequent words; the two
systems' queries are interleaved, so they see the same load. Reports the median latency of one query and the
queries per second of the sequence, and how often both return the same top word.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--vectors", required=True)
  parser.add_argument("--queries", type=int, default=500)
  args = parser.parse_args()

  import numpy as np
  from gensim.models import KeyedVectors as GensimVectors

  import w2v_jax

  ours = w2v_jax.load(args.vectors)
  theirs = GensimVectors.load_word2vec_format(args.vectors, binary=args.vectors.endswith(".bin"))
  rng = random.Random(0)
  frequent = ours.index_to_key[:10000]
  queries = [rng.sample(frequent, 3) for _ in range(args.queries)]
  for a, b, c in queries[:5]:  # warm-up: compile, and gensim's norms
    ours.most_similar(positive=[a, b], negative=[c])
    theirs.most_similar(positive=[a, b], negative=[c])
  times = {"w2v_jax": [], "gensim": []}
  same = 0
  for a, b, c in queries:
    start = time.perf_counter()
    mine = ours.most_similar(positive=[a, b], negative=[c], topn=10)
    times["w2v_jax"].append(time.perf_counter() - start)
    start = time.perf_counter()
    reference = theirs.most_similar(positive=[a, b], negative=[c], topn=10)
    times["gensim"].append(time.perf_counter() - start)
    same += mine[0][0] == reference[0][0]
  print(f"{args.vectors}: {len(ours)} words, dim {ours.vector_size}; {args.queries} queries of 3 words, topn 10; "
        f"load {os.getloadavg()[0]:.2f}")
  for name, values in times.items():
    print(f"  {name:8} median latency {1e3 * np.median(values):6.2f} ms   {len(values) / sum(values):7.0f} queries/s")
  print(f"  same top word in {same} of {args.queries} queries")


if __name__ == "__main__":
  main()
