"""Names users bring from gensim, word2vec.c and fastText, and what each one is in our config.

Imported by the command line before JAX loads, so that a wrong field name is one line at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

_THREADS = "nothing: XLA uses every CPU core, and every accelerator unless --config.num_devices says otherwise"
# A peer's option name -> what to write here instead (only names that differ from ours).
PEER_NAMES = {
    "vector_size": "dim (gensim's vector_size)",
    "size": "dim (word2vec.c's -size, gensim < 4's size)",
    "sg": "model: --config.model=skipgram (sg=1) or --config.model=cbow (sg=0)",
    "cbow": "model: --config.model=cbow (word2vec.c's -cbow 1) or skipgram (-cbow 0)",
    "hs": "negative: hierarchical softmax is not implemented; training uses negative sampling (--config.negative)",
    "iter": "epochs (word2vec.c's -iter, gensim < 4's iter)",
    "epoch": "epochs (fastText's -epoch)",
    "workers": _THREADS,
    "threads": _THREADS,
    "thread": _THREADS,
    "neg": "negative (fastText's -neg)",
    "ws": "window (fastText's -ws)",
    "lr": "alpha (fastText's -lr)",
    "mincount": "min_count (fastText's -minCount)",
    "max_final_vocab": "max_vocab_size (the most frequent words kept, as gensim's max_final_vocab)",
    "t": "sample (fastText's -t)",
}


def unknown_field(name: str, fields: Iterable[str]) -> str:
  """The one-line message for --config.<name> that is not a field: the peer's equivalent, or the closest field."""
  hint = PEER_NAMES.get(name.lower())
  if hint is not None:
    return f"no config field {name!r}; here it is {hint}"
  close = difflib.get_close_matches(name, sorted(fields), n=1, cutoff=0.6)
  return f"no config field {name!r}" + (f"; did you mean --config.{close[0]}?" if close else "")
