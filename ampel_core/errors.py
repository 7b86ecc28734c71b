"""Turning the errors a user can act on into one clear line and a non-zero exit."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["AmpelError", "is_user_error", "optional_import", "user_errors"]


class AmpelError(RuntimeError):
    """An error whose message tells the user what is wrong and what to do."""


def optional_import(module: str, extra: str) -> Any:
    """Import ``module``, an optional dependency, or raise AmpelError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.partition(".")[0]
        raise AmpelError(f"this needs {package}, which is not installed: pip install 'ampel-core[{extra}]'") from None


def is_user_error(error: BaseException) -> bool:
    """Errors about input or installation (not bugs): their message is enough for the user. Every
    error of AMPEL's own that a user can act on derives from `AmpelError`."""
    from pydantic import ValidationError

    return isinstance(error, (AmpelError, ValidationError, FileNotFoundError))


@contextmanager
def user_errors() -> Iterator[None]:
    """Print errors a user can act on as ``error: <message>`` and exit 2; Ctrl-C (or SIGTERM, which
    commands that run work turn into it) as ``error: interrupted`` with exit 130; let bugs raise."""
    try:
        yield
    except KeyboardInterrupt:
        print("error: interrupted (a run in progress is recorded as interrupted; run the command again to "
              "continue where it stopped)", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        if not is_user_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
