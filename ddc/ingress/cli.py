"""`ddc ingress -c ingress.toml`."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="ingress TOML config")
    parser.add_argument("--drain-timeout", type=float, default=10.0, help="graceful stop limit (s)")


def run(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()  # before anything else imports sockets or threads

    from ddc.daemon import run_proxy
    from ddc.ingress.proxy import IngressProxy

    return run_proxy(args.config, "ingress", IngressProxy, args.drain_timeout)
