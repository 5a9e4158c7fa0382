"""Raw corpus words/s of w2v_jax, gensim and word2vec.c: same corpus, same settings, one after another.

python bench/throughput.py [--corpus ../shared/data/wiki2015_text8like.zip] [--epochs 1] [--systems ...]
Skip-gram, dim 100, window 5, negative 5, sample 1e-3, min_count 5. Raw words = corpus tokens before
subsampling, the same count for every system. The peers run from bench/.peers-venv (bench/peers.py creates
it), gensim in corpus_file mode and word2vec.c on one text file of 1,000-word lines.
"""

import json
import os
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, peers  # noqa: E402


@dataclass
class Run:
  """One system's run: where its vectors are, how fast it trained, what it cost."""

  name: str
  vectors: str
  words_per_sec: float  # epochs x corpus tokens / training seconds
  train_s: float
  wall_s: float  # the whole process, vocabulary building included
  rss_mb: float
  cpu_s: float  # CPU seconds of the whole process: cpu_s / wall_s is the number of cores it got
  load: str  # load averages when the run started
  setup_s: float | None = None


def train_systems(args) -> list[Run]:
  """Trains each of args.systems on args.corpus for args.epochs, one after another; outputs under args.out."""
  runs = []
  tokens = None
  if "w2v_jax" in args.systems:
    workdir, load = os.path.join(args.out, "w2v_jax"), common.load()
    wall, _, rss, cpu = common.run(common.train_command(args, workdir))
    with open(os.path.join(workdir, "results.json")) as f:
      res = json.load(f)
    with open(os.path.join(workdir, "vocab.json")) as f:
      tokens = json.load(f)["total_tokens"]
    name = " ".join(["w2v_jax", *args.extra.split(",")]).strip()
    runs.append(Run(name, os.path.join(workdir, "vectors.bin"), res["words_per_sec"], res["train_seconds"], wall,
                    rss, cpu, load))
  peer_names = [s for s in args.systems if s != "w2v_jax"]
  if peer_names:
    peers.ensure()
    lines = os.path.join(args.out, "corpus_1000.txt")
    written = common.corpus_lines(args.corpus, lines)
    tokens = tokens or written
  for name in peer_names:
    load, vectors = common.load(), os.path.join(args.out, f"{name}.bin")
    if name == "gensim":
      run = peers.run_gensim(lines, args.epochs, args.workers, vectors)
      label = f"gensim corpus_file workers={args.workers}"
    else:
      run = peers.run_word2vec_c(lines, args.epochs, args.workers, vectors)
      label = f"word2vec.c threads={args.workers}"
    runs.append(Run(label, vectors, args.epochs * tokens / run.train_s, run.train_s, run.wall_s, run.rss_mb,
                    run.cpu_s, load, run.setup_s))
  print(f"corpus {args.corpus}: {tokens} tokens, {args.epochs} epoch(s), {os.cpu_count()} CPU cores; "
        f"outputs in {args.out}")
  return runs


def main():
  args = common.parse_args(__doc__, epochs=1)
  runs = train_systems(args)
  base = runs[0].words_per_sec
  print(f"{'system':36} {'raw words/s':>11} {'train s':>8} {'wall s':>7} {'setup s':>7} {'peak RSS MB':>11} "
        f"{'CPU/wall':>8} {'vs ' + runs[0].name.split()[0]:>10}  load at start (1/5/15 min)")
  for r in runs:
    setup = "" if r.setup_s is None else f"{r.setup_s:.1f}"
    print(f"{r.name:36} {r.words_per_sec:>11.0f} {r.train_s:>8.1f} {r.wall_s:>7.1f} {setup:>7} {r.rss_mb:>11.0f} "
          f"{r.cpu_s / r.wall_s:>8.2f} {r.words_per_sec / base:>10.2f}  {r.load}")
  print("wall = the whole process, vocabulary building included; setup = word2vec.c's vocabulary pass and init; "
        "w2v_jax's train s include compile, input start and checkpoints, not the evaluation (the peers' exclude it "
        f"too). At the end: {common.load()}")


if __name__ == "__main__":
  main()
