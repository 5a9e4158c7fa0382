"""Peak host memory (RSS) of the vocabulary pass, of one epoch's input, and of one epoch of training, on the
corpus and on it 10 times over.

python -m bench.memory [--corpus ../shared/data/wiki2015_text8like.zip] [--times 10] [--modes vocab,epoch,train]
                        [--distinct 20000000]

Each measurement runs in a fresh process and reports ru_maxrss (its own, and its largest child's: the
counting processes). 'vocab' = build_vocab as train.py runs it; 'epoch' = tokenize into the token cache,
then every batch of one epoch from it (numpy input, 4,096-token batches, no training step); 'train' =
train.py itself, configs/text8.py for one epoch (vocabulary, tokenization, training with tf.data input,
export) with min_count 5 times the copies (the 1x vocabulary: the same text repeated would otherwise bring
3x the words over min_count and 3x the tables), whose seconds are its training seconds (results.json), so it
also gives the time per 100M words.
'prune' = counting a generated corpus of --distinct distinct words with max_vocab_size=1M in one process.
Files go to /tmp/w2v_memory (not removed: 1 GB per 10x).
"""

import argparse
import json
import os
import shutil
import sys

from bench.common import corpus_lines, run, run_python

PROBE = """
import os, resource, sys, time
from w2v_jax import corpus, host_memory, input_pipeline, vocab
host_memory.pin_mmap_threshold()  # as the trainer does
mode, path, workdir = sys.argv[1:4]
source = corpus.FileCorpus([path])
t0 = time.perf_counter()
if mode == "vocab":
  v = vocab.build_vocab(source, lowercase=True, min_count=5)
  v.save(workdir)
  n = v.total_tokens
elif mode == "prune":
  v = vocab.build_vocab(source, lowercase=False, min_count=1, max_vocab_size=1_000_000, processes=1)
  n = v.total_tokens
else:
  v = vocab.Vocab.load(workdir)
  stream = input_pipeline.write_token_cache(input_pipeline.tokenize_pieces(source, v, True),
                                           os.path.join(workdir, "tokens.i32"))
  n = sum(int((b["tokens"] >= 0).sum()) for b in input_pipeline.numpy_batches(stream, v, 1e-3, 0, 0, 4096, 1024))
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("RESULT", own, child, time.perf_counter() - t0, n)
"""


def probe(mode: str, path: str, workdir: str, min_count: int = 5) -> tuple[float, float, float, int]:
  """(own peak RSS MB, largest child's MB, seconds, tokens) of one measurement in a fresh process."""
  if mode == "train":
    shutil.rmtree(workdir, ignore_errors=True)
    _, _, rss, _ = run([sys.executable, "train.py", "--config", "configs/text8.py", f"--workdir={workdir}",
                        f"--config.corpus={path}", "--config.epochs=1", "--config.eval_every_epoch=False",
                        "--config.probe_words=", f"--config.min_count={min_count}"])
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
    with open(os.path.join(workdir, "vocab.json")) as f:
      tokens = json.load(f)["total_tokens"]
    return rss, 0.0, results["train_seconds"], tokens
  own, child, secs, n = run_python(PROBE, mode, path, workdir).split("RESULT")[1].split()
  return float(own), float(child), float(secs), int(n)


def distinct_corpus(path: str, distinct: int) -> None:
  """distinct different words, each once, plus a few frequent ones, in 1,000-word lines."""
  with open(path, "w") as f:
    for start in range(0, distinct, 1000):
      f.write(" ".join(f"u{i}" for i in range(start, min(start + 1000, distinct))) + " the of and\n")


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--corpus", default="../shared/data/wiki2015_text8like.zip")
  parser.add_argument("--times", type=int, default=10)
  parser.add_argument("--modes", default="vocab,epoch,train", help="comma-separated subset of vocab,epoch,train")
  parser.add_argument("--distinct", type=int, default=20_000_000, help="0 skips the pruning measurement")
  args = parser.parse_args()
  tmp = "/tmp/w2v_memory"
  os.makedirs(tmp, exist_ok=True)
  one = os.path.join(tmp, "x1.txt")
  many = os.path.join(tmp, f"x{args.times}.txt")
  if not os.path.exists(one):
    corpus_lines(args.corpus, one)
  if not os.path.exists(many):
    with open(many, "wb") as out:
      for _ in range(args.times):
        with open(one, "rb") as f:
          shutil.copyfileobj(f, out)
  print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
  print(f"{'corpus':8} {'measure':6} {'tokens':>11} {'seconds':>8} {'peak RSS MB':>12} {'largest child MB':>17}")
  # min_count scales with the copies: the same words reach it, so both train the same vocabulary
  for name, path, min_count in (("1x", one, 5), (f"{args.times}x", many, 5 * args.times)):
    workdir = os.path.join(tmp, f"work_{name}")
    os.makedirs(workdir, exist_ok=True)
    for mode in args.modes.split(","):
      own, child, secs, n = probe(mode, path, os.path.join(workdir, "train") if mode == "train" else workdir,
                                  min_count)
      per_100m = f"  {secs * 1e8 / n / 60:.1f} min per 100M words" if mode == "train" else ""
      print(f"{name:8} {mode:6} {n:>11} {secs:>8.1f} {own:>12.0f} {child:>17.0f}{per_100m}  load "
            f"{os.getloadavg()[0]:.2f}", flush=True)
  if args.distinct:
    path = os.path.join(tmp, f"distinct_{args.distinct}.txt")
    if not os.path.exists(path):
      distinct_corpus(path, args.distinct)
    own, child, secs, n = probe("prune", path, tmp)
    print(f"{args.distinct} distinct words, max_vocab_size=1M, 1 process: {n} tokens in {secs:.1f}s, "
          f"peak RSS {own:.0f} MB")
  print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
