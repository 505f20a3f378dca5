"""What every DDC config schema (ingress, egress, supervisor, dedup) is built from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
# The dedup service's link names (dedup_service.config.LINK_NAME, its API contract): the egress
# dedup sink checks its `link` against the same rule at start, not at the first batch.
LINK_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
LINK_NAME_PROBLEM = "link names are 1-64 characters of A-Z a-z 0-9 _ . - (starting alphanumeric)"


class StrictSchema(Schema):
    """A config table: unknown keys are an error."""

    class Meta:
        unknown = RAISE


def log_level() -> fields.String:
    """The `log_level` key every daemon has."""
    return fields.String(load_default="INFO", validate=validate.OneOf(LOG_LEVELS))


def require_positive(data: Mapping[str, Any], *names: str) -> None:
    """For a @validates_schema method: each of `names` present in `data` is greater than 0."""
    for name in names:
        if name in data and data[name] <= 0:
            raise ValidationError("must be greater than 0", name)
