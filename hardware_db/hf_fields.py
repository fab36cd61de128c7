"""Typed access to a Hugging Face ``config.json``, with one-line errors naming file and field.

Multimodal checkpoints nest the language model under ``text_config``; :class:`Fields` merges it
over the top level (text-model keys win), remembers where each key came from so that error
messages name the real field (``text_config.hidden_size``), and checks values as they are read.
"""

from __future__ import annotations

import math

from hardware_db import DbError

MAX_INT = 2**31 - 1
"""Largest integer field (size, count) accepted: no real model comes near it, and larger
values overflow index arithmetic or the cost model's float32 sweep."""

_NESTED = ("text_config", "llm_config", "language_config")
"""Keys under which multimodal configs nest the text model (the first one present is used)."""


class Fields:
    """A config dict (with ``text_config`` merged in) plus the file name for messages."""

    def __init__(self, cfg: dict, src: str):
        self.src = src
        self.top = cfg
        self.nested_key = None
        self.nested: dict = {}
        for key in _NESTED:
            sub = cfg.get(key)
            if isinstance(sub, dict) and sub:
                self.nested_key, self.nested = key, sub
                break
            if sub is not None and not isinstance(sub, dict):
                raise DbError(f"{src}: field '{key}' is {type(sub).__name__}; expected an object")
        self.merged = {k: v for k, v in cfg.items() if k not in _NESTED}
        self.merged.update(self.nested)

    # -- naming and errors --------------------------------------------------------------
    def name(self, key: str) -> str:
        """Field name as the user sees it in the file (``text_config.x`` when nested, or when
        missing from a config that nests its text model)."""
        nested = key in self.nested or (self.nested_key and key not in self.top)
        return f"{self.nested_key}.{key}" if nested else key

    def error(self, key: str, msg: str) -> DbError:
        return DbError(f"{self.src}: field '{self.name(key)}' {msg}")

    # -- raw access ---------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return self.merged.get(key) is not None

    def raw(self, *keys, default=None):
        """First of ``keys`` present with a non-null value, else ``default``."""
        for k in keys:
            v = self.merged.get(k)
            if v is not None:
                return v
        return default

    def which(self, *keys):
        """The first of ``keys`` present with a non-null value, or None."""
        for k in keys:
            if self.merged.get(k) is not None:
                return k
        return None

    # -- checked numbers ----------------------------------------------------------------
    def _number(self, key, v, allow_zero: bool, integer: bool):
        if isinstance(v, bool) or not isinstance(v, int | float):
            kind = "an integer" if integer else "a number"
            raise self.error(key, f"is {v!r}; expected {kind}")
        if not math.isfinite(v):
            raise self.error(key, f"is {v!r}; expected a finite number")
        if integer and v != int(v):
            raise self.error(key, f"is {v!r}; expected an integer")
        if integer and v > MAX_INT:
            raise self.error(key, f"is {v!r}; expected an integer ≤ {MAX_INT}")
        if v < 0 or (v == 0 and not allow_zero):
            bound = "≥ 0" if allow_zero else "> 0"
            raise self.error(key, f"is {v!r}; must be {bound}")
        return int(v) if integer else float(v)

    def pos(self, *keys, default=None, integer: bool = True):
        """A positive number from the first present key; ``default`` if none is present.

        With ``default=None`` and no key present this raises, naming the first key.
        """
        k = self.which(*keys)
        if k is None:
            if default is None:
                alts = " or ".join(f"'{x}'" for x in keys[1:])
                also = f" (or {alts})" if alts else ""
                raise DbError(
                    f"{self.src}: field '{self.name(keys[0])}'{also} is missing; "
                    "expected a positive integer"
                )
            return default
        return self._number(k, self.merged[k], allow_zero=False, integer=integer)

    def nonneg(self, *keys, default=0, integer: bool = True):
        """A number ≥ 0 from the first present key, else ``default``."""
        k = self.which(*keys)
        if k is None:
            return default
        return self._number(k, self.merged[k], allow_zero=True, integer=integer)

    def flag(self, key: str, default: bool = False) -> bool:
        v = self.merged.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.error(key, f"is {v!r}; expected true or false")
        return v

    def int_list(self, key: str, length: int | None = None) -> list[int]:
        """A list of integers (e.g. ``moe_layer_freq``), optionally of a given length."""
        v = self.merged.get(key)
        if not isinstance(v, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            raise self.error(key, "must be a list of integers")
        if length is not None and len(v) != length:
            raise self.error(key, f"has {len(v)} entries; expected one per layer ({length})")
        return v

    def str_list(self, key: str, length: int | None = None) -> list[str]:
        v = self.merged.get(key)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.error(key, "must be a list of strings")
        if length is not None and len(v) != length:
            raise self.error(key, f"has {len(v)} entries; expected one per layer ({length})")
        return v

    def sub(self, key: str) -> dict:
        """A nested object (e.g. ``linear_attn_config``); {} when absent."""
        v = self.merged.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self.error(key, f"is {type(v).__name__}; expected an object")
        return v
