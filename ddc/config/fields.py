"""marshmallow fields for the units DDC configs use."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from ddc import units


class _Parsed(fields.Field):
    """A unit value: finite, never negative, at most `maximum` (the kind's ceiling by default)
    and, with `positive`, greater than 0."""

    parser: Any = None

    def __init__(
        self, *, maximum: float | None = None, positive: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.maximum = maximum
        self.positive = positive

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        try:
            if self.maximum is None:
                parsed = type(self).parser(value)
            else:
                parsed = type(self).parser(value, self.maximum)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if self.positive and parsed <= 0:
            raise ValidationError("must be greater than 0")
        return parsed

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return value


class Size(_Parsed):
    """Bytes, from an integer or a string like "32MiB"."""

    parser = staticmethod(units.parse_size)


class Rate(_Parsed):
    """Bits per second, from a number or a string like "800Mbit"."""

    parser = staticmethod(units.parse_rate)


class Duration(_Parsed):
    """Seconds, from a number or a string like "250ms"."""

    parser = staticmethod(units.parse_duration)


class HostPort(_Parsed):
    """(host, port) from "HOST:PORT"; port 0 allowed only for bind addresses."""

    def __init__(self, *, allow_zero_port: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_zero_port = allow_zero_port

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        try:
            return units.parse_hostport(value, allow_zero_port=self.allow_zero_port)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class FilePath(fields.String):
    """A file or directory path; the loader makes a relative one absolute against the directory
    of the config file (config.loader.resolve_paths), so no component sees the working directory."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Length(min=1))
        super().__init__(**kwargs)


class HostPortList(fields.Field):
    """A list of "HOST:PORT", also accepted as one comma-separated string."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not value:
            raise ValidationError("expected a non-empty list of HOST:PORT")
        for item in value:
            try:
                units.parse_hostport(item)
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc
        return value


class TypedTable(fields.Field):
    """A table whose `type` key selects the schema that validates the rest."""

    def __init__(self, schemas: dict[str, type], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schemas = schemas

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError("expected a table")
        kind = value.get("type")
        if kind not in self.schemas:
            choices = " | ".join(sorted(self.schemas))
            raise ValidationError({"type": [f"must be one of {choices}, got {kind!r}"]})
        return self.schemas[kind]().load(value)
