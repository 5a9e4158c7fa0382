"""tables_sha256 of six short runs through train.py, to show that a refactor changed no result bit.

python bench/tables_identity.py OUT [--tree DIR] [--cases skipgram,cbow,dev4,dev4s,proc2x2,proc2x2s]
Each case trains the default config for 2 epochs (checkpoints every 3 steps, no evaluation) on the first 400,000
words of the bundled corpus: skip-gram, CBOW, 4 fake CPU devices (replicated and sharded tables), and 2 processes
of 2 devices each (through jax.distributed on 127.0.0.1; replicated and sharded tables). Run it on the trees
before and after a change and compare OUT/tables_sha256.json.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import common  # noqa: E402
from w2v_jax.corpus import BUNDLED_CORPUS  # noqa: E402

CASES = {"skipgram": ([], 1), "cbow": (["--config.model=cbow"], 1), "dev4": ([], 4),
         "dev4s": (["--config.table_layout=sharded"], 4), "proc2x2": ([], 2),
         "proc2x2s": (["--config.table_layout=sharded"], 2)}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_case(tree: str, out: str, corpus: str, case: str) -> str | None:
  """The case's tables_sha256 (None if a process failed, its output's tail printed)."""
  extra, devices = CASES[case]
  workdir = os.path.join(out, case)
  shutil.rmtree(workdir, ignore_errors=True)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  command = [sys.executable, "train.py", "--config", "configs/default.py", f"--config.corpus={corpus}",
             "--config.epochs=2", "--config.eval_every_epoch=False", "--config.probe_words=",
             "--config.checkpoint_every_steps=3", "--workdir", workdir, *extra]
  if case.startswith("proc2x2"):
    port = free_port()
    commands = [command + [f"--config.coordinator_address=127.0.0.1:{port}", "--config.num_processes=2",
                           f"--config.process_id={i}"] for i in (0, 1)]
  else:
    commands = [command]
  procs = [subprocess.Popen(c, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for c in commands]
  outputs = [p.communicate()[0] for p in procs]
  if any(p.returncode for p in procs):
    print(f"{case} failed:\n" + "\n".join(o[-3000:] for o in outputs))
    return None
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)["tables_sha256"]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("out")
  parser.add_argument("--tree", default=ROOT, help="the source tree whose train.py runs")
  parser.add_argument("--cases", default=",".join(CASES))
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  corpus = os.path.join(args.out, "corpus.txt")  # the bundled corpus's first 400,000 words, in 1,000-word lines
  common.corpus_lines(BUNDLED_CORPUS, corpus, max_words=400_000)
  results = {}
  for case in args.cases.split(","):
    start = time.time()
    results[case] = run_case(os.path.abspath(args.tree), os.path.abspath(args.out), corpus, case)
    print(f"{case:9s} {results[case]}  {time.time() - start:.1f}s", flush=True)
  with open(os.path.join(args.out, "tables_sha256.json"), "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
