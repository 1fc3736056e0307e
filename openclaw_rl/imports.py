"""``module:name`` targets a user names in a config (a feature function, an agent): imported, or one clear error."""

from __future__ import annotations

import importlib

from openclaw_rl.errors import ConfigError


def import_target(spec: str, key: str, expected: str = "module:function") -> object:
    """The object ``spec`` (``module:name``) names. A malformed spec or a failed import is a ``ConfigError``
    that names ``key``; ``expected`` says what the key takes."""
    module, _, name = str(spec).partition(":")
    if not module or not name:
        raise ConfigError(f"{key}: must be {expected}, got {spec!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{key}: cannot import {spec}: {type(err).__name__}: {err}") from None
