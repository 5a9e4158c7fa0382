"""parallel: the data-parallel step equals the single-device one, and never moves a whole table.

Multi-device cases run this file as a script in a subprocess with 8 fake CPU devices (the device
count is fixed when JAX starts); the script prints JSON that the tests assert on.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest

FAKE_DEVICES = 8
SEP = -1
VOCAB, DIM, BLOCKS, LENGTH, WINDOW, NEGATIVE = 200, 8, 8, 32, 2, 3
LR, STEPS = 0.25, 3
# A strong curvature damping, 2 directions exact: the rows' global curvature sums (over all devices) matter.
DAMPING, RANK = 2.0, 2
BIG_VOCAB = 100_000
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")


def start_worker(case: str) -> subprocess.Popen:
  """Starts `case` of this file in a fresh Python with FAKE_DEVICES CPU devices (it prints JSON)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(FAKE_DEVICES))
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={FAKE_DEVICES}".strip()
  return subprocess.Popen([sys.executable, __file__, case], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


class Workers:
  """The worker subprocesses, started together (compiling is mostly single-threaded: they share the cores)."""

  def __init__(self, cases: tuple[str, ...]):
    self.procs = {case: start_worker(case) for case in cases}
    self.results: dict[str, dict] = {}

  def result(self, case: str) -> dict:
    """The JSON the worker printed; fails with its stderr if it crashed."""
    if case not in self.results:
      stdout, stderr = self.procs[case].communicate(timeout=300)
      assert self.procs[case].returncode == 0, stderr[-4000:]
      self.results[case] = json.loads(stdout.strip().splitlines()[-1])
    return self.results[case]

  def close(self) -> None:
    """Kills workers whose results no test asked for."""
    for proc in self.procs.values():
      if proc.poll() is None:
        proc.kill()
        proc.communicate()


# ---- worker side (runs in the subprocess; imports JAX only there) ----


def _problem(vocab: int, seed: int = 0):
  """Random tables, a Zipf-like sampler, and STEPS token batches with sentence ends and padding."""
  import jax.numpy as jnp
  import numpy as np

  from w2v_jax.model import Tables
  from w2v_jax.train_step import make_sampler

  rng = np.random.default_rng(seed)
  tables = Tables(jnp.asarray(rng.normal(0, 0.5, (vocab, DIM)), jnp.float32),
                  jnp.asarray(rng.normal(0, 0.5, (vocab, DIM)), jnp.float32))
  counts = np.maximum(1e4 / np.arange(1, vocab + 1), 1)
  batches = []
  for _ in range(STEPS):
    tokens = rng.choice(vocab, size=(BLOCKS, LENGTH), p=counts / counts.sum()).astype(np.int32)
    tokens[:, 11] = SEP
    tokens[0, 20:] = SEP
    batches.append(tokens)
  return tables, make_sampler(counts, 0.75, 1e-3, NEGATIVE), batches


def _train(step, tables, scratch, metrics, batches, sampler):
  """STEPS steps with the keys the trainer would use (fold_in of a base key)."""
  import jax
  import numpy as np

  for i, tokens in enumerate(batches):
    key = jax.random.fold_in(jax.random.key(3), i)
    tables, scratch, metrics = step(tables, scratch, metrics, tokens, np.float32(LR), key, sampler)
  return tables, scratch, metrics


def _train_single(cfg, tables, batches, sampler, blocks_per_update: int = BLOCKS):
  """_train with make_train_step on one device (one curvature shape per blocks_per_update blocks)."""
  import jax.numpy as jnp

  from w2v_jax.train_step import make_train_step, new_scratch

  step = make_train_step(cfg, blocks_per_update, blocks_per_update)
  return _train(step, tables, new_scratch(tables.input.shape[0]), jnp.zeros(2), batches, sampler)


def _train_parallel(cfg, mesh, layout: str, tables, batches, sampler, blocks_per_update: int = BLOCKS):
  """_train with make_parallel_train_step on `mesh`, tables, scratch and metrics placed as the trainer does."""
  import jax.numpy as jnp

  from w2v_jax import parallel

  step = parallel.make_parallel_train_step(cfg, mesh, layout, blocks_per_update, blocks_per_update)
  return _train(step, parallel.shard_tables(tables, mesh, layout),
                parallel.shard_scratch(tables.input.shape[0], mesh, layout), parallel.replicate(jnp.zeros(2), mesh),
                batches, sampler)


def _config(model: str):
  """The step config with curvature damping; CBOW shares negatives by groups of 4 centers."""
  from w2v_jax.train_step import StepConfig

  group = {"negative_draws": 2 * NEGATIVE, "negative_group": 4} if model == "cbow" else {}
  return StepConfig(model, WINDOW, NEGATIVE, damping=DAMPING, curvature_rank=RANK, **group)


def _diff(a, b) -> float:
  import numpy as np

  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
                "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_SHAPE = re.compile(r"\b([a-z]+\d*)\[([\d,]*)\]")
_COLLECTIVE = re.compile(r"=\s*(.*?)\s(" + "|".join(COLLECTIVES) + r")(?:-start)?\((.*)$")


def _shape_bytes(text: str) -> int:
  """Total bytes of the array shapes written in an HLO fragment."""
  total = 0
  for dtype, dims in _SHAPE.findall(text):
    if dtype in _DTYPE_BYTES:
      total += _DTYPE_BYTES[dtype] * math.prod(int(d) for d in filter(None, dims.split(",")))
  return total


def collectives_report(step_fn, *example_args) -> dict[str, int]:
  """Collective ops in the compiled step: '<op>' count and '<op>.bytes' summed, plus 'max_bytes'.

  An op's size is the larger of its result and operands (an all-gather's result, a reduce-scatter's
  operand), so max_bytes bounds what any one collective moves.
  """
  hlo = step_fn.lower(*example_args).compile().as_text()
  report = {op: 0 for op in COLLECTIVES} | {f"{op}.bytes": 0 for op in COLLECTIVES} | {"max_bytes": 0}
  for line in hlo.splitlines():
    match = _COLLECTIVE.search(line)
    if not match:
      continue
    result, op, operands = match.groups()
    size = max(_shape_bytes(result), _shape_bytes(operands.split(")")[0]))
    report[op] += 1
    report[f"{op}.bytes"] += size
    report["max_bytes"] = max(report["max_bytes"], size)
  return report


def worker_equality() -> dict:
  """Both layouts and models on 8 devices against make_train_step: max differences and layouts."""
  import dataclasses

  import jax.numpy as jnp
  import numpy as np

  from w2v_jax import parallel

  mesh = parallel.make_mesh()
  results = {}
  for model in ("skipgram", "cbow"):
    cfg = _config(model)
    tables, sampler, batches = _problem(VOCAB)
    want, _, want_metrics = _train_single(cfg, tables, batches, sampler)
    tables, sampler, batches = _problem(VOCAB)
    plain, _, _ = _train_single(dataclasses.replace(cfg, damping=0.0), tables, batches, sampler)
    for layout in parallel.TABLE_LAYOUTS:
      tables, sampler, batches = _problem(VOCAB)
      initial = np.asarray(tables.input)  # the steps donate (and may delete) the tables they are given
      got, scratch, metrics = _train_parallel(cfg, mesh, layout, tables, batches, sampler)
      results[f"{model}/{layout}"] = {
          "input": _diff(got.input, want.input), "output": _diff(got.output, want.output),
          "moved": _diff(got.input, initial), "damped": _diff(want.output, plain.output),
          "scratch": float(jnp.abs(scratch).max()), "scratch_dtype": str(scratch.dtype),
          "metrics": [float(x) for x in metrics], "want_metrics": [float(x) for x in want_metrics],
          "specs": [list(x.sharding.spec) for x in (*got, scratch)], "devices": len(got.input.sharding.device_set),
      }
  return results


def worker_collectives() -> dict:
  """collectives_report of the compiled step with a large vocabulary, and of a step that psums a table."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import PartitionSpec as P

  from w2v_jax import parallel

  mesh = parallel.make_mesh()
  tables, sampler, batches = _problem(BIG_VOCAB)
  cfg = _config("skipgram")
  results = {}
  for layout in parallel.TABLE_LAYOUTS:
    step = parallel.make_parallel_train_step(cfg, mesh, layout, BLOCKS, BLOCKS)
    args = (parallel.shard_tables(tables, mesh, layout), parallel.shard_scratch(BIG_VOCAB, mesh, layout),
            parallel.replicate(jnp.zeros(2), mesh), batches[0], np.float32(LR), jax.random.key(0), sampler)
    results[layout] = collectives_report(step, *args)
  dense = jax.jit(jax.shard_map(lambda t: jax.lax.psum(t, "data"), mesh=mesh, in_specs=P(), out_specs=P()))
  results["dense_psum"] = collectives_report(dense, tables.input)
  return results


def worker_device_counts() -> dict:
  """Sharded skipgram on meshes of 1, 2, 4 devices with V not a multiple of 4 (padded rows); sequential updates."""
  import numpy as np

  from w2v_jax import parallel

  vocab = VOCAB + 2
  cfg = _config("skipgram")
  results, first = {}, None
  for n in (1, 2, 4):
    mesh = parallel.make_mesh(n)
    tables, sampler, batches = _problem(vocab, seed=1)
    initial = np.asarray(tables.input)
    got, _, _ = _train_parallel(cfg, mesh, "sharded", tables, batches, sampler)
    rows, got = got.input.shape[0], parallel.unshard_tables(got, vocab)
    first = got if first is None else first
    results[str(n)] = {"rows": rows, "input": _diff(got.input, first.input), "output": _diff(got.output, first.output),
                       "moved": _diff(got.input, initial)}
  # Sequential updates of 4 blocks (2 per step, a fresh curvature shape for each) split over 4 devices, against
  # the single-device step.
  tables, sampler, batches = _problem(vocab, seed=2)
  want, _, _ = _train_single(cfg, tables, batches, sampler, blocks_per_update=4)
  mesh = parallel.make_mesh(4)
  tables, sampler, batches = _problem(vocab, seed=2)
  got, _, _ = _train_parallel(cfg, mesh, "sharded", tables, batches, sampler, blocks_per_update=4)
  got = parallel.unshard_tables(got, vocab)
  results["sequential"] = {"input": _diff(got.input, want.input), "output": _diff(got.output, want.output)}
  return results


# ---- tests ----


@pytest.fixture(scope="module")
def workers():
  workers = Workers(("equality", "collectives", "device_counts"))
  yield workers
  workers.close()


@pytest.fixture(scope="module")
def equality(workers: Workers) -> dict:
  return workers.result("equality")


@pytest.mark.parametrize("layout", ["replicated", "sharded"])
@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_parallel_step_equals_single_device(equality: dict, model: str, layout: str) -> None:
  """8 devices, 3 steps with curvature damping: same tables and metrics as make_train_step, laid out as asked;
  the returned curvature scratch is back at zeros, laid out as the tables."""
  r = equality[f"{model}/{layout}"]
  assert r["moved"] > 1e-3 and r["damped"] > 1e-2  # the step really trains, and not as plain SGD
  assert r["input"] < 1e-5 and r["output"] < 1e-5, r
  assert r["scratch"] == 0.0 and r["scratch_dtype"] == "float32"
  assert r["metrics"] == pytest.approx(r["want_metrics"], rel=1e-5)
  assert r["devices"] == FAKE_DEVICES
  if layout == "replicated":
    assert r["specs"] == [[], [], []]
  else:
    assert r["specs"] == [["data", None], ["data", None], ["data"]]


def test_collectives_never_move_a_table(workers: Workers) -> None:
  """With V=100k, D=8, every collective of the compiled step is far below one V x D table."""
  reports = workers.result("collectives")
  table_bytes = BIG_VOCAB * DIM * 4
  for layout in ("replicated", "sharded"):
    report = reports[layout]
    assert report["all-gather"] > 0 and report["all-reduce"] + report["reduce-scatter"] > 0, report
    assert report["max_bytes"] < table_bytes // 10, report
  # The parser does see a table-sized collective when there is one.
  assert reports["dense_psum"]["all-reduce"] == 1
  assert reports["dense_psum"]["max_bytes"] == table_bytes


def test_one_two_four_devices_agree(workers: Workers) -> None:
  """The sharded step on 1, 2 and 4 devices (V padded 202 -> 204 on 4) trains the same tables."""
  results = workers.result("device_counts")
  assert [results[n]["rows"] for n in ("1", "2", "4")] == [VOCAB + 2, VOCAB + 2, VOCAB + 4]
  for n in ("2", "4"):
    assert results[n]["input"] < 1e-5 and results[n]["output"] < 1e-5, results
  assert results["1"]["moved"] > 1e-3


def test_sequential_updates_match(workers: Workers) -> None:
  """blocks_per_update=4 on 4 devices (each group split over all of them, a shape per group) equals
  make_train_step(cfg, 4, 4)."""
  results = workers.result("device_counts")["sequential"]
  assert results["input"] < 1e-5 and results["output"] < 1e-5, results


def test_layout_and_mesh_arguments_are_checked() -> None:
  """Unknown layouts and more devices than exist fail with ValueError; padding rounds up per layout."""
  from w2v_jax import parallel

  mesh = parallel.make_mesh()
  with pytest.raises(ValueError, match="layout"):
    parallel.table_specs("columns")
  with pytest.raises(ValueError, match="num_devices"):
    parallel.make_mesh(len(mesh.devices.flat) + 1)
  n = mesh.shape["data"]
  assert parallel.padded_vocab_size(10 * n + 1, mesh, "sharded") == (11 * n if n > 1 else 10 * n + 1)
  assert parallel.padded_vocab_size(10 * n + 1, mesh, "replicated") == 10 * n + 1


if __name__ == "__main__":
  print(json.dumps({"equality": worker_equality, "collectives": worker_collectives,
                    "device_counts": worker_device_counts}[sys.argv[1]]()))
