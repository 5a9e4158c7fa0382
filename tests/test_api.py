"""The Python API (w2v_jax.train/load, KeyedVectors against a numpy reference and gensim) and the w2v-jax command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import w2v_jax
from w2v_jax import api, trainer
from w2v_jax.keyed_vectors import KeyedVectors
from w2v_jax.stop_request import StopRequest
from w2v_jax.word2vec_format import write_word2vec

REPO = Path(__file__).resolve().parent.parent


def random_vectors(words: int = 60, dim: int = 8, seed: int = 0) -> KeyedVectors:
  rng = np.random.default_rng(seed)
  return KeyedVectors([f"w{i}" for i in range(words)], rng.standard_normal((words, dim)).astype(np.float32))


def unit(kv: KeyedVectors) -> np.ndarray:
  return kv.vectors / np.linalg.norm(kv.vectors, axis=1, keepdims=True)


def reference_top(scores: np.ndarray, exclude: list[int], topn: int) -> list[int]:
  scores = scores.astype(np.float64).copy()
  scores[exclude] = -np.inf
  return list(np.argsort(-scores, kind="stable")[:topn])


def test_import_is_light_and_exports_the_api() -> None:
  """import w2v_jax loads neither JAX nor TensorFlow; the API names are there."""
  code = "import sys, w2v_jax; print(sorted(set(w2v_jax.__all__) & set(dir(w2v_jax))), 'jax' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
  assert out.split("\n")[0] == "['KeyedVectors', 'UserError', 'load', 'train'] False"


def test_most_similar_is_3cosadd_over_unit_vectors_without_the_query_words() -> None:
  kv = random_vectors()
  u = unit(kv)
  got = kv.most_similar(positive=["w1", "w2"], negative=["w3"], topn=5)
  query = u[1] + u[2] - u[3]
  scores = u @ (query / np.linalg.norm(query))
  assert [w for w, _ in got] == [f"w{i}" for i in reference_top(scores, [1, 2, 3], 5)]
  np.testing.assert_allclose([s for _, s in got], np.sort(np.delete(scores, [1, 2, 3]))[::-1][:5], rtol=1e-5)
  assert [w for w, _ in kv.most_similar("w4", topn=3)] == [w for w, _ in kv.most_similar(positive=["w4"], topn=3)]
  assert kv.most_similar(positive=["w1"], topn=None).shape == (len(kv),)


def test_most_similar_cosmul_matches_gensims_formula() -> None:
  kv = random_vectors(seed=1)
  u = unit(kv)
  shifted = (1 + u @ u.T) / 2
  scores = shifted[:, 1] * shifted[:, 2] / (shifted[:, 3] + 1e-6)
  got = kv.most_similar_cosmul(positive=["w1", "w2"], negative=["w3"], topn=4)
  assert [w for w, _ in got] == [f"w{i}" for i in reference_top(scores, [1, 2, 3], 4)]
  np.testing.assert_allclose([s for _, s in got], [scores[int(w[1:])] for w, _ in got], rtol=1e-5)
  with pytest.raises(ValueError, match="no input"):
    kv.most_similar_cosmul(negative=["w1"])


def test_similarity_doesnt_match_lookups_and_errors() -> None:
  kv = random_vectors(seed=2)
  u = unit(kv)
  assert kv.similarity("w5", "w6") == pytest.approx(float(u[5] @ u[6]), rel=1e-5)
  group = ["w1", "w2", "w3", "w4", "w9"]
  rows = u[[1, 2, 3, 4, 9]]
  mean = rows.mean(axis=0)
  assert kv.doesnt_match([*group, "unknown"]) == group[int(np.argmin(rows @ (mean / np.linalg.norm(mean))))]
  assert "w1" in kv and "nope" not in kv and len(kv) == 60 and kv.index_to_key[7] == "w7"
  np.testing.assert_array_equal(kv["w7"], kv.vectors[7])
  with pytest.raises(KeyError, match="'nope' is not in the vocabulary"):
    kv.most_similar(positive=["nope"])
  with pytest.raises(ValueError, match="empty list"):
    kv.doesnt_match(["nope"])


@pytest.mark.needs_gensim
def test_to_gensim_gives_the_same_neighbours() -> None:
  kv = random_vectors(words=200, dim=16, seed=3)
  g = kv.to_gensim()
  for query in ({"positive": ["w1", "w2"], "negative": ["w3"]}, {"positive": ["w10"]}):
    assert [w for w, _ in g.most_similar(**query, topn=8)] == [w for w, _ in kv.most_similar(**query, topn=8)]
  assert [w for w, _ in g.most_similar_cosmul(positive=["w1", "w2"], negative=["w3"], topn=8)] == [
      w for w, _ in kv.most_similar_cosmul(positive=["w1", "w2"], negative=["w3"], topn=8)]
  assert g.doesnt_match(["w1", "w2", "w3", "w4"]) == kv.doesnt_match(["w1", "w2", "w3", "w4"])


def test_load_reads_files_and_workdirs_and_evaluates_as_eval(tmp_path) -> None:
  kv = random_vectors(seed=4)
  kv.save_word2vec_format(tmp_path / "v.txt")
  (tmp_path / "run").mkdir()
  write_word2vec(tmp_path / "run" / "vectors.bin", kv.index_to_key, kv.vectors, binary=True)
  for path in (tmp_path / "v.txt", tmp_path / "run"):
    loaded = w2v_jax.load(path)
    assert loaded.index_to_key == kv.index_to_key
    np.testing.assert_allclose(loaded.vectors, kv.vectors, rtol=1e-6)
  (tmp_path / "pairs.txt").write_text("w1 w2 1.0\nw1 w3 2.0\nw2 w3 3.0\nw1 zz 1.0\n")
  assert kv.evaluate_word_pairs(tmp_path / "pairs.txt")["oov_pairs"] == 1
  (tmp_path / "q.txt").write_text(": s\nw1 w2 w3 w4\n")
  assert kv.evaluate_word_analogies(tmp_path / "q.txt")["questions"] == 1
  with pytest.raises(w2v_jax.UserError, match="not found"):
    w2v_jax.load(tmp_path / "missing.bin")


def test_train_refuses_unknown_and_mistyped_fields_and_bad_sentences(tmp_path) -> None:
  with pytest.raises(w2v_jax.UserError, match="no config field 'vector_size'; here it is dim"):
    w2v_jax.train(["a b"], workdir=tmp_path, vector_size=10)
  with pytest.raises(w2v_jax.UserError, match="dim='ten'"):
    w2v_jax.train(["a b"], workdir=tmp_path, dim="ten")
  with pytest.raises(w2v_jax.UserError, match="sentence 1 is int"):
    w2v_jax.train(["a b", 3], workdir=tmp_path)


def test_sentences_are_spilled_one_a_line_and_an_unchanged_file_is_kept(tmp_path) -> None:
  path = str(tmp_path / "s.txt")
  api.spill_sentences(iter(["the cat", ["a", "dog"]]), path)
  assert Path(path).read_text() == "the cat\na dog\n"
  before = os.stat(path).st_mtime_ns
  api.spill_sentences(["the cat", ("a", "dog")], path)
  assert os.stat(path).st_mtime_ns == before and os.listdir(tmp_path) == ["s.txt"]


def test_a_stopped_run_raises_user_error_naming_its_checkpoint(tmp_path, monkeypatch) -> None:
  monkeypatch.setattr(trainer, "train_and_evaluate", lambda config, workdir, exit_on_second_signal, on_epoch_end: (
      {"stopped_at_step": 7} if not exit_on_second_signal else {}))
  with pytest.raises(w2v_jax.UserError, match=f"stopped at step 7; its checkpoint is in {tmp_path}/checkpoints"):
    w2v_jax.train(["a b"], workdir=tmp_path)


def test_on_epoch_end_sees_each_epochs_vectors_and_can_stop_training(tmp_path, capsys) -> None:
  """The callback gets the epochs done and that epoch's KeyedVectors; True stops there, and train() returns those
  vectors. Progress goes through the logger to stdout, and quiet=False shows it."""
  from configs import tiny

  rng = np.random.default_rng(0)
  sentences = [" ".join(f"w{i}" for i in rng.zipf(1.5, 12) % 40) for _ in range(300)]
  seen = []

  def on_epoch_end(epoch: int, vectors: KeyedVectors, scores: dict) -> bool:
    seen.append((epoch, vectors.vectors.copy(), scores))
    return epoch == 2

  kv = w2v_jax.train(sentences, workdir=tmp_path, config=tiny.get_config(), epochs=4, on_epoch_end=on_epoch_end)
  assert [epoch for epoch, _, _ in seen] == [1, 2] and seen[0][2] == {}
  assert not np.array_equal(seen[0][1], seen[1][1])
  np.testing.assert_array_equal(kv.vectors, seen[1][1])
  out = capsys.readouterr().out
  assert "on_epoch_end ended training after epoch 2 of 4" in out and "training skipgram" in out


def test_second_interrupt_raises_keyboard_interrupt_and_handlers_come_back() -> None:
  """From the API a second SIGINT raises KeyboardInterrupt (the interpreter lives on); off the main thread no
  handler is installed (signal.signal would raise there)."""
  previous = signal.getsignal(signal.SIGINT)
  stop = StopRequest(exit_on_second=False)
  stop._handle(signal.SIGINT, None)
  assert stop.requested
  with pytest.raises(KeyboardInterrupt):
    stop._handle(signal.SIGINT, None)
  stop.restore()
  assert signal.getsignal(signal.SIGINT) is previous
  made = []
  thread = threading.Thread(target=lambda: made.append(StopRequest(exit_on_second=False).previous))
  thread.start()
  thread.join()
  assert made == [{}]


def readme_snippet() -> str:
  text = (REPO / "README.md").read_text(encoding="utf-8")
  section = text[text.index("## Python API"):]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.needs_gensim
def test_readme_python_snippet_runs(tmp_path) -> None:
  """README's Python API snippet, as written: trains from sentences, queries, saves, loads, compares with gensim."""
  snippet = readme_snippet()
  assert 'most_similar(positive=["king", "woman"], negative=["man"]' in snippet
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  assert (tmp_path / "vectors.bin").is_file() and (tmp_path / "runs" / "api" / "sentences.txt").is_file()


