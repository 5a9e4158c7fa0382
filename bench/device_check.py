"""Device check: one epoch at the accelerator config and at other update sizes, on the devices JAX sees.

Prepare on a machine with the package registries (copies the corpus, fetches the pure-Python wheels that
w2v_jax needs beyond jax, flax, optax, orbax-checkpoint and numpy into bench/device/):
  python bench/device_check.py --prepare [--corpus ../shared/data/wiki2015_text8like.zip]
Run on the accelerator machine (no network, no TensorFlow; the input is --config.input=numpy):
  python bench/device_check.py [--sizes 16384,65536,262144,1048576] [--epochs 1]
Prints, per tokens-per-update size: raw words/s, training seconds, peak device memory and the three scores
(also written to bench/device/results.json). The vocabulary and token cache are built once and reused.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIR = os.path.join(ROOT, "bench", "device")
WHEELS = ("ml-collections", "tensorboardX")
CACHE_FILES = ("vocab.tsv", "vocab.json", "tokens.i32", "tokens.i32.json")

# Runs in a child process per size, so each reports its own peak device memory.
RUNNER = """
import json, sys
import jax
from configs import accelerator
from w2v_jax import trainer
config = accelerator.get_config()
config.corpus, config.update_size, config.epochs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
config.batch_size, config.update_size = config.update_size, 0  # one update per step, as the config
config.probe_words, config.checkpoint_every_secs = "", 0.0
results = trainer.train_and_evaluate(config, sys.argv[1])
stats = jax.local_devices()[0].memory_stats() or {}
print("RESULT " + json.dumps({**results, "peak_device_bytes": stats.get("peak_bytes_in_use"),
                              "device": jax.devices()[0].device_kind, "devices": jax.device_count()}))
"""


def prepare(corpus: str) -> None:
  """Copies the corpus and downloads the wheels into bench/device/ (run with network access)."""
  os.makedirs(os.path.join(DEVICE_DIR, "wheels"), exist_ok=True)
  shutil.copy(corpus, os.path.join(DEVICE_DIR, os.path.basename(corpus)))
  subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                  "--dest", os.path.join(DEVICE_DIR, "wheels"), *WHEELS], check=True)
  print(f"prepared {DEVICE_DIR}: {sorted(os.listdir(DEVICE_DIR))}, wheels {sorted(os.listdir(DEVICE_DIR + '/wheels'))}")


def child_env() -> dict[str, str]:
  """PYTHONPATH with the repo and the carried wheels (pure Python: importable straight from the .whl)."""
  paths = [ROOT, *sorted(glob.glob(os.path.join(DEVICE_DIR, "wheels", "*.whl")))]
  return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")])}


def run_size(corpus: str, workdir: str, size: int, epochs: int, cache_from: str | None) -> dict:
  """One training run at `size` tokens per update, reusing the vocabulary and token cache of cache_from."""
  shutil.rmtree(workdir, ignore_errors=True)
  os.makedirs(workdir)
  if cache_from:
    for name in CACHE_FILES:
      shutil.copy(os.path.join(cache_from, name), workdir)
  start = time.time()
  proc = subprocess.run([sys.executable, "-c", RUNNER, workdir, corpus, str(size), str(epochs)], cwd=ROOT,
                        env=child_env(), capture_output=True, text=True, check=False)
  lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
  if proc.returncode or not lines:
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    raise SystemExit(f"error: the run at update size {size} failed (exit {proc.returncode})")
  return {**json.loads(lines[-1][len("RESULT "):]), "update_size": size, "wall_seconds": time.time() - start}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--prepare", action="store_true", help="copy the corpus and fetch the wheels, then stop")
  parser.add_argument("--corpus", default="", help="corpus zip (default: the one in bench/device/)")
  parser.add_argument("--sizes", default="16384,65536,262144,1048576", help="tokens per update, comma-separated")
  parser.add_argument("--epochs", type=int, default=1)
  parser.add_argument("--workdir", default="/tmp/w2v_device_check")
  args = parser.parse_args()
  if args.prepare:
    prepare(args.corpus or os.path.join(ROOT, "..", "shared", "data", "wiki2015_text8like.zip"))
    return
  corpus = args.corpus or (sorted(glob.glob(os.path.join(DEVICE_DIR, "*.zip"))) or [""])[0]
  if not os.path.exists(corpus):
    raise SystemExit("error: no corpus: pass --corpus or run --prepare first")
  rows, cache_from = [], None
  print(f"{'tokens/update':>13} {'raw words/s':>12} {'train s':>8} {'peak dev GB':>11} {'WS353':>6} {'SimLex':>6} "
        f"{'analogy':>7}", flush=True)
  for size in (int(s) for s in args.sizes.split(",")):
    r = run_size(corpus, os.path.join(args.workdir, str(size)), size, args.epochs, cache_from)
    cache_from = cache_from or os.path.join(args.workdir, str(size))
    rows.append(r)
    peak = f"{r['peak_device_bytes'] / 1e9:.2f}" if r["peak_device_bytes"] else "n/a"
    print(f"{size:>13} {r['words_per_sec']:>12,.0f} {r['train_seconds']:>8.1f} {peak:>11} "
          f"{r['wordsim353_spearman']:>6.3f} {r['simlex999_spearman']:>6.3f} {r['analogy_accuracy']:>7.3f}", flush=True)
  print(f"on {rows[0]['devices']} x {rows[0]['device']}")
  os.makedirs(DEVICE_DIR, exist_ok=True)
  with open(os.path.join(DEVICE_DIR, "results.json"), "w") as f:
    json.dump(rows, f, indent=2)


if __name__ == "__main__":
  main()
