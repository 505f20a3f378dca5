"""`ddc ingress -c ingress.toml`."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="ingress TOML config")
    parser.add_argument("--drain-timeout", type=float, default=10.0, help="graceful stop limit (s)")


def run(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()

    from ddc.config import load_config
    from ddc.config.loader import config_dir
    from ddc.daemon import config_error_exit, configure_logging, serve
    from ddc.errors import ConfigError
    from ddc.ingress.proxy import IngressProxy

    try:
        config = load_config(args.config, "ingress")
        configure_logging(config["log_level"])
        proxy = IngressProxy(config, config_dir(args.config))
    except ConfigError as exc:
        return config_error_exit(exc)
    return serve(proxy, args.drain_timeout)
