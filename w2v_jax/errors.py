"""User-facing errors: one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
  """A mistake in the user's input or config; the message names the file/field and the fix."""


def first_line(error: BaseException, limit: int | None = None) -> str:
  """An exception's message on one line, for a UserError quoting it: its first line (its type when empty), cut
  at limit characters (for libraries whose messages run to pages)."""
  return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
  """Wraps a CLI entry point so a UserError prints one line and exits with status 2."""

  @functools.wraps(main)
  def wrapper(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  return wrapper
