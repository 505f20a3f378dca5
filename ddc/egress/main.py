"""`ddc egress -c egress.toml`."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="egress TOML config")
    parser.add_argument("--drain-timeout", type=float, default=10.0, help="graceful stop limit (s)")


def run(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()

    from ddc.config import load_config
    from ddc.daemon import config_error_exit, configure_logging, serve
    from ddc.egress.proxy import EgressProxy
    from ddc.errors import ConfigError

    try:
        config = load_config(args.config, "egress")
        configure_logging(config["log_level"])
        proxy = EgressProxy(config)
    except ConfigError as exc:
        return config_error_exit(exc)
    return serve(proxy, args.drain_timeout)
