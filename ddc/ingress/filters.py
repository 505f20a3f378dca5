"""The ingress filter chain: keyword, regex, max_size, json_schema (applied to record values)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import jsonschema

from ddc.errors import ConfigError
from ddc.logs import ThrottledLog
from ddc.metrics import IngressMetrics
from ddc.protocol.record import Record

log = logging.getLogger(__name__)


class Filter:
    kind = "filter"

    def rejects(self, value: bytes) -> str | None:
        """Why `value` must not cross the diode, or None to let it through."""
        raise NotImplementedError


class KeywordFilter(Filter):
    kind = "keyword"

    def __init__(self, words: list[str], case_sensitive: bool = True) -> None:
        self.case_sensitive = case_sensitive
        self.words = [w.encode() if case_sensitive else w.lower().encode() for w in words]

    def rejects(self, value: bytes) -> str | None:
        haystack = value if self.case_sensitive else bytes(value).lower()
        for word in self.words:
            if word in haystack:
                return f"contains keyword {word.decode()!r}"
        return None


class RegexFilter(Filter):
    kind = "regex"

    def __init__(self, pattern: str, action: str = "drop") -> None:
        self.pattern = re.compile(pattern.encode())
        self.keep_matching = action == "keep"

    def rejects(self, value: bytes) -> str | None:
        matched = self.pattern.search(value) is not None
        if matched and not self.keep_matching:
            return f"matches {self.pattern.pattern.decode()!r}"
        if not matched and self.keep_matching:
            return f"does not match {self.pattern.pattern.decode()!r}"
        return None


class MaxSizeFilter(Filter):
    kind = "max_size"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def rejects(self, value: bytes) -> str | None:
        if len(value) > self.max_bytes:
            return f"{len(value)} bytes > max {self.max_bytes}"
        return None


class JsonSchemaFilter(Filter):
    kind = "json_schema"

    def __init__(self, schema: dict[str, Any]) -> None:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
        self.validator = validator_class(schema)

    def rejects(self, value: bytes) -> str | None:
        try:
            document = json.loads(value)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return f"not JSON: {exc!r:.200}"
        try:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(document))
        except RecursionError:
            return "JSON nested too deeply to validate"
        return f"schema violation: {error.message}" if error is not None else None


def build_filter(spec: dict[str, Any], index: int) -> Filter:
    """The filter a validated `[[ingress.filters]]` table describes (its schema path absolute)."""
    kind = spec["type"]
    if kind == "keyword":
        return KeywordFilter(spec["words"], spec["case_sensitive"])
    if kind == "regex":
        try:
            return RegexFilter(spec["pattern"], spec["action"])
        except re.error as exc:
            raise ConfigError(f"ingress.filters.{index}.pattern", f"invalid regex: {exc}") from None
    if kind == "max_size":
        return MaxSizeFilter(spec["max_bytes"])
    path = Path(spec["schema"])
    try:
        return JsonSchemaFilter(json.loads(path.read_text()))
    except (OSError, ValueError, jsonschema.exceptions.SchemaError) as exc:
        raise ConfigError(f"ingress.filters.{index}.schema", f"cannot use {path}: {exc}") from None


class FilterChain:
    """Applies the filters in order; counts and logs (at most once a second per filter) each drop."""

    LOG_EVERY = 1.0

    def __init__(self, filters: list[Filter], metrics: IngressMetrics) -> None:
        self.filters = filters
        self.metrics = metrics
        self.dropped = 0  # records this chain dropped (the metric also counts other chains')
        self._drop_log = ThrottledLog(log, self.LOG_EVERY, logging.WARNING)

    def __bool__(self) -> bool:
        return bool(self.filters)

    def apply(self, items: list[Record | bytes]) -> list[Record | bytes]:
        kept = []
        for item in items:
            value = item if isinstance(item, bytes | bytearray) else item.value or b""
            for flt in self.filters:
                try:
                    reason = flt.rejects(value)
                except Exception as exc:  # a record a filter cannot judge does not cross
                    reason = f"filter error: {exc!r:.200}"
                if reason is not None:
                    self._dropped(flt.kind, reason)
                    break
            else:
                kept.append(item)
        return kept

    def _dropped(self, kind: str, reason: str) -> None:
        self.dropped += 1
        self.metrics.records_filtered.labels(filter=kind).inc()
        self._drop_log(kind, "filter %s dropped a record: %s", kind, reason)
