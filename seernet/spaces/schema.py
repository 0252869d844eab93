"""What an architecture of each space may contain: keys, types and ranges, checked before anything is built.

A config request is a few bytes that make the server build and export a
torch model, so every number in it is bounded and every key known (an
unknown key would also change the arch id and defeat the export cache).
Ranges are generous around what the spaces sample; the model's size is
bounded separately from its parameter count and FLOPs (``check_config``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence


class Schema:
    def check(self, value: Any, where: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where} {message}")


@dataclass(frozen=True)
class Int(Schema):
    lo: int
    hi: int

    def check(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise _fail(where, f"must be an integer, got {str(value)[:40]!r}")
        if not self.lo <= value <= self.hi:
            raise _fail(where, f"must be in {self.lo}..{self.hi}, got {int(value)}")
        return int(value)


@dataclass(frozen=True)
class Real(Schema):
    lo: float
    hi: float

    def check(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(where, f"must be a number, got {str(value)[:40]!r}")
        if not self.lo <= value <= self.hi:
            raise _fail(where, f"must be in {self.lo:g}..{self.hi:g}, got {value:g}")
        return float(value)


@dataclass(frozen=True)
class OneOf(Schema):
    choices: tuple

    def check(self, value: Any, where: str) -> Any:
        if value not in self.choices or isinstance(value, bool) != any(isinstance(c, bool) for c in self.choices):
            raise _fail(where, f"must be one of {list(self.choices)}, got {str(value)[:40]!r}")
        return value


@dataclass(frozen=True)
class Text(Schema):
    max_len: int
    validate: Callable[[str], Any] | None = None

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) > self.max_len:
            raise _fail(where, f"must be a string of at most {self.max_len} characters")
        if self.validate is not None:
            self.validate(value)
        return value


@dataclass(frozen=True)
class ListOf(Schema):
    item: Schema
    min_len: int
    max_len: int

    def check(self, value: Any, where: str) -> list:
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            raise _fail(where, "must be a list")
        if not self.min_len <= len(value) <= self.max_len:
            raise _fail(where, f"must have {self.min_len}..{self.max_len} entries, got {len(value)}")
        return [self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class Obj(Schema):
    fields: Mapping[str, Schema]
    required: frozenset = frozenset()

    def check(self, value: Any, where: str) -> dict:
        if not isinstance(value, Mapping):
            raise _fail(where, "must be a JSON object")
        unknown = sorted(str(k)[:40] for k in value if k not in self.fields)
        if unknown:
            raise _fail(where, f"has unknown key(s) {unknown[:5]}; allowed: {sorted(self.fields)}")
        missing = sorted(self.required - set(value))
        if missing:
            raise _fail(where, f"is missing key(s) {missing}")
        return {k: self.fields[k].check(v, f"{where}.{k}") for k, v in value.items()}
