"""Raw corpus words/s of w2v_jax beside gensim (corpus_file mode, 1,000-word lines), same corpus, same run.

python bench/throughput.py --corpus ../shared/data/wiki2015_text8like.zip [--epochs 1] [--skip_gensim]
Raw words = corpus tokens before subsampling, the same count for every system.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GENSIM = """
import sys, time, logging
from gensim.models import Word2Vec
path, epochs, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.time()
model = Word2Vec(corpus_file=path, sg=1, vector_size=100, window=5, negative=5, sample=1e-3, min_count=5,
                 workers=workers, epochs=epochs, seed=1)
print("WALL", time.time() - t0)
print("TRAIN", model.total_train_time)
import resource
print("RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
model.wv.save_word2vec_format(sys.argv[4], binary=True)
"""


def corpus_lines(corpus: str, out: str, words_per_line: int = 1000) -> int:
  """Writes the corpus as lines of words_per_line words (gensim's corpus_file format); returns tokens."""
  sys.path.insert(0, ROOT)
  from w2v_jax import corpus as corpus_lib

  n = 0
  with open(out, "w") as f:
    carry = []
    for piece in corpus_lib.read_pieces(corpus_lib.corpus_files(corpus), lowercase=True):
      carry.extend(piece.decode().split())
      while len(carry) >= words_per_line:
        f.write(" ".join(carry[:words_per_line]) + "\n")
        n += words_per_line
        del carry[:words_per_line]
    if carry:
      f.write(" ".join(carry) + "\n")
      n += len(carry)
  return n


def run(cmd: list[str]) -> tuple[float, str]:
  """Runs cmd; returns (wall seconds, stdout)."""
  t0 = time.time()
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
  return time.time() - t0, out


def parse_args(description: str, epochs: int) -> argparse.Namespace:
  """The flags both benchmark scripts take."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--corpus", default="../shared/data/wiki2015_text8like.zip")
  parser.add_argument("--epochs", type=int, default=epochs)
  parser.add_argument("--workers", type=int, default=os.cpu_count())
  parser.add_argument("--skip_gensim", action="store_true")
  parser.add_argument("--extra", default="", help="extra --config.x=y flags for w2v_jax, comma-separated")
  return parser.parse_args()


def train_command(args: argparse.Namespace, workdir: str) -> list[str]:
  """train.py on the benchmark corpus with the reference settings (configs/text8.py), no per-epoch eval."""
  return [sys.executable, "train.py", "--config", "configs/text8.py", f"--workdir={workdir}",
          f"--config.corpus={args.corpus}", f"--config.epochs={args.epochs}", "--config.eval_every_epoch=False",
          "--config.probe_words="] + [e for e in args.extra.split(",") if e]


def main():
  args = parse_args(__doc__, epochs=1)
  tmp = tempfile.mkdtemp(prefix="w2v_bench_")
  rows = []
  wall, _ = run(train_command(args, f"{tmp}/w2v_jax"))
  with open(f"{tmp}/w2v_jax/results.json") as f:
    res = json.load(f)
  with open(f"{tmp}/w2v_jax/vocab.json") as f:
    tokens = json.load(f)["total_tokens"]
  rows.append(("w2v_jax", res["words_per_sec"], wall, res["peak_rss_mb"]))

  if not args.skip_gensim:
    lines = f"{tmp}/corpus_1000.txt"
    corpus_lines(args.corpus, lines)
    wall, out = run([sys.executable, "-c", GENSIM, lines, str(args.epochs), str(args.workers), f"{tmp}/g.bin"])
    train = float(out.split("TRAIN")[1].split()[0])
    rss = float(out.split("RSS")[1].split()[0])
    rows.append((f"gensim corpus_file workers={args.workers}", args.epochs * tokens / train, wall, rss))

  print(f"corpus {args.corpus}: {tokens} tokens, {args.epochs} epoch(s), {os.cpu_count()} CPU cores")
  print(f"{'system':36} {'raw words/s':>12} {'wall s (incl. vocab)':>21} {'peak RSS MB':>12} {'vs w2v_jax':>10}")
  for name, wps, wall, rss in rows:
    print(f"{name:36} {wps:>12.0f} {wall:>21.1f} {rss:>12.0f} {wps / rows[0][1]:>10.2f}")


if __name__ == "__main__":
  main()
