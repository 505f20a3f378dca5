"""`ddc supervise -c supervisor.toml`: the out-of-band monitor of all link pairs."""

from __future__ import annotations

import argparse

from ddc.daemon import boot


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="FILE", help="supervisor.toml")


def run(args: argparse.Namespace) -> int:
    return boot(
        args.config,
        "ddc.supervisor.config:load_supervisor_config",
        "ddc.supervisor.service:Supervisor",
    )
