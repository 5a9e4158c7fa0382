"""Embedding quality of w2v_jax beside gensim, same corpus and settings, both scored by w2v_jax.evaluation.

python bench/quality.py --corpus ../shared/data/wiki2015_text8like.zip [--epochs 5] [--skip_gensim]
Skip-gram, dim 100, window 5, negative 5, sample 1e-3, min_count 5; analogy = Google set, 3CosAdd
over the 30,000 most frequent words; similarity = Spearman, pairs with unknown words skipped.
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.throughput import GENSIM, corpus_lines, parse_args, train_command  # noqa: E402
from w2v_jax import evaluation, word2vec_format  # noqa: E402


def scores(path: str) -> dict[str, float]:
  """WordSim-353, SimLex-999 Spearman and Google analogy accuracy (semantic/syntactic/all)."""
  words, vectors = word2vec_format.read_word2vec(path)
  results = evaluation.evaluate_all(evaluation.Embeddings(words, vectors))
  analogy = results["analogy"]["questions-words"]
  return {"ws353": results["similarity"]["wordsim353"]["spearman"],
          "simlex": results["similarity"]["simlex999"]["spearman"],
          "sem": analogy["semantic"], "syn": analogy["syntactic"], "all": analogy["accuracy"]}


def main():
  args = parse_args(__doc__, epochs=5)
  tmp = tempfile.mkdtemp(prefix="w2v_quality_")
  runs = []
  subprocess.run(train_command(args, f"{tmp}/w2v_jax"), cwd=ROOT, check=True, capture_output=True)
  runs.append(("w2v_jax " + args.extra, f"{tmp}/w2v_jax/vectors.bin"))
  if not args.skip_gensim:
    lines = f"{tmp}/corpus_1000.txt"
    corpus_lines(args.corpus, lines)
    subprocess.run([sys.executable, "-c", GENSIM, lines, str(args.epochs), str(args.workers), f"{tmp}/g.bin"],
                   cwd=ROOT, check=True, capture_output=True)
    runs.append((f"gensim corpus_file workers={args.workers}", f"{tmp}/g.bin"))
  print(f"corpus {args.corpus}, {args.epochs} epochs")
  print(f"{'system':40} {'WS353':>6} {'SimLex':>6} {'sem':>6} {'syn':>6} {'all':>6}")
  for name, path in runs:
    s = scores(path)
    print(f"{name:40} {s['ws353']:6.3f} {s['simlex']:6.3f} {s['sem']:6.3f} {s['syn']:6.3f} {s['all']:6.3f}")


if __name__ == "__main__":
  main()
