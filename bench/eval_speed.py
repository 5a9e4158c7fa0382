"""Times analogy evaluation on the Google set: w2v_jax (jax.jit, batched) against gensim.

Random vectors for a text8-sized vocabulary (71,290 words, dimension 100); every word of
questions-words.txt is among the 30,000 most frequent, so all 19,544 questions are answered.
Accuracy is near zero on random vectors, which does not matter for speed. gensim is a test-only
dependency: install it to run this. Usage: python bench/eval_speed.py
"""

from __future__ import annotations

import logging
import os
import time

import jax
import numpy as np
from gensim.models import KeyedVectors

from w2v_jax import evaluation

NUM_WORDS = 71_290
DIM = 100
RESTRICT_VOCAB = 30_000


def _words() -> list[str]:
  """The question words shuffled among the 30,000 most frequent words, then filler words."""
  questions = evaluation.load_analogies(evaluation.bundled_benchmarks()["analogy"][0])
  question_words = list(dict.fromkeys(w for q in questions for w in q[1:]))
  filler = [f"w{i}" for i in range(NUM_WORDS - len(question_words))]
  top = question_words + filler[: RESTRICT_VOCAB - len(question_words)]
  np.random.default_rng(0).shuffle(top)
  return top + filler[RESTRICT_VOCAB - len(question_words) :]


def _timed(fn):
  """(result, wall seconds, CPU seconds of this process): CPU time is robust to a busy machine."""
  wall, cpu = time.perf_counter(), time.process_time()
  result = fn()
  return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
  logging.disable(logging.INFO)  # gensim logs every section
  words = _words()
  vectors = np.random.default_rng(1).standard_normal((NUM_WORDS, DIM)).astype(np.float32)
  path = evaluation.bundled_benchmarks()["analogy"][0]
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f}; V={NUM_WORDS}, D={DIM}, "
        f"restrict_vocab={RESTRICT_VOCAB}, {path.name}")

  emb = evaluation.Embeddings(words, vectors)
  ours, cold, cold_cpu = _timed(lambda: evaluation.evaluate_analogy(emb, path, RESTRICT_VOCAB))
  emb = evaluation.Embeddings(words, vectors)  # fresh caches, warm compilation
  _, warm, warm_cpu = _timed(lambda: evaluation.evaluate_analogy(emb, path, RESTRICT_VOCAB))
  _, bundled, bundled_cpu = _timed(
      lambda: evaluation.evaluate_all(evaluation.Embeddings(words, vectors))
  )
  print(f"w2v_jax evaluate_analogy: first call (compile included) {cold:.2f} s "
        f"(CPU {cold_cpu:.2f} s), warm {warm:.2f} s (CPU {warm_cpu:.2f} s); "
        f"{ours['questions']} questions, accuracy {ours['accuracy']:.6f}")
  print(f"w2v_jax evaluate_all, all bundled benchmarks, warm: {bundled:.2f} s "
        f"(CPU {bundled_cpu:.2f} s)")

  kv = KeyedVectors(DIM)
  kv.add_vectors(words, vectors)
  (score, _), gensim_time, gensim_cpu = _timed(
      lambda: kv.evaluate_word_analogies(str(path), restrict_vocab=RESTRICT_VOCAB)
  )
  print(f"gensim evaluate_word_analogies: {gensim_time:.2f} s (CPU {gensim_cpu:.2f} s), "
        f"accuracy {score:.6f}")
  print(f"speed-up, warm: {gensim_time / warm:.1f}x wall, {gensim_cpu / warm_cpu:.1f}x CPU; "
        f"same accuracy: {score == ours['accuracy']}")


if __name__ == "__main__":
  main()
