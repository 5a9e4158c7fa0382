"""Embedding quality of w2v_jax, gensim and word2vec.c, same corpus and settings, all scored by eval.py.

python bench/quality.py [--corpus ../shared/data/wiki2015_text8like.zip] [--epochs 5] [--systems ...]
Skip-gram, dim 100, window 5, negative 5, sample 1e-3, min_count 5; analogy = Google set, 3CosAdd
over the 30,000 most frequent words; similarity = Spearman, pairs with unknown words skipped.
Each system's scores are also left as JSON beside its vectors (eval.py --output).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.throughput import train_systems  # noqa: E402


def scores(vectors: str) -> dict[str, float]:
  """WordSim-353, SimLex-999 Spearman and Google analogy accuracy (semantic/syntactic/all) from eval.py."""
  output = vectors + ".scores.json"
  common.run([sys.executable, "eval.py", f"--vectors={vectors}", f"--output={output}"])
  with open(output) as f:
    results = json.load(f)
  analogy = results["analogy"]["questions-words"]
  return {"ws353": results["similarity"]["wordsim353"]["spearman"],
          "simlex": results["similarity"]["simlex999"]["spearman"],
          "sem": analogy["semantic"], "syn": analogy["syntactic"], "all": analogy["accuracy"]}


def main():
  args = common.parse_args(__doc__, epochs=5)
  runs = train_systems(args)
  print(f"{'system':40} {'WS353':>6} {'SimLex':>6} {'sem':>6} {'syn':>6} {'all':>6} {'raw words/s':>11}")
  for r in runs:
    s = scores(r.vectors)
    print(f"{r.name:40} {s['ws353']:6.3f} {s['simlex']:6.3f} {s['sem']:6.3f} {s['syn']:6.3f} {s['all']:6.3f} "
          f"{r.words_per_sec:>11.0f}")


if __name__ == "__main__":
  main()
