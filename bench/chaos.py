"""Chaos benchmark: every failure a user can cause, and kill -9 at random moments, each classified (issue 14).

python bench/chaos.py [--seed 0] [--trials 30] [--jobs 2] [--words 30000] [--timeout 60] [--only SUBSTR ...]
                      [--json results.json] [--list] [--keep --out DIR]

Runs train.py / eval.py as subprocesses on configs/tiny.py and a slice of the corpus (the first --words words,
written to a temporary directory as 1,000-word lines), in temporary workdirs. An uninterrupted reference run comes
first, twice (cold, then from the compilation cache: the two must give the same vectors.bin); every case then runs
on its own copy of it or a fresh workdir, --jobs at a time. Outcomes:
  clean error   exit 2, stderr's last nonblank line starts with 'error:', no 'Traceback' in the output
  traceback     'Traceback' anywhere in the output
  hang          still running after --timeout seconds (then killed)
  silent wrong  exit 0 where an error or a rebuild was expected, or vectors that differ from the reference
  lost          a previous good output damaged or removed, or a finished run's outputs replaced by another's
  other         any other exit (absl's exit 1, a leftover temporary file filling the disk, ...)
  ok            success where success is expected (e.g. a kill -9 trial whose rerun is bit-identical)
Speed-ups that do not change what is measured: the runs share a persistent JAX compilation cache (warmed by the
reference run, so a kill -9 never lands in a cache write), and use the numpy input (identical batches to
tf.data's), except the out-of-range ids case, which needs tf.data. Full-disk cases need root (a size-limited
tmpfs); the tfds case needs `unshare -n` (a network namespace with only its own loopback, where a 127.0.0.1
proxy refuses every download at once); network cases use only 127.0.0.1. Randomness (kill moments, damage
offsets, bit flips) comes from --seed, per case, so a case draws the same numbers whatever --only selects;
process timing still varies from run to run.
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import dataclasses
import fcntl
import glob
import gzip
import http.server
import json
import lzma
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402

ROOT = common.ROOT
CKPT_EVERY = 25  # steps between checkpoints: several saves per run, so kills land in them
PAGE = 4096

OK, CLEAN, TRACEBACK, HANG, SILENT, LOST, OTHER, SKIPPED = (
    "ok", "clean error", "traceback", "hang", "silent wrong", "lost", "other", "skipped")
CATEGORIES = (CLEAN, TRACEBACK, HANG, SILENT, LOST, OTHER, OK, SKIPPED)


@dataclasses.dataclass
class Outcome:
  """A finished (or killed) process: exit status, its output, whether it ran past the timeout."""

  rc: int | None
  out: str
  err: str
  timed_out: bool
  seconds: float
  pid: int

  @property
  def text(self) -> str:
    return self.out + "\n" + self.err

  def last_line(self) -> str:
    """stderr's last nonblank line (else stdout's), shortened for the table."""
    for stream in (self.err, self.out):
      lines = [line.strip() for line in stream.replace("\r", "\n").splitlines() if line.strip()]
      if lines:
        return lines[-1][:160]
    return ""


def classify(o: Outcome) -> str:
  """hang / traceback / ok (exit 0) / clean error / other, from the exit status and output alone."""
  if o.timed_out:
    return HANG
  if "Traceback" in o.text:
    return TRACEBACK
  if o.rc == 0:
    return OK
  lines = [line for line in o.err.splitlines() if line.strip()]
  if o.rc == 2 and lines and lines[-1].startswith("error:"):
    return CLEAN
  return OTHER


def expect_error(o: Outcome) -> tuple[str, str]:
  """(category, note) for a case that must fail: a success is silent wrong."""
  got = classify(o)
  if got == OK:
    return SILENT, "exit 0"
  if got == HANG:
    return HANG, f"no exit within {o.seconds:.0f}s"
  return got, (o.last_line() if got == CLEAN else failure_note(o, got))


def failure_note(o: Outcome, got: str) -> str:
  """A short note for a failed run: the exit status and the last line (a traceback's exception line)."""
  if got == HANG:
    return f"no exit within {o.seconds:.0f}s"
  return f"exit {o.rc}: {exception_line(o) if got == TRACEBACK else o.last_line()}"


def exception_line(o: Outcome) -> str:
  """The exception line of the last traceback in the output (its first unindented line after the frames)."""
  for stream in (o.err, o.out):
    if "Traceback" in stream:
      after = stream[stream.rindex("Traceback"):].splitlines()[1:]
      return next((x for x in after if x.strip() and not x.startswith(" ")), o.last_line())[:160]
  return o.last_line()


_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


class Proc:
  """A subprocess with its stdout/stderr in files (readable while it runs), in its own process group."""

  def __init__(self, cmd: list[str], log_prefix: str, env: dict[str, str], timeout: float):
    self.out_path, self.err_path = log_prefix + ".out", log_prefix + ".err"
    self.timeout, self.t0 = timeout, time.monotonic()
    with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
      self.p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    with _LIVE_LOCK:
      _LIVE.add(self.p)

  @property
  def pid(self) -> int:
    return self.p.pid

  def alive(self) -> bool:
    return self.p.poll() is None

  def elapsed(self) -> float:
    return time.monotonic() - self.t0

  def stdout(self) -> str:
    with open(self.out_path, "rb") as f:
      return f.read().decode(errors="replace")

  def signal(self, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
      os.kill(self.p.pid, sig)

  def wait(self) -> Outcome:
    """Waits until it exits or its timeout passes (then kills its process group: a hang)."""
    timed_out = False
    try:
      self.p.wait(timeout=max(self.timeout - self.elapsed(), 0.1))
    except subprocess.TimeoutExpired:
      timed_out = True
    _kill_group(self.p)
    self.p.wait()
    with _LIVE_LOCK:
      _LIVE.discard(self.p)
    with open(self.out_path, "rb") as f:
      out = f.read().decode(errors="replace")
    with open(self.err_path, "rb") as f:
      err = f.read().decode(errors="replace")
    return Outcome(self.p.returncode, out, err, timed_out, self.elapsed(), self.p.pid)


def _kill_group(p: subprocess.Popen) -> None:
  """SIGKILLs what is left of the process group this benchmark started (the process and its children)."""
  with contextlib.suppress(ProcessLookupError, PermissionError):
    os.killpg(p.pid, signal.SIGKILL)


def wait_until(proc: Proc, predicate: Callable[[], bool], poll: float = 0.002) -> bool:
  """Polls predicate while proc runs (up to its timeout); whether it became true."""
  while proc.alive() and proc.elapsed() < proc.timeout:
    if predicate():
      return True
    time.sleep(poll)
  return predicate()


def listdir(path: str) -> list[str]:
  try:
    return os.listdir(path)
  except OSError:
    return []


def ckpt_tmp(workdir: str) -> list[str]:
  """Orbax's in-flight checkpoint directories (*.orbax-checkpoint-tmp*)."""
  return [n for n in listdir(os.path.join(workdir, "checkpoints")) if "orbax-checkpoint-tmp" in n]


def steps(workdir: str) -> list[int]:
  return sorted(int(n) for n in listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())


def vector_entries(workdir: str) -> list[str]:
  return [n for n in listdir(workdir) if "vectors" in n]


def token_caches(workdir: str) -> list[str]:
  return sorted(glob.glob(os.path.join(workdir, "tokens*.i32")))


def read(path: str) -> bytes | None:
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError:
    return None


def free_port() -> int:
  """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@dataclasses.dataclass
class Ctx:
  """What the cases share: flags, paths of the corpus slice and the reference run, what the machine allows."""

  args: argparse.Namespace
  tmp: str
  corpus: str
  env: dict[str, str]
  timeout_fields: list[str]
  ref: str = ""
  ref_vectors: bytes = b""
  ref_seconds: float = 0.0
  ref_ckpt_saves: int = 0
  tmpfs_reason: str = ""  # why full-disk cases are skipped ('' when they can run)
  unshare_reason: str = ""

  def proc(self, cmd: list[str], log_prefix: str, env: dict[str, str] | None = None,
           timeout: float | None = None) -> Proc:
    return Proc(cmd, log_prefix, {**self.env, **(env or {})}, timeout or self.args.timeout)

  def train_cmd(self, workdir: str, config: str = "configs/tiny.py", extra: tuple[str, ...] = (),
                **overrides: str) -> list[str]:
    """train.py on the tiny config and the corpus slice; overrides are --config.KEY=VALUE."""
    flags = {"corpus": self.corpus, "checkpoint_every_steps": str(CKPT_EVERY), "input": "numpy", **overrides}
    return [sys.executable, "train.py", f"--config={config}", f"--workdir={workdir}",
            *(f"--config.{k}={v}" for k, v in flags.items()), *extra]

  def train(self, workdir: str, log_prefix: str, **kwargs) -> Outcome:
    env, timeout = kwargs.pop("env", None), kwargs.pop("timeout", None)
    return self.proc(self.train_cmd(workdir, **kwargs), log_prefix, env, timeout).wait()

  def eval(self, log_prefix: str, *args: str) -> Outcome:
    return self.proc([sys.executable, "eval.py", *args], log_prefix).wait()

  def copy_ref(self, dst: str) -> str:
    shutil.copytree(self.ref, dst, symlinks=True)
    return dst

  def same_vectors(self, workdir: str) -> bool:
    return read(os.path.join(workdir, "vectors.bin")) == self.ref_vectors

  def short_timeouts(self) -> dict[str, str]:
    """The config's coordinator timeout field(s) set short, if the config has any."""
    return {field: "5" for field in self.timeout_fields}


def drop_outputs(workdir: str) -> None:
  """Removes the exported outputs, so a rerun must export again from its checkpoints."""
  for name in ("vectors.txt", "vectors.bin", "results.json"):
    with contextlib.suppress(FileNotFoundError):
      os.remove(os.path.join(workdir, name))


def table_files(step_dir: str) -> list[str]:
  """A checkpoint's table data files (the large files under tables/)."""
  files = [os.path.join(d, f) for d, _, names in os.walk(os.path.join(step_dir, "tables")) for f in names]
  return sorted(f for f in files if os.path.getsize(f) >= 1024)


def damage_tables(step_dir: str, rng: random.Random) -> None:
  """Overwrites 4 KiB in the middle half of each table data file with random bytes."""
  for path in table_files(step_dir):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
      f.seek(rng.randrange(size // 4, max(size * 3 // 4 - PAGE, size // 4 + 1)))
      f.write(rng.randbytes(min(PAGE, size // 2)))


def damage_meta(step_dir: str) -> None:
  """Replaces the checkpoint's JSON metadata item with garbage."""
  for d, _, names in os.walk(os.path.join(step_dir, "meta")):
    for name in names:
      if "commit_success" not in name:
        with open(os.path.join(d, name), "wb") as f:
          f.write(b'{"step": 12, garbage \x00\xff')


def flip_bit(step_dir: str, rng: random.Random) -> str:
  """Flips one random bit of one random table data file; says where."""
  path = rng.choice(table_files(step_dir))
  size = os.path.getsize(path)
  offset, bit = rng.randrange(size), rng.randrange(8)
  with open(path, "r+b") as f:
    f.seek(offset)
    byte = f.read(1)[0]
    f.seek(offset)
    f.write(bytes([byte ^ (1 << bit)]))
  return f"bit {bit} of byte {offset} of {os.path.basename(path)[:8]}"


# ---------------------------------------------------------------------------------------------------------------
# Cases. Each returns one (got, note) per row it registered.

@dataclasses.dataclass
class Row:
  name: str
  expected: str
  accept: tuple[str, ...]


@dataclasses.dataclass
class Case:
  rows: list[Row]
  fn: Callable[[Ctx, str, random.Random], list[tuple[str, str]]]
  needs: str = ""  # 'tmpfs' or 'unshare': skipped with the reason when the machine does not allow it


CASES: list[Case] = []


def add(rows: list[tuple[str, str, tuple[str, ...]]], fn, needs: str = "") -> None:
  CASES.append(Case([Row(*r) for r in rows], fn, needs))


def one(name: str, expected: str, accept: tuple[str, ...] = (CLEAN,), needs: str = ""):
  """Registers a one-row case."""
  def register(fn):
    add([(name, expected, accept)], lambda ctx, d, rng: [fn(ctx, d, rng)], needs)
    return fn
  return register


ERROR = "clean error"
BAD_TRAIN = [
    ("--config.block_length=0", {"block_length": "0"}),
    ("--config.dim=abc", {"dim": "abc"}),
    ("--config.dim=1.5", {"dim": "1.5"}),
    ("--config.alpha=fast", {"alpha": "fast"}),
    ("--config.lowercase=maybe", {"lowercase": "maybe"}),
    ("--config.seed=1e23", {"seed": "1e23"}),
    ("--config.dim=1000000000", {"dim": "1000000000"}),
    ("--config.coordinator_address=auto", {"coordinator_address": "auto"}),
]


def _bad_train(overrides: dict[str, str]):
  def fn(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
    workdir = os.path.join(d, "run")
    got, note = expect_error(ctx.train(workdir, os.path.join(d, "train"), **overrides))
    if got == CLEAN and os.path.exists(os.path.join(workdir, "vocab.tsv")):
      note += " (vocab.tsv written before the error)"
    return got, note
  return fn


for _name, _overrides in BAD_TRAIN:
  one(f"bad input: {_name}", ERROR)(_bad_train(_overrides))


@one("bad input: extra positional argument", ERROR)
def _extra_arg(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  return expect_error(ctx.train(os.path.join(d, "run"), os.path.join(d, "train"), extra=("more",)))


@one("bad input: --config=configs/nope.py", ERROR)
def _missing_config(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  return expect_error(ctx.train(os.path.join(d, "run"), os.path.join(d, "train"), config="configs/nope.py"))


@one("network: coordinator 127.0.0.1:<closed port>, 2 processes", "clean error, bounded wait")
def _unreachable(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  port = free_port()
  o = ctx.train(os.path.join(d, "run"), os.path.join(d, "train"), coordinator_address=f"127.0.0.1:{port}",
                num_processes="2", process_id="1", **ctx.short_timeouts())
  got, note = expect_error(o)
  fields = ", ".join(f"{f}=5" for f in ctx.timeout_fields) or "no timeout field in the config"
  return got, f"{note} [{o.seconds:.0f}s; {fields}]"


@one("corpus: tfds:lm1b not prepared (offline)", ERROR, needs="unshare")
def _tfds(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  data_dir = os.path.join(d, "tfds")
  os.makedirs(data_dir)
  train = ctx.train_cmd(os.path.join(d, "run"), corpus="tfds:lm1b", tfds_data_dir=data_dir)
  cmd = ["unshare", "-n", sys.executable, os.path.abspath(__file__), OFFLINE, *train]
  env = {"TFDS_DATA_DIR": data_dir, "NO_GCE_CHECK": "True"}
  return expect_error(ctx.proc(cmd, os.path.join(d, "train"), env).wait())


OFFLINE = "--_offline"  # the hidden mode below, run inside `unshare -n`


class _Refuse(http.server.BaseHTTPRequestHandler):
  """A proxy that answers every request 403 at once (urllib3 retries a refused connection for minutes)."""

  def _refuse(self) -> None:
    self.send_error(403, "offline")

  do_GET = do_HEAD = do_POST = do_PUT = do_CONNECT = _refuse

  def log_message(self, *args) -> None:
    pass


def offline(cmd: list[str]) -> int:
  """Runs cmd in this (new, empty) network namespace: brings up its loopback only and proxies all HTTP(S) to a
  127.0.0.1 server that refuses it, so a download fails fast and nothing can reach any other address."""
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, struct.pack("16sH", b"lo", 0))[:18])[1]
    fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  proxy = f"http://127.0.0.1:{server.server_address[1]}"
  env = {**os.environ, **{k: proxy for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}}
  return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


# eval.py

@one("eval: garbage config.json in the workdir", ERROR)
def _eval_config(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  workdir = ctx.copy_ref(os.path.join(d, "run"))
  with open(os.path.join(workdir, "config.json"), "wb") as f:
    f.write(b'{"dim": 16, \x00garbage')
  return expect_error(ctx.eval(os.path.join(d, "eval"), f"--workdir={workdir}", "--no_bundled"))


@one("eval: empty vocab.tsv beside checkpoints", ERROR)
def _eval_empty_vocab(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  workdir = ctx.copy_ref(os.path.join(d, "run"))
  open(os.path.join(workdir, "vocab.tsv"), "w").close()
  return expect_error(ctx.eval(os.path.join(d, "eval"), f"--workdir={workdir}", "--no_bundled"))


@one("eval: NaN/inf rows, --neighbors", "clean error, or rows skipped", (CLEAN, OK))
def _eval_nan(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  words, dim, bad = [f"w{i}" for i in range(60)], 8, {3: "nan", 7: "nan", 11: "inf", 19: "-inf"}
  path = os.path.join(d, "nan.txt")
  with open(path, "w") as f:
    f.write(f"{len(words)} {dim}\n")
    for i, word in enumerate(words):
      values = [bad[i]] * dim if i in bad else [f"{rng.gauss(0, 1):.6f}" for _ in range(dim)]
      f.write(f"{word} {' '.join(values)}\n")
  o = ctx.eval(os.path.join(d, "eval"), f"--vectors={path}", "--no_bundled", "--neighbors=w0")
  got = classify(o)
  if got != OK:
    return expect_error(o)
  line = next((x for x in o.out.splitlines() if x.startswith("w0:")), "")
  listed = [item.rsplit(" ", 1) for item in line.removeprefix("w0:").strip().split(", ") if " " in item]
  if any(not math.isfinite(_float(score)) for _, score in listed):
    return SILENT, f"non-finite scores: {line[:100]}"
  if any(word in ("w0", *(words[i] for i in bad)) for word, _ in listed):
    return SILENT, f"lists the query or a bad row: {line[:100]}"
  return OK, line[:100]


def _float(text: str) -> float:
  try:
    return float(text)
  except ValueError:
    return math.nan


@one("eval: damaged newest checkpoint, label", "ok, not labelled the latest", (OK,))
def _eval_damaged_label(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  workdir = ctx.copy_ref(os.path.join(d, "run"))
  newest, previous = steps(workdir)[-1], steps(workdir)[-2]
  damage_tables(os.path.join(workdir, "checkpoints", str(newest)), rng)
  o = ctx.eval(os.path.join(d, "eval"), f"--workdir={workdir}", "--no_bundled")
  got = classify(o)
  if got != OK:
    return got, failure_note(o, got)
  header = next((x for x in o.out.splitlines() if "words, dimension" in x), "")
  if "latest" in header and str(previous) not in header:
    return SILENT, header[-100:]
  return OK, header[-100:]


@one("eval: corrupt .gz vectors file", ERROR)
def _eval_gz(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  text = read(os.path.join(ctx.ref, "vectors.txt")) or b""
  path = os.path.join(d, "vectors.txt.gz")
  with open(path, "wb") as f:
    data = gzip.compress(text, mtime=0)
    f.write(corrupt_deflate(data, 10, len(data) - 8, -15, rng))
  return expect_error(ctx.eval(os.path.join(d, "eval"), f"--vectors={path}", "--no_bundled"))


def corrupt_deflate(data: bytes, start: int, end: int, wbits: int, rng: random.Random) -> bytes:
  """data with 1 to 64 random bytes somewhere in the middle half of its raw deflate stream [start, end) such that
  inflating it fails in zlib itself (a bad block, not only a checksum mismatch: deflated text mostly decodes
  on through random bytes, so this takes many tries); the last try if none of 3000 does."""
  for _ in range(3000):
    at = rng.randrange(start + (end - start) // 4, start + (end - start) * 3 // 4)
    length = rng.randint(1, 64)
    damaged = data[:at] + rng.randbytes(length) + data[at + length:]
    try:
      zlib.decompressobj(wbits).decompress(damaged[start:end])
    except zlib.error:
      break
  return damaged


# Corpus formats and contents.

def _corpus_error(make: Callable[[Ctx, str, random.Random], str]):
  def fn(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
    path = make(ctx, d, rng)
    if not path:
      return SKIPPED, "no zip binary (zip -P)"
    return expect_error(ctx.train(os.path.join(d, "run"), os.path.join(d, "train"), corpus=path))
  return fn


def _gz_corpus(ctx: Ctx, d: str, rng: random.Random) -> str:
  path = os.path.join(d, "corpus.txt.gz")
  with open(path, "wb") as f:
    data = gzip.compress(read(ctx.corpus), mtime=0)
    f.write(corrupt_deflate(data, 10, len(data) - 8, -15, rng))
  return path


def _zip_corpus(ctx: Ctx, d: str, rng: random.Random) -> str:
  path = os.path.join(d, "corpus.zip")
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(ctx.corpus, "corpus.txt")
  with zipfile.ZipFile(path) as z:
    info = z.infolist()[0]
  data = read(path)
  local = data[info.header_offset:info.header_offset + 30]  # the local header's name and extra lengths
  start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
  with open(path, "wb") as f:
    f.write(corrupt_deflate(data, start, start + info.compress_size, -15, rng))
  return path


def _password_zip(ctx: Ctx, d: str, rng: random.Random) -> str:
  if not shutil.which("zip"):
    return ""
  path = os.path.join(d, "corpus.zip")
  subprocess.run(["zip", "-q", "-j", "-P", "secret", path, ctx.corpus], check=True)
  return path


def _random_corpus(ctx: Ctx, d: str, rng: random.Random) -> str:
  path = os.path.join(d, "random.bin")
  with open(path, "wb") as f:
    f.write(rng.randbytes(256 * 1024))
  return path


one("corpus: .gz with a corrupt deflate block", ERROR)(_corpus_error(_gz_corpus))
one("corpus: .zip with a corrupt member", ERROR)(_corpus_error(_zip_corpus))
one("corpus: password-protected .zip", ERROR, (CLEAN, SKIPPED))(_corpus_error(_password_zip))
one("corpus: random bytes", "clean error (not text)")(_corpus_error(_random_corpus))


def _compressed_corpus(suffix: str, compress: Callable[[bytes], bytes]):
  def fn(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
    path = os.path.join(d, "corpus.txt" + suffix)
    with open(path, "wb") as f:
      f.write(compress(read(ctx.corpus)))
    workdir = os.path.join(d, "run")
    o = ctx.train(workdir, os.path.join(d, "train"), corpus=path, epochs="1")
    got = classify(o)
    if got != OK:
      return got, failure_note(o, got)
    same = (read(os.path.join(workdir, "vocab.tsv")) == read(os.path.join(ctx.ref, "vocab.tsv"))
            and [read(p) for p in token_caches(workdir)] == [read(p) for p in token_caches(ctx.ref)])
    return (OK, "same vocabulary and token cache as the plain text") if same else (
        SILENT, "vocabulary or token cache differs from the plain text's")
  return fn


one("corpus: .bz2", "ok, read like the plain text", (OK,))(_compressed_corpus(".bz2", bz2.compress))
one("corpus: .xz", "ok, read like the plain text", (OK,))(_compressed_corpus(".xz", lzma.compress))


# Checkpoints.

def _rerun_same(ctx: Ctx, workdir: str, log_prefix: str) -> tuple[str, str, Outcome]:
  """Reruns the reference command on workdir (outputs dropped first): ok only with the reference's vectors."""
  drop_outputs(workdir)
  o = ctx.train(workdir, log_prefix)
  got = classify(o)
  if got != OK:
    return got, failure_note(o, got), o
  if not ctx.same_vectors(workdir):
    return SILENT, "exit 0, vectors differ from the reference", o
  return OK, "", o


def _damaged_newest(damage: Callable[[str, random.Random], None]):
  def fn(ctx: Ctx, d: str, rng: random.Random) -> list[tuple[str, str]]:
    workdir = ctx.copy_ref(os.path.join(d, "run"))
    newest = steps(workdir)[-1]
    damage(os.path.join(workdir, "checkpoints", str(newest)), rng)
    got, note, o = _rerun_same(ctx, workdir, os.path.join(d, "rerun1"))
    if got == OK:
      note = "damage reported" if "damaged" in o.text else "damage not reported"
    got2, note2, _ = _rerun_same(ctx, workdir, os.path.join(d, "rerun2"))
    return [(got, f"step {newest}: {note}"), (got2, note2 or "not blocked")]
  return fn


for _kind, _damage in (("table data", damage_tables), ("meta", lambda path, rng: damage_meta(path))):
  add([(f"checkpoint: newest {_kind} damaged, rerun", "ok: previous one, same vectors", (OK,)),
       (f"checkpoint: newest {_kind} damaged, second rerun", "ok: not blocked", (OK,))], _damaged_newest(_damage))


def _bit_flip(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  workdir = ctx.copy_ref(os.path.join(d, "run"))
  where = flip_bit(os.path.join(workdir, "checkpoints", str(steps(workdir)[-1])), rng)
  got, note, o = _rerun_same(ctx, workdir, os.path.join(d, "rerun"))
  detected = "detected" if "damaged" in o.text else "not reported"
  return got, f"{where}; {note or 'same vectors'} ({detected})"


for _i in range(5):
  one(f"checkpoint: single-bit flip #{_i + 1} in table data", "ok: detected or harmless, same vectors",
      (OK,))(_bit_flip)


@one("checkpoint: all damaged", "ok: one line 'step 0', same vectors", (OK,))
def _all_damaged(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  workdir = ctx.copy_ref(os.path.join(d, "run"))
  for step in steps(workdir):
    damage_tables(os.path.join(workdir, "checkpoints", str(step)), rng)
  got, note, o = _rerun_same(ctx, workdir, os.path.join(d, "rerun"))
  if got != OK:
    return got, note
  said = [x.strip() for x in o.out.splitlines() if re.search(r"\bstep 0\b", x)]
  return (OK, said[0][:100]) if said else (SILENT, "no line saying it starts from step 0")


# Token cache and vocabulary.

def _fresh_from_cache(mutate: Callable[[Ctx, str, random.Random], str], **overrides: str):
  """Training from the reference's vocabulary and token cache, mutated, without checkpoints: ok only when the
  damage is caught (rebuilt: the reference's vectors) or refused in one line."""
  def fn(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
    workdir = ctx.copy_ref(os.path.join(d, "run"))
    shutil.rmtree(os.path.join(workdir, "checkpoints"))
    drop_outputs(workdir)
    what = mutate(ctx, workdir, rng)
    o = ctx.train(workdir, os.path.join(d, "train"), **overrides)
    got = classify(o)
    if got != OK:
      return got, failure_note(o, got) if got != CLEAN else o.last_line()
    if not ctx.same_vectors(workdir):
      return SILENT, f"{what}: trained, vectors differ from the reference"
    return OK, f"{what}: rebuilt, same vectors"
  return fn


def _truncate_cache(ctx: Ctx, workdir: str, rng: random.Random) -> str:
  path = token_caches(workdir)[0]
  os.truncate(path, os.path.getsize(path) * 45 // 100 // 4 * 4)
  return "truncated to 45%"


def _ff_cache(ctx: Ctx, workdir: str, rng: random.Random) -> str:
  path = token_caches(workdir)[0]
  with open(path, "r+b") as f:
    f.write(b"\xff" * os.path.getsize(path))
  return "all 0xff"


def _out_of_range_cache(ctx: Ctx, workdir: str, rng: random.Random) -> str:
  path = token_caches(workdir)[0]
  with open(os.path.join(workdir, "vocab.tsv"), "rb") as f:
    vocab_size = sum(1 for _ in f)
  data = bytearray(read(path))
  n = len(data) // 4
  for i in rng.sample(range(n), max(n // 100, 1)):
    data[4 * i:4 * i + 4] = (vocab_size + rng.randrange(1, 1000)).to_bytes(4, "little")
  with open(path, "wb") as f:
    f.write(data)
  return f"1% of ids >= {vocab_size}"


def _empty_vocab_ckpt(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  workdir = ctx.copy_ref(os.path.join(d, "run"))
  open(os.path.join(workdir, "vocab.tsv"), "w").close()
  got, note, _ = _rerun_same(ctx, workdir, os.path.join(d, "rerun"))
  return got, note or "rebuilt, same vectors"


ACCEPT_REBUILD = (OK, CLEAN)
one("token cache: truncated to 45%", "rebuilt (same vectors) or clean error", ACCEPT_REBUILD)(
    _fresh_from_cache(_truncate_cache))
one("token cache: overwritten with 0xff", "rebuilt (same vectors) or clean error", ACCEPT_REBUILD)(
    _fresh_from_cache(_ff_cache))
one("token cache: out-of-range ids (tf.data input)", "rebuilt (same vectors) or clean error", ACCEPT_REBUILD)(
    _fresh_from_cache(_out_of_range_cache, input="tfdata"))
one("vocabulary: empty vocab.tsv beside checkpoints", "rebuilt (same vectors) or clean error", ACCEPT_REBUILD)(
    _empty_vocab_ckpt)


def _corpus_edit(ctx: Ctx, d: str, rng: random.Random) -> list[tuple[str, str]]:
  """A run on a private copy of the corpus, then a same-size edit of it (reversed words in the middle)."""
  corpus = os.path.join(d, "corpus.txt")
  shutil.copyfile(ctx.corpus, corpus)
  first = os.path.join(d, "run")
  o = ctx.train(first, os.path.join(d, "first"), corpus=corpus, epochs="1")
  if classify(o) != OK:
    return [(OTHER, f"the first run failed: {o.last_line()}")] * 2
  fresh = os.path.join(d, "fresh")
  shutil.copytree(first, fresh)
  shutil.rmtree(os.path.join(fresh, "checkpoints"))
  drop_outputs(fresh)
  old_cache = [read(p) for p in token_caches(fresh)]
  data = read(corpus)
  stat = os.stat(corpus)
  at = data.index(b" ", len(data) // 2)
  words = data[at:at + 2000].split(b" ")
  edited = b" ".join(w[::-1] for w in words)
  with open(corpus, "r+b") as f:
    f.seek(at)
    f.write(edited)
  os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5 * 10**9))
  results = [expect_error(ctx.train(first, os.path.join(d, "resume"), corpus=corpus, epochs="1"))]
  o = ctx.train(fresh, os.path.join(d, "fresh"), corpus=corpus, epochs="1")
  got = classify(o)
  if got != OK:
    results.append((got, failure_note(o, got)))
  elif [read(p) for p in token_caches(fresh)] == old_cache:
    results.append((SILENT, "trained on the old token cache"))
  else:
    results.append((OK, "vocabulary and token cache rebuilt"))
  return results


add([("corpus: same-size edit, resume", "clean error (corpus changed)", (CLEAN,)),
     ("corpus: same-size edit, no checkpoints", "ok: token cache rebuilt", (OK,))], _corpus_edit)


# Signals, workdir sharing.

@one("signal: SIGTERM mid-run, exit status", "status not 0/1/2, rerun bit-identical", (OK,))
def _sigterm(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  workdir = os.path.join(d, "run")
  proc = ctx.proc(ctx.train_cmd(workdir), os.path.join(d, "train"))
  wait_until(proc, lambda: "epoch 1/" in proc.stdout(), poll=0.01)
  time.sleep(rng.uniform(0, 0.3))
  proc.signal(signal.SIGTERM)
  o = proc.wait()
  got = classify(o)
  if got in (HANG, TRACEBACK):
    return got, failure_note(o, got)
  if re.search(r"^trained \d+ words", o.out, re.M):
    return OTHER, "finished before the signal"
  if o.rc in (0, 1, 2):
    return SILENT, f"exit {o.rc} for an unfinished run"
  rerun = ctx.train(workdir, os.path.join(d, "rerun"))
  got = classify(rerun)
  if got != OK:
    return got, f"rerun: {failure_note(rerun, got)}"
  return (OK, f"exit {o.rc}; rerun bit-identical") if ctx.same_vectors(workdir) else (
      SILENT, f"exit {o.rc}; rerun's vectors differ")


def _two_processes(**second: str):
  def fn(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
    workdir = os.path.join(d, "run")
    first = ctx.proc(ctx.train_cmd(workdir, epochs="8"), os.path.join(d, "first"))
    wait_until(first, lambda: "epoch 1/" in first.stdout(), poll=0.01)
    if not first.alive():
      return OTHER, "the first run ended before the second started"
    b = ctx.proc(ctx.train_cmd(workdir, epochs="8", **second), os.path.join(d, "second")).wait()
    return _judge_two(first.wait(), b, workdir, bool(second))
  return fn


def _judge_two(a: Outcome, b: Outcome, workdir: str, different: bool) -> tuple[str, str]:
  """The second process must be refused in one line, and the first must finish with its outputs."""
  got_a, got_b = classify(a), classify(b)
  if HANG in (got_a, got_b):
    return HANG, f"{'first' if got_a == HANG else 'second'} did not exit"
  if got_a != OK:
    return LOST, f"the first run failed: {failure_note(a, got_a)}"
  if got_b == OK:
    return (LOST if different else SILENT), "both ran to the end on one workdir"
  if got_b != CLEAN:
    return got_b, f"second: {failure_note(b, got_b)}"
  if not os.path.exists(os.path.join(workdir, "vectors.bin")):
    return LOST, "the first run's vectors are missing"
  holder = "names the holder" if str(a.pid) in b.last_line() else "does not name the holder's pid"
  return OK, f"second refused, {holder}: {b.last_line()[:90]}"


one("workdir: two processes, different settings", "second refused in one line, first intact", (OK,))(
    _two_processes(seed="1"))
one("workdir: two processes, same settings", "second refused in one line, first intact", (OK,))(_two_processes())


@one("workdir: one multi-host run, 2 processes on 127.0.0.1", "ok: both share the workdir", (OK,))
def _multihost(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  workdir, port = os.path.join(d, "run"), free_port()
  timeouts = {field: "60" for field in ctx.timeout_fields}
  procs = [ctx.proc(ctx.train_cmd(workdir, epochs="1", coordinator_address=f"127.0.0.1:{port}", num_processes="2",
                                  process_id=str(i), **timeouts), os.path.join(d, f"p{i}"), {"JAX_PLATFORMS": "cpu"})
           for i in range(2)]
  outcomes = [p.wait() for p in procs]
  for i, o in enumerate(outcomes):
    got = classify(o)
    if got != OK:
      return got, f"process {i}: {failure_note(o, got)}"
  if not os.path.exists(os.path.join(workdir, "vectors.bin")):
    return SILENT, "exit 0 but no vectors.bin"
  return OK, "both exited 0"


# Full disk (a size-limited tmpfs).

@contextlib.contextmanager
def tmpfs(path: str, size: int) -> Iterator[str]:
  """A tmpfs of `size` bytes mounted at path for the block."""
  os.makedirs(path, exist_ok=True)
  subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True, capture_output=True)
  try:
    yield path
  finally:
    if subprocess.run(["umount", path], check=False, capture_output=True).returncode:
      subprocess.run(["umount", "-l", path], check=False, capture_output=True)


def fill(mount: str) -> None:
  """Takes every free byte of the filesystem at mount."""
  fd = os.open(os.path.join(mount, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
  try:
    st = os.statvfs(mount)
    with contextlib.suppress(OSError):
      os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize)
    with contextlib.suppress(OSError):
      while os.write(fd, b"\0" * PAGE):
        pass
  finally:
    os.close(fd)


def pages(nbytes: int) -> int:
  return -(-nbytes // PAGE) * PAGE


def leftovers(workdir: str) -> list[str]:
  return [n for n in listdir(workdir) if n.endswith(".tmp") or ".tmp." in n]


@one("full disk: while tokenizing", "clean error, no temporary file left", needs="tmpfs")
def _disk_tokenizing(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  vocab = sum(pages(os.path.getsize(os.path.join(ctx.ref, n))) for n in ("vocab.tsv", "vocab.json"))
  tokens = sum(os.path.getsize(p) for p in token_caches(ctx.ref))
  size = vocab + 16 * PAGE + pages(int(tokens * 0.4))
  with tmpfs(os.path.join(d, "mnt"), size) as mount:
    workdir = os.path.join(mount, "run")
    got, note = expect_error(ctx.train(workdir, os.path.join(d, "train")))
    left = leftovers(workdir)
  if left and got == CLEAN:
    return OTHER, f"left {', '.join(left)} filling the disk; {note}"
  return got, note


@one("full disk: at a checkpoint", ERROR, needs="tmpfs")
def _disk_checkpoint(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  with tmpfs(os.path.join(d, "mnt"), 64 << 20) as mount:
    workdir = os.path.join(mount, "run")
    proc = ctx.proc(ctx.train_cmd(workdir), os.path.join(d, "train"))
    filled = wait_until(proc, lambda: bool(ckpt_tmp(workdir)), poll=0.001)
    if filled:
      fill(mount)
    o = proc.wait()
  if not filled:
    return OTHER, "no checkpoint write seen"
  return expect_error(o)


@one("full disk: while writing vectors", "clean error, previous vectors kept", needs="tmpfs")
def _disk_vectors(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
  # dim 200: the text file's first write comes after ~1M values are formatted (about a second), so the disk
  # is full before it, whatever the scheduling; a tiny table's vectors are one write() each, too quick to catch.
  with tmpfs(os.path.join(d, "mnt"), 160 << 20) as mount:
    workdir = os.path.join(mount, "run")
    first = ctx.train(workdir, os.path.join(d, "first"), epochs="1", dim="200")
    if classify(first) != OK:
      return OTHER, f"the first run failed: {first.last_line()}"
    names = ("vectors.txt", "vectors.bin")
    before = {n: read(os.path.join(workdir, n)) for n in names}
    initial = sorted(vector_entries(workdir))
    proc = ctx.proc(ctx.train_cmd(workdir, epochs="2", dim="200"), os.path.join(d, "train"))
    filled = wait_until(proc, lambda: sorted(vector_entries(workdir)) != initial, poll=0.001)  # a temp file
    if filled:
      fill(mount)
    o = proc.wait()
    after = {n: read(os.path.join(workdir, n)) for n in names}
  damaged = [n for n in names if after[n] != before[n]]
  if damaged and (classify(o) != OK or not filled):
    return LOST, f"{', '.join(damaged)} damaged or removed; {o.last_line()}"
  if not filled:
    return OTHER, "the vectors were not rewritten"
  return expect_error(o)


# kill -9 trials.

@dataclasses.dataclass
class KillStats:
  """What the kill -9 trials saw, for the summary lines."""

  killed: int = 0
  identical: int = 0
  in_checkpoint: int = 0
  in_export: int = 0
  lock_refusals: int = 0
  reruns: int = 0
  lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


KILLS = KillStats()


def _kill_trial(mode: str):
  def fn(ctx: Ctx, d: str, rng: random.Random) -> tuple[str, str]:
    for attempt in range(3):  # a run that ends before its kill moment is tried again, killed earlier
      got, note = _kill_once(ctx, os.path.join(d, str(attempt)), rng, mode, 0.95 / 2**attempt)
      if got != SKIPPED:
        break
    return got, note
  return fn


def _kill_once(ctx: Ctx, d: str, rng: random.Random, mode: str, latest: float) -> tuple[str, str]:
  """One kill -9 (random: at a moment up to `latest` of the warm reference's duration) and the rerun."""
  os.makedirs(d)
  workdir = os.path.join(d, "run")
  proc = ctx.proc(ctx.train_cmd(workdir), os.path.join(d, "killed"))
  seen: set[str] = set()
  if mode == "random":
    delay = rng.uniform(0.05, latest) * ctx.ref_seconds
    wait_until(proc, lambda: proc.elapsed() >= delay, poll=0.005)
  elif mode == "checkpoint":
    k, delay = rng.randint(1, max(ctx.ref_ckpt_saves, 1)), rng.uniform(0, 0.01)

    def kth_save() -> bool:  # or export, if this run shows fewer saves than the reference did
      seen.update(ckpt_tmp(workdir))
      return len(seen) >= k or bool(vector_entries(workdir))

    wait_until(proc, kth_save, poll=0.001)
    time.sleep(delay)
  else:
    delay = rng.uniform(0, 0.08)
    wait_until(proc, lambda: bool(vector_entries(workdir)), poll=0.001)
    time.sleep(delay)
  during_ckpt, during_export = bool(ckpt_tmp(workdir)), bool(vector_entries(workdir))
  at = proc.elapsed()
  alive = proc.alive()
  proc.signal(signal.SIGKILL)
  killed = proc.wait()
  if not alive or killed.rc != -signal.SIGKILL:
    return SKIPPED, f"{mode}: the run ended before the kill (exit {killed.rc})"
  where = " during a checkpoint write" if during_ckpt else " during export" if during_export else ""
  rerun = ctx.train(workdir, os.path.join(d, "rerun"))
  got = classify(rerun)
  with KILLS.lock:
    KILLS.killed += 1
    KILLS.in_checkpoint += during_ckpt
    KILLS.in_export += during_export and not during_ckpt
    KILLS.reruns += 1
    KILLS.lock_refusals += got == CLEAN and "in use" in rerun.last_line()
  if got != OK:
    return got, f"killed at {at:.1f}s{where}; rerun: {failure_note(rerun, got)}"
  if not ctx.same_vectors(workdir):
    return SILENT, f"killed at {at:.1f}s{where}; rerun's vectors.bin differs"
  with KILLS.lock:
    KILLS.identical += 1
  return OK, f"killed at {at:.1f}s{where}; bit-identical"


def add_kill_trials(n: int, seed: int) -> None:
  """n trials, interleaved with the other cases; each draws its mode from its own seeded stream."""
  for i in range(n):
    mode = random.Random(f"{seed}/kill mode {i}").choices(["random", "checkpoint", "export"], [5, 3, 2])[0]
    add([(f"kill -9 #{i + 1:02d} ({mode})", "rerun bit-identical", (OK,))], lambda ctx, d, rng, m=mode: [
        _kill_trial(m)(ctx, d, rng)])
    CASES.insert(min(2 * i + 1, len(CASES) - 1), CASES.pop())


# ---------------------------------------------------------------------------------------------------------------

def write_slice(source: str, words: int, out: str) -> int:
  """The first `words` words of the corpus (zip member, .gz or plain) as 1,000-word lines; returns the count."""
  if source.endswith(".zip"):
    archive = zipfile.ZipFile(source)
    stream = archive.open(next(m for m in archive.infolist() if not m.is_dir()))
  else:
    stream = gzip.open(source, "rb") if source.endswith(".gz") else open(source, "rb")
  taken, rest = [], b""
  with stream:
    while len(taken) < words:
      chunk = stream.read(1 << 20)
      if not chunk:
        taken.extend(rest.split())
        break
      parts = (rest + chunk).split()
      rest = parts.pop() if not chunk[-1:].isspace() and parts else b""
      taken.extend(parts)
  taken = taken[:words]
  with open(out, "wb") as f:
    for i in range(0, len(taken), 1000):
      f.write(b" ".join(taken[i:i + 1000]) + b"\n")
  return len(taken)


def timeout_fields() -> list[str]:
  """configs/default.py's coordinator timeout field(s), read now (the code under test changes)."""
  script = ("from configs import default\n"
            "print(' '.join(k for k in default.get_config().keys() if 'timeout' in k))")
  try:
    return common.run_python(script).split()
  except subprocess.CalledProcessError:
    return []


def machine_checks(ctx: Ctx) -> None:
  """Whether full-disk (root, tmpfs) and offline tfds (unshare -n) cases can run here."""
  if os.geteuid() != 0:
    ctx.tmpfs_reason = "not root: cannot mount a size-limited tmpfs"
  else:
    try:
      with tmpfs(os.path.join(ctx.tmp, "probe"), 1 << 20):
        pass
    except (subprocess.CalledProcessError, OSError) as e:
      ctx.tmpfs_reason = f"mount -t tmpfs failed ({getattr(e, 'stderr', b'') or e})"
  try:
    ok = bool(shutil.which("unshare")) and not subprocess.run(["unshare", "-n", "true"], check=False,
                                                              capture_output=True).returncode
  except OSError:
    ok = False
  if not ok:
    ctx.unshare_reason = "cannot run without network (unshare -n); TFDS would try to download lm1b"


def reference(ctx: Ctx) -> None:
  """The uninterrupted run every trial is compared with, twice: the first warms the compilation cache, the second
  (from the cache) must give the same vectors and times a warm run, the span the random kills are drawn from."""
  runs = []
  for name in ("reference", "reference_warm"):
    workdir = os.path.join(ctx.tmp, name)
    proc = ctx.proc(ctx.train_cmd(workdir), os.path.join(ctx.tmp, name), timeout=max(ctx.args.timeout, 300))
    seen: set[str] = set()
    while proc.alive():
      seen.update(ckpt_tmp(workdir))
      time.sleep(0.001)
    o = proc.wait()
    if classify(o) != OK:
      sys.exit(f"chaos: the reference run failed (exit {o.rc}):\n{o.text[-3000:]}")
    runs.append((workdir, o.seconds, len(seen), read(os.path.join(workdir, "vectors.bin"))))
  (ctx.ref, cold, _, ctx.ref_vectors), (_, ctx.ref_seconds, ctx.ref_ckpt_saves, warm_vectors) = runs
  if warm_vectors != ctx.ref_vectors:
    sys.exit("chaos: two uninterrupted runs gave different vectors.bin; kill -9 trials cannot be compared")
  print(f"reference: {cold:.1f}s cold, {ctx.ref_seconds:.1f}s warm (same vectors.bin, {len(ctx.ref_vectors)} bytes), "
        f"checkpoints {steps(ctx.ref)} ({ctx.ref_ckpt_saves} writes seen)", file=sys.stderr, flush=True)


_PRINT_LOCK = threading.Lock()


def run_case(ctx: Ctx, case: Case, index: int) -> list[dict]:
  """Runs one case in its own directory; its rows as result dicts (an unexpected exception is reported)."""
  first = case.rows[0].name
  slug = re.sub(r"[^a-z0-9]+", "_", first.lower()).strip("_")[:60]
  d = os.path.join(ctx.tmp, "cases", f"{index:03d}_{slug}")
  os.makedirs(d)
  reason = {"tmpfs": ctx.tmpfs_reason, "unshare": ctx.unshare_reason}.get(case.needs, "")
  t0 = time.monotonic()
  if reason:
    outcomes = [(SKIPPED, reason)] * len(case.rows)
  else:
    try:
      outcomes = case.fn(ctx, d, random.Random(f"{ctx.args.seed}/{first}"))
    except Exception as e:  # noqa: BLE001 - a bug in the harness must not lose the other cases' results
      outcomes = [(OTHER, f"harness error: {type(e).__name__}: {e}"[:160])] * len(case.rows)
  seconds = time.monotonic() - t0
  outcomes = [(got, note.replace(d, "<case>").replace(ctx.tmp, "<tmp>")) for got, note in outcomes]
  if not ctx.args.keep:
    shutil.rmtree(d, ignore_errors=True)
  results = [{"case": row.name, "expected": row.expected, "got": got, "note": note, "pass": got in row.accept,
              "seconds": round(seconds, 1)} for row, (got, note) in zip(case.rows, outcomes)]
  with _PRINT_LOCK:
    for r in results:
      sys.stderr.write(f"  {'pass' if r['pass'] else 'FAIL'}  {r['case']}: {r['got']} ({r['seconds']}s) {r['note']}\n")
    sys.stderr.flush()
  return results


def stale_lock_row(results: list[dict]) -> dict | None:
  """The kill -9 trials' reruns met the killed process's lock: none may be refused by it."""
  if not KILLS.reruns:
    return None
  got = OK if not KILLS.lock_refusals else CLEAN
  return {"case": "workdir: stale lock after kill -9 (the trials' reruns)", "expected": "ok: rerun not blocked",
          "got": got, "note": f"{KILLS.lock_refusals} of {KILLS.reruns} reruns refused by the lock",
          "pass": got == OK, "seconds": 0.0}


def print_table(results: list[dict]) -> None:
  width = max(len(r["case"]) for r in results)
  exp_width = max(len(r["expected"]) for r in results)
  print(f"{'case':<{width}} | {'expected':<{exp_width}} | got")
  print(f"{'-' * width}-+-{'-' * exp_width}-+-{'-' * 40}")
  for r in results:
    got = r["got"] + (f" ({r['note']})" if r["note"] else "")
    print(f"{r['case']:<{width}} | {r['expected']:<{exp_width}} | {got}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument("--corpus", default="../shared/data/wiki2015_text8like.zip",
                      help="text corpus (.zip with one member, .gz or plain); relative paths from the repo root")
  parser.add_argument("--words", type=int, default=30000, help="words of the corpus slice the runs train on")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--trials", type=int, default=30, help="kill -9 trials")
  parser.add_argument("--jobs", type=int, default=2, help="cases run at once")
  parser.add_argument("--timeout", type=float, default=60, help="seconds before a process counts as a hang")
  parser.add_argument("--only", action="append", default=[],
                      help="run only the cases whose name contains this (repeat for several)")
  parser.add_argument("--json", default="", help="also write the results to this file")
  parser.add_argument("--out", default="", help="working directory (default: a new temporary one, removed after)")
  parser.add_argument("--keep", action="store_true", help="keep the cases' directories")
  parser.add_argument("--list", action="store_true", help="list the cases and exit")
  args = parser.parse_args()

  add_kill_trials(args.trials, args.seed)
  selected = [c for c in CASES if not args.only or any(o in row.name for o in args.only for row in c.rows)]
  if args.list:
    for c in selected:
      for row in c.rows:
        print(f"{row.name} | {row.expected}")
    return
  corpus = args.corpus if os.path.exists(args.corpus) else os.path.join(ROOT, args.corpus)
  if not os.path.exists(corpus):
    sys.exit(f"chaos: corpus {args.corpus} not found (give --corpus)")

  t0, load = time.monotonic(), common.load()
  tmp = os.path.abspath(args.out or tempfile.mkdtemp(prefix="w2v_chaos_"))
  os.makedirs(tmp, exist_ok=True)
  env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAX_COMPILATION_CACHE_DIR": os.path.join(tmp, "jax_cache"),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  slice_path = os.path.join(tmp, "corpus.txt")
  words = write_slice(corpus, args.words, slice_path)
  ctx = Ctx(args, tmp, slice_path, env, timeout_fields())
  machine_checks(ctx)
  print(f"chaos: {len(selected)} case(s), {words} words of {corpus}, seed {args.seed}, {args.jobs} jobs, {load}; "
        f"timeout fields: {ctx.timeout_fields or 'none'}", file=sys.stderr, flush=True)
  for reason in {ctx.tmpfs_reason, ctx.unshare_reason} - {""}:
    print(f"  skipping some cases: {reason}", file=sys.stderr)

  try:
    reference(ctx)
    with ThreadPoolExecutor(args.jobs) as pool:
      futures = [pool.submit(run_case, ctx, case, i) for i, case in enumerate(selected)]
      results = [r for f in futures for r in f.result()]
  finally:
    with _LIVE_LOCK:
      for p in list(_LIVE):
        _kill_group(p)
    if not args.out and not args.keep:
      shutil.rmtree(tmp, ignore_errors=True)
  if row := stale_lock_row(results):
    results.append(row)
  wall = time.monotonic() - t0

  results.sort(key=lambda r: r["case"].startswith("kill -9 #"))  # stable: the trials after the other cases
  print_table(results)
  counts = {c: sum(r["got"] == c for r in results) for c in CATEGORIES}
  print()
  print("  ".join(f"{c}: {counts[c]}" for c in CATEGORIES))
  trial_rows = [r for r in results if r["case"].startswith("kill -9 #")]
  print(f"kill -9 trials bit-identical: {KILLS.identical} / {KILLS.killed} killed ({KILLS.in_checkpoint} during a "
        f"checkpoint write, {KILLS.in_export} during export; {len(trial_rows)} trials)")
  print(f"as expected: {sum(r['pass'] for r in results)} / {len(results)} rows; wall {wall:.0f}s; "
        f"load at start {load.removeprefix('load ')}, at end {common.load().removeprefix('load ')}")
  if args.json:
    with open(args.json, "w") as f:
      kills = {k: getattr(KILLS, k) for k in ("killed", "identical", "in_checkpoint", "in_export")}
      json.dump({"seed": args.seed, "trials": args.trials, "words": words, "jobs": args.jobs, "wall_s": round(wall, 1),
                 "counts": counts, "kill_trials": kills, "results": results}, f, indent=2)
      f.write("\n")


if __name__ == "__main__":
  if sys.argv[1:2] == [OFFLINE]:
    sys.exit(offline(sys.argv[2:]))
  main()
