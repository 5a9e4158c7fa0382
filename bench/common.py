"""Helpers shared by the benchmark scripts: running a timed process, the peers' corpus file, flags, synthetic steps."""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = ("w2v_jax", "gensim", "word2vec.c")
MODELS = ("skipgram", "cbow")


def run(cmd: list[str], on_output: Callable[[bytes, float], None] | None = None) -> tuple[float, str, float, float]:
  """Runs cmd from the repository root; returns (wall s, stdout+stderr, peak RSS MB, CPU s) of the process.

  Output is read as it arrives so on_output(chunk, perf_counter time) can timestamp it; the RSS comes from
  wait4, so it is this process tree's own peak, not that of an earlier benchmark run from the same script.
  CPU seconds over wall seconds shows how many cores a run actually got on a shared machine.
  """
  t0 = time.perf_counter()
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  chunks = []
  while chunk := os.read(proc.stdout.fileno(), 1 << 16):
    if on_output:
      on_output(chunk, time.perf_counter())
    chunks.append(chunk)
  _, status, usage = os.wait4(proc.pid, 0)
  wall = time.perf_counter() - t0
  proc.returncode = os.waitstatus_to_exitcode(status)
  proc.stdout.close()
  out = b"".join(chunks).decode(errors="replace")
  if proc.returncode:
    raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{out[-3000:]}")
  return wall, out, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def run_python(script: str, *args: str) -> str:
  """stdout of `python -c script args` in a fresh interpreter, from the repository root with the package importable."""
  return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT, check=True,
                        env={**os.environ, "PYTHONPATH": ROOT}).stdout


def load() -> str:
  """The 1, 5 and 15-minute load averages, to print beside every timing (the benchmark machine is shared)."""
  return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def corpus_lines(corpus: str, out: str, words_per_line: int = 1000, max_words: int = 0) -> int:
  """Writes the corpus (its first max_words words; 0: all) as lines of words_per_line words (gensim's corpus_file
  format, word2vec.c's sentence cap).

  Returns the number of tokens written.
  """
  sys.path.insert(0, ROOT)
  from w2v_jax import corpus as corpus_lib

  n = 0
  with open(out, "w") as f:
    carry = []
    for piece in corpus_lib.FileCorpus(corpus_lib.corpus_files(corpus)).pieces(lowercase=True):
      carry.extend(piece.decode().split())
      if max_words:
        del carry[max(max_words - n, 0):]
      while len(carry) >= words_per_line:
        f.write(" ".join(carry[:words_per_line]) + "\n")
        n += words_per_line
        del carry[:words_per_line]
    if carry:
      f.write(" ".join(carry) + "\n")
      n += len(carry)
  return n


def parse_args(description: str, epochs: int, models: bool = False) -> argparse.Namespace:
  """The flags of the scripts that train every system on the benchmark corpus; --models too where models is set."""
  parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--corpus", default="../shared/data/wiki2015_text8like.zip")
  parser.add_argument("--epochs", type=int, default=epochs)
  parser.add_argument("--workers", type=int, default=os.cpu_count(), help="gensim workers and word2vec.c threads")
  parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
  parser.add_argument("--out", default="", help="where runs and vectors go (default: a new temporary directory)")
  parser.add_argument("--extra", default="", help="extra --config.x=y flags for w2v_jax, comma-separated")
  if models:
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
  args = parser.parse_args()
  for flag, choices in (("systems", SYSTEMS), ("models", MODELS)):
    if flag in vars(args):
      setattr(args, flag, getattr(args, flag).split(","))
      if unknown := set(getattr(args, flag)) - set(choices):
        parser.error(f"unknown {flag} {sorted(unknown)}; choose from {', '.join(choices)}")
  args.out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="w2v_bench_"))
  os.makedirs(args.out, exist_ok=True)
  return args


def train_command(args: argparse.Namespace, workdir: str, model: str = "skipgram", as_user: bool = False) -> list[str]:
  """train.py on the benchmark corpus with the reference settings (configs/text8.py) for model.

  With as_user the run keeps the defaults a user's run has (evaluation every epoch, probe words), for timing the
  whole process; without, it evaluates only at the end and prints no neighbours.
  """
  quiet = [] if as_user else ["--config.eval_every_epoch=False", "--config.probe_words="]
  return [sys.executable, "train.py", "--config", "configs/text8.py", f"--workdir={workdir}",
          f"--config.corpus={args.corpus}", f"--config.epochs={args.epochs}", f"--config.model={model}", *quiet,
          *[e for e in args.extra.split(",") if e]]


def default_config(model: str, batch_size: int = 4096, block_length: int = 256):
  """configs/default.py with this benchmark's model and batch shape (sequential updates of at least a block)."""
  from configs import default

  config = default.get_config()
  config.model, config.batch_size, config.block_length = model, batch_size, block_length
  if config.update_size:
    config.update_size = max(config.update_size, block_length)
  return config


def default_step(model: str, batch_size: int, block_length: int):
  """The jitted step as the trainer builds it from the default config on one device (sequential updates included)."""
  from w2v_jax import settings
  from w2v_jax.train_step import make_train_step, step_config

  config = default_config(model, batch_size, block_length)
  blocks = settings.update_blocks(config, 1)
  return make_train_step(step_config(config), blocks, settings.shape_blocks(config, blocks))


def zipf_inputs(vocab_size: int, batch_size: int, block_length: int, batches: int = 4, config=None):
  """A negative sampler and token batches for a synthetic Zipf-distributed corpus over vocab_size words; the
  sampler at config's ns_exponent, sample, negative and curvature_words (None: word2vec.c's defaults)."""

  from w2v_jax.train_step import make_sampler

  counts = np.maximum((1e7 / np.arange(1, vocab_size + 1)).astype(np.int64), 5)
  rng = np.random.default_rng(0)
  shape = (batch_size // block_length, block_length)
  tokens = [rng.choice(vocab_size, size=shape, p=counts / counts.sum()).astype(np.int32) for _ in range(batches)]
  if config is None:
    return make_sampler(counts, 0.75, 1e-3), tokens
  return make_sampler(counts, config.ns_exponent, config.sample, config.negative, config.curvature_words), tokens
