"""`ddc egress -c egress.toml`."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="egress TOML config")
    parser.add_argument("--drain-timeout", type=float, default=10.0, help="graceful stop limit (s)")


def run(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()  # before anything else imports sockets or threads

    from ddc.daemon import run_proxy
    from ddc.egress.proxy import EgressProxy

    return run_proxy(
        args.config, "egress", lambda config, _base_dir: EgressProxy(config), args.drain_timeout
    )
