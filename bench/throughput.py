"""Whole-process wall, training time and raw words/s of w2v_jax, gensim and word2vec.c, one after another.

python bench/throughput.py [--corpus ../shared/data/wiki2015_text8like.zip] [--epochs 1] [--systems ...]
                           [--models skipgram,cbow] [--extra --config.x=y,...]
Dim 100, window 5, negative 5, sample 1e-3, min_count 5, each model at each system's own defaults otherwise
(alpha 0.025 for skip-gram; for CBOW gensim's 0.025, word2vec.c's and w2v_jax's 0.05). Raw words = corpus tokens
before subsampling, the same count for every system. w2v_jax runs as a user runs it, its evaluation every epoch
included. The peers run from bench/.peers-venv (bench/peers.py creates it), gensim in corpus_file mode and
word2vec.c on one text file of 1,000-word lines, written once for every model.
"""

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, peers  # noqa: E402


@dataclass
class Run:
  """One system's run of one model: where its vectors are, how fast it trained, what it cost."""

  system: str  # one of common.SYSTEMS
  model: str  # one of common.MODELS
  name: str
  vectors: str
  words_per_sec: float  # epochs x corpus tokens / training seconds
  train_s: float
  wall_s: float  # the whole process, vocabulary building included
  rss_mb: float
  cpu_s: float  # CPU seconds of the whole process: cpu_s / wall_s is the number of cores it got
  load: str  # load averages when the run started
  setup_s: float | None = None


def train_w2v_jax(args, model: str, as_user: bool) -> tuple[Run, int]:
  """Trains w2v_jax's model on args.corpus under args.out; returns the run and the corpus's token count."""
  workdir, load = os.path.join(args.out, f"w2v_jax_{model}"), common.load()
  wall, _, rss, cpu = common.run(common.train_command(args, workdir, model, as_user))
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  with open(os.path.join(workdir, "vocab.json")) as f:
    tokens = json.load(f)["total_tokens"]
  name = " ".join(["w2v_jax", *args.extra.split(",")]).strip()
  return Run("w2v_jax", model, name, os.path.join(workdir, "vectors.bin"), res["words_per_sec"], res["train_seconds"],
             wall, rss, cpu, load), tokens


def train_systems(args, models: Sequence[str] = ("skipgram",), as_user: bool = False) -> list[Run]:
  """Trains each of args.systems for each model on args.corpus for args.epochs, one run at a time, under args.out.

  as_user keeps w2v_jax's per-epoch evaluation and probe words, for whole-process timings (common.train_command).
  """
  runs, tokens, lines = [], None, os.path.join(args.out, "corpus_1000.txt")
  if set(args.systems) - {"w2v_jax"}:
    peers.ensure()
    tokens = common.corpus_lines(args.corpus, lines)
  for model in models:
    for system in args.systems:
      load, vectors = common.load(), os.path.join(args.out, f"{system}_{model}.bin")
      if system == "w2v_jax":
        run, tokens = train_w2v_jax(args, model, as_user)
        runs.append(run)
        continue
      if system == "gensim":
        peer = peers.run_gensim(lines, args.epochs, args.workers, vectors, model)
        name = f"gensim corpus_file workers={args.workers}"
      else:
        peer = peers.run_word2vec_c(lines, args.epochs, args.workers, vectors, model)
        name = f"word2vec.c threads={args.workers}"
      runs.append(Run(system, model, name, vectors, args.epochs * tokens / peer.train_s, peer.train_s, peer.wall_s,
                      peer.rss_mb, peer.cpu_s, load, peer.setup_s))
  print(f"corpus {args.corpus}: {tokens} tokens, {args.epochs} epoch(s), {os.cpu_count()} CPU cores; "
        f"outputs in {args.out}")
  return runs


def main():
  args = common.parse_args(__doc__, epochs=1, models=True)
  runs = train_systems(args, args.models, as_user=True)
  walls = {(r.system, r.model): r.wall_s for r in runs}
  peer_names = [s for s in args.systems if s != "w2v_jax"]
  ratios = "".join(f" {p + ' wall/this':>20}" for p in peer_names)
  print(f"{'system':36} {'model':8} {'raw words/s':>11} {'train s':>8} {'wall s':>7} {'setup s':>7} "
        f"{'peak RSS MB':>11} {'CPU/wall':>8}{ratios}  load at start (1/5/15 min)")
  for r in runs:
    setup = "" if r.setup_s is None else f"{r.setup_s:.1f}"
    ratios = "".join(f" {walls[p, r.model] / r.wall_s:>20.2f}" for p in peer_names)
    print(f"{r.name:36} {r.model:8} {r.words_per_sec:>11.0f} {r.train_s:>8.1f} {r.wall_s:>7.1f} {setup:>7} "
          f"{r.rss_mb:>11.0f} {r.cpu_s / r.wall_s:>8.2f}{ratios}  {r.load}")
  print("wall = the whole process from start to exit (vocabulary, evaluation and export included); "
        "PEER wall/this = that peer's wall over this row's, for the same model (>= 1.5: this row 1.5x faster); "
        "setup = word2vec.c's vocabulary pass and init; train s exclude the evaluation (w2v_jax's include compile, "
        f"input start and checkpoints). At the end: {common.load()}")


if __name__ == "__main__":
  main()