def test_command_works_from_another_directory(tmp_path) -> None:
  """w2v-jax train finds configs/tiny.py in the installed configs package; a bad field is one line, status 2."""
  run = subprocess.run([sys.executable, "-m", "w2v_jax.cli", "train", "--config", "configs/tiny.py",
                        f"--workdir={tmp_path / 'run'}", "--config.vector_size=5"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, check=False)
  assert run.returncode == 2 and "here it is dim" in run.stderr and "tiny.py" in run.stderr, run.stderr
  script = Path(sys.executable).with_name("w2v-jax")  # the console script pip installed
  assert script.is_file(), "install the package (make test does) for its w2v-jax command"
  rng = np.random.default_rng(0)
  (tmp_path / "corpus.txt").write_text("\n".join(" ".join(f"w{i}" for i in rng.zipf(1.5, 12) % 40)
                                                 for _ in range(300)))
  quiet = subprocess.run([str(script), "train", "--config=configs/tiny.py", f"--workdir={tmp_path / 'run'}",
                          "--config.corpus=corpus.txt", "--config.epochs=1", "--quiet"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, check=False)
  assert quiet.returncode == 0 and (tmp_path / "run" / "vectors.bin").is_file(), quiet.stderr[-3000:]
  assert quiet.stdout == "", quiet.stdout  # --quiet: no progress lines, scores or neighbours
  bad = subprocess.run([sys.executable, "-m", "w2v_jax.cli", "fly"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, check=False)
  assert bad.returncode == 2 and "unknown command 'fly'" in bad.stderr


def test_nn_and_analogy_commands(tmp_path) -> None:
  words = ["man", "woman", "king", "queen", *[f"f{i}" for i in range(20)]]
  vectors = np.random.default_rng(0).standard_normal((len(words), 6)).astype(np.float32) * 0.1
  for i, dims in enumerate([(0, 3), (1, 3), (0, 4), (1, 4)]):
    vectors[i] = 0
    vectors[i, list(dims)] = 1
  write_word2vec(tmp_path / "v.bin", words, vectors, binary=True)
  command = [sys.executable, "-m", "w2v_jax.cli"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  nn = subprocess.run([*command, "nn", "--vectors=v.bin", "king", "man"], cwd=tmp_path, env=env,
                      capture_output=True, text=True, timeout=120, check=False)
  assert nn.returncode == 0, nn.stderr
  assert re.search(r"^king: .*\bqueen 0\.500", nn.stdout, re.M), nn.stdout
  assert re.search(r"^man: .*\bwoman 0\.500", nn.stdout, re.M), nn.stdout
  analogy = subprocess.run([*command, "analogy", "--vectors=v.bin", "man", "king", "woman"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120, check=False)
  assert analogy.returncode == 0 and "man:king::woman:? queen 1.000" in analogy.stdout, analogy.stderr
  wrong = subprocess.run([*command, "analogy", "--vectors=v.bin", "man", "king"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
  assert wrong.returncode == 2 and "give three words" in wrong.stderr
