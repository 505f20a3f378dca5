"""`ddc ingress -c ingress.toml`."""

from __future__ import annotations

import argparse

from ddc.daemon import DRAIN_TIMEOUT, boot


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="ingress TOML config")
    parser.add_argument(
        "--drain-timeout", type=float, default=DRAIN_TIMEOUT, help="graceful stop limit (s)"
    )


def run(args: argparse.Namespace) -> int:
    return boot(
        args.config,
        "ddc.config:load_ingress_config",
        "ddc.ingress.proxy:IngressProxy",
        args.drain_timeout,
    )
