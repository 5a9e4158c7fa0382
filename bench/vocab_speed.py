"""Vocabulary pass speed: w2v_jax's count (and one-time tokenization) beside gensim's build_vocab, same file.

python -m bench.vocab_speed [--corpus ../shared/data/wiki2015_text8like.zip]
The corpus is first written as plain 1,000-word lines (gensim's corpus_file format); both read that file,
each in its own process, one after the other.
"""

import argparse
import os
import tempfile

from bench.common import corpus_lines, run_python

GENSIM = """
import sys, time
from gensim.models import Word2Vec
model = Word2Vec(vector_size=100, min_count=5, sample=1e-3, workers=1)
t0 = time.perf_counter()
model.build_vocab(corpus_file=sys.argv[1])  # scan_vocab is single-threaded whatever workers is
print("COUNT", time.perf_counter() - t0, len(model.wv))
"""

W2V_JAX = """
import sys, time
from w2v_jax import corpus, input_pipeline, vocab
source = corpus.FileCorpus([sys.argv[1]])
t0 = time.perf_counter()
v = vocab.build_vocab(source, lowercase=False, min_count=5, processes=int(sys.argv[2]))
print("COUNT", time.perf_counter() - t0, v.size)
if sys.argv[2] == "1":
  sys.exit()
t0 = time.perf_counter()
n = sum(len(ids) for ids in input_pipeline.tokenize_pieces(source, v, lowercase=False))
print("TOKENIZE", time.perf_counter() - t0, n)
"""


def timed(script: str, *args: str) -> dict[str, tuple[float, int]]:
  """Runs a script on args in a fresh process; returns {label: (seconds, number)}."""
  out = run_python(script, *args)
  return {line.split()[0]: (float(line.split()[1]), int(line.split()[2])) for line in out.splitlines()
          if line.split() and line.split()[0] in ("COUNT", "TOKENIZE")}


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--corpus", default="../shared/data/wiki2015_text8like.zip")
  parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; the fastest is kept")
  args = parser.parse_args()
  path = os.path.join(tempfile.mkdtemp(prefix="w2v_vocab_"), "corpus_1000.txt")
  words = corpus_lines(args.corpus, path)
  loads, runs = [os.getloadavg()[0]], []
  for _ in range(args.repeats):  # interleaved, so a change in the machine's load hits all three alike
    runs.append((timed(W2V_JAX, path, "2"), timed(W2V_JAX, path, "1"), timed(GENSIM, path)))
    loads.append(os.getloadavg()[0])
  ours, single, gensim = (min((r[k] for r in runs), key=lambda t: t["COUNT"][0]) for k in range(3))
  print(f"corpus {args.corpus}: {words} words, {os.path.getsize(path) / 1e6:.0f} MB plain text; fastest of "
        f"{args.repeats}; load average {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} cores")
  for name, (secs, size) in (("w2v_jax, 2 processes", ours["COUNT"]), ("w2v_jax, 1 process", single["COUNT"]),
                             ("gensim build_vocab", gensim["COUNT"])):
    print(f"{name:22} {secs:6.2f} s  {words / secs / 1e6:5.1f}M words/s  vocab {size}  "
          f"{gensim['COUNT'][0] / secs:.2f}x gensim")
  secs, tokens = ours["TOKENIZE"]
  print(f"w2v_jax tokenize (one-time, to the token cache): {secs:.2f} s, {tokens / secs / 1e6:.1f}M tokens/s")


if __name__ == "__main__":
  main()
