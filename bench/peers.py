"""The peer systems (gensim, word2vec.c) in their own virtualenv, bench/.peers-venv, not dependencies of w2v_jax.

python bench/peers.py   (creates the environment where missing; needs gcc: pip builds word2vec.c from the sdist)
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402

VENV = os.path.join(common.ROOT, "bench", ".peers-venv")
PYTHON = os.path.join(VENV, "bin", "python")
# The PyPI `word2vec` package compiles Mikolov's word2vec.c at install into <venv>/bin/word2vec; its Python
# wrapper (word2vec.word2vec) only runs that binary by name from PATH, so the benchmarks run it directly.
WORD2VEC_C = os.path.join(VENV, "bin", "word2vec")
REQUIREMENTS = ["gensim==4.4.*", "word2vec==0.11.*"]
# Each model as word2vec.c's users run it, with the -alpha its usage gives for that model.
WORD2VEC_C_MODEL = {"skipgram": ["-cbow", "0", "-alpha", "0.025"], "cbow": ["-cbow", "1", "-alpha", "0.05"]}

# argv: corpus file, epochs, workers, output, sg (1 skip-gram, 0 CBOW at gensim's defaults: alpha 0.025, cbow_mean=1).
GENSIM = """
import sys
from gensim.models import Word2Vec
path, epochs, workers, sg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
model = Word2Vec(corpus_file=path, sg=sg, vector_size=100, window=5, negative=5, sample=1e-3, min_count=5,
                 workers=workers, epochs=epochs, seed=1)
print("TRAIN", model.total_train_time)
model.wv.save_word2vec_format(sys.argv[4], binary=True)
"""


@dataclass
class PeerRun:
  """One peer's run: training seconds, wall and CPU seconds of the whole process, peak RSS."""

  train_s: float
  wall_s: float
  rss_mb: float
  cpu_s: float
  setup_s: float | None = None  # word2vec.c: vocabulary pass and table init, before training starts


def ensure() -> None:
  """Creates the peer environment if missing and installs the pinned peers into it (a no-op when present)."""
  if not os.path.exists(PYTHON):
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
  if not os.path.exists(WORD2VEC_C):
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)


def run_gensim(lines: str, epochs: int, workers: int, output: str, model: str) -> PeerRun:
  """gensim's model (skipgram or cbow) in corpus_file mode on a file of 1,000-word lines; its own training seconds."""
  sg = {"skipgram": "1", "cbow": "0"}[model]
  wall, out, rss, cpu = common.run([PYTHON, "-c", GENSIM, lines, str(epochs), str(workers), output, sg])
  return PeerRun(float(out.split("TRAIN")[1].split()[0]), wall, rss, cpu)


def run_word2vec_c(lines: str, epochs: int, threads: int, output: str, model: str) -> PeerRun:
  """word2vec.c's model (skipgram or cbow) at the benchmark settings; training is timed from its first progress line.

  word2vec.c reports no timings; it flushes a progress line ('Alpha: ...') every 10,000 words per thread once
  training starts, so the time of the first one splits the run into setup (vocabulary pass, table init) and
  training (which then includes writing the vectors, well under a second for 100-d).
  """
  if max(len(lines), len(output)) >= 100:  # word2vec.c keeps file names in 100-byte buffers, cutting longer ones
    raise ValueError(f"word2vec.c needs paths under 100 characters: {lines}, {output}")
  cmd = [WORD2VEC_C, "-train", lines, "-output", output, "-size", "100", "-window", "5", "-sample", "1e-3",
         "-hs", "0", "-negative", "5", "-threads", str(threads), "-iter", str(epochs), "-min-count", "5",
         "-binary", "1", *WORD2VEC_C_MODEL[model]]
  first_progress: list[float] = []

  def watch(chunk: bytes, now: float) -> None:
    if not first_progress and b"Alpha:" in chunk:
      first_progress.append(now)

  t0 = time.perf_counter()
  wall, _, rss, cpu = common.run(cmd, on_output=watch)
  setup = first_progress[0] - t0 if first_progress else None  # a corpus too small to print progress: no split
  return PeerRun(wall - (setup or 0.0), wall, rss, cpu, setup)


def versions() -> str:
  """The installed peer versions, as pip reports them."""
  out = subprocess.run([PYTHON, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True)
  return ", ".join(line for line in out.stdout.split() if line.split("==")[0] in ("gensim", "word2vec"))


if __name__ == "__main__":
  ensure()
  print(f"{VENV}: {versions()}; word2vec.c at {WORD2VEC_C}")
