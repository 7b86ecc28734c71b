"""Turning the errors a user can act on into one clear line and a non-zero exit."""

from __future__ import annotations

import importlib
import os
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
    commands that run work turn into it) as ``error: interrupted`` with exit 130; an internal error
    (a bug) as one ``error: internal error ...`` line, exit 2 (``AMPEL_DEBUG=1``: raise it)."""
    try:
        yield
    except KeyboardInterrupt:
        print("error: interrupted (a run in progress is recorded as interrupted; run the command again to "
              "continue where it stopped)", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        if is_user_error(error):
            print(f"error: {error}", file=sys.stderr)
        elif os.environ.get("AMPEL_DEBUG"):
            raise
        else:  # a bug: still one line, and how to get the traceback for a report
            message = str(error).splitlines()[0] if str(error) else ""
            print(f"error: internal error, {type(error).__name__}: {message} (a bug in AMPEL: run again with "
                  "AMPEL_DEBUG=1 for the traceback, and report it)", file=sys.stderr)
        sys.exit(2)
