"""Trains word2vec embeddings: python train.py --config configs/default.py --workdir runs/x [--config.dim=300].

Exit status: 0 when the run finished and wrote its vectors; 2 for a mistake in the flags, config or input (one
`error:` line on stderr); 75 (EX_TEMPFAIL, sysexits.h) when SIGTERM or Ctrl-C stopped it after saving a
checkpoint: the same command resumes it. The same as `w2v-jax train` (w2v_jax/commands/train.py).
"""

from w2v_jax.commands import train

if __name__ == "__main__":
  train.run()
