"""The supervisor config: `[supervisor]` and its `[[supervisor.pairs]]`; defaults here, unknown keys rejected.

[supervisor]
http_listen = "127.0.0.1:9190"     # its own /metrics and /healthz
poll_interval = "1s"
grace = "5s"                       # egress down this long → pause its ingress
timeout = "2s"                     # per HTTP request
[[supervisor.pairs]]
name = "pair-a"
ingress = "http://10.0.0.1:9101"
egress = "http://10.1.0.1:9102"
on_pause = "..."                   # optional shell commands, run with DDC_PAIR, DDC_EVENT,
on_resume = "..."                  # DDC_REASON, DDC_INGRESS_URL, DDC_EGRESS_URL set
on_down = "..."
token_file = "admin.token"         # optional, per pair: overrides [supervisor] token_file

[supervisor] token_file = "admin.token": the ingresses' admin_token_file, sent as
Authorization: Bearer on /admin/pause and /admin/resume (relative to this file's directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from ddc.config.base import StrictSchema, log_level, require_positive
from ddc.config.fields import Duration, FilePath, HostPort
from ddc.config.loader import load_role_config

HOOK_EVENTS = ("on_pause", "on_resume", "on_down")


class PairSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    ingress = fields.Url(required=True, require_tld=False, schemes={"http"})
    egress = fields.Url(required=True, require_tld=False, schemes={"http"})
    on_pause = fields.String(load_default=None)
    on_resume = fields.String(load_default=None)
    on_down = fields.String(load_default=None)
    token_file = FilePath(load_default=None)


class SupervisorSchema(StrictSchema):
    http_listen = HostPort(load_default=("127.0.0.1", 9190), allow_zero_port=True)
    poll_interval = Duration(load_default=1.0)
    grace = Duration(load_default=5.0)
    timeout = Duration(load_default=2.0)
    hook_timeout = Duration(load_default=30.0)
    log_level = log_level()
    token_file = FilePath(load_default=None)
    pairs = fields.List(fields.Nested(PairSchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def _checks(self, data: dict[str, Any], **kwargs: Any) -> None:
        require_positive(data, "poll_interval", "timeout", "hook_timeout")
        names = [pair["name"] for pair in data.get("pairs", [])]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValidationError(f"pair name {duplicates[0]!r} used twice", "pairs")
        urls = [
            pair[side].rstrip("/")
            for pair in data.get("pairs", [])
            for side in ("ingress", "egress")
        ]
        shared = sorted({url for url in urls if urls.count(url) > 1})
        if shared:
            raise ValidationError(
                f"{shared[0]} watched twice: each pair has its own ingress and egress", "pairs"
            )


def load_supervisor_config(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The validated [supervisor] table (DDC__<KEY> env overrides applied)."""
    config = load_role_config(path, "supervisor", SupervisorSchema(), environ)
    for pair in config["pairs"]:
        for side in ("ingress", "egress"):
            pair[side] = pair[side].rstrip("/")
    return config
