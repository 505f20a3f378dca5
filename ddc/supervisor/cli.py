"""`ddc supervise -c supervisor.toml`: the out-of-band monitor of all link pairs."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="FILE", help="supervisor.toml")


def run(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()

    from ddc.daemon import config_error_exit, configure_logging, serve
    from ddc.errors import ConfigError
    from ddc.supervisor.config import load_supervisor_config
    from ddc.supervisor.service import Supervisor

    try:
        config = load_supervisor_config(args.config)
    except ConfigError as exc:
        return config_error_exit(exc)
    configure_logging(config["log_level"])
    return serve(Supervisor(config))
