"""Evaluates word2vec vectors on word similarity and analogies, and answers queries.

  python eval.py --vectors vectors.bin          # any word2vec text/binary file (also fastText .vec)
  python eval.py --workdir runs/x               # the vectors a training run wrote
  python eval.py --workdir runs/x --similarity my_pairs.txt --analogy my_questions.txt
  python eval.py --workdir runs/x --no_bundled --neighbors king,paris --query "man:king::woman:?"
  python eval.py --vectors vectors.txt --output results.json --export_tsv projector/

The bundled benchmarks (WordSim-353 with its similarity/relatedness splits, SimLex-999 and the
Google analogy set) run unless --no_bundled; --similarity/--analogy files are added to them.
The same as `w2v-jax eval` (w2v_jax/commands/evaluate.py).
"""

from w2v_jax.commands import evaluate

if __name__ == "__main__":
  evaluate.run()
