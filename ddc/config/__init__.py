"""Configuration: TOML files, DDC__ env overrides, marshmallow validation."""

from ddc.config.loader import (
    apply_env_overrides,
    load_config,
    load_egress_config,
    load_ingress_config,
    load_role_config,
    parse_env_value,
)

__all__ = [
    "apply_env_overrides",
    "load_config",
    "load_egress_config",
    "load_ingress_config",
    "load_role_config",
    "parse_env_value",
]
