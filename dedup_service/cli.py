"""`ddc-dedup serve -c dedup.toml`: the dedup service (console script dedup_service.cli:main)."""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddc-dedup",
        description="DDC dedup service: merges the copies that redundant links deliver",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the HTTP API (and the Kafka merge loop when [dedup.merge] is set)"
    )
    serve.add_argument("-c", "--config", required=True, metavar="FILE", help="dedup.toml")
    return parser


def serve(config_path: str) -> int:
    from gevent import monkey

    monkey.patch_all()

    from ddc.daemon import config_error_exit, configure_logging
    from ddc.daemon import serve as run_service
    from ddc.errors import ConfigError
    from dedup_service.config import load_dedup_config

    try:
        config = load_dedup_config(config_path)
    except ConfigError as exc:
        return config_error_exit(exc)
    configure_logging(config["log_level"])
    if config["log_level"] != "DEBUG":  # kafka-python logs every connection attempt at INFO
        logging.getLogger("kafka").setLevel(logging.WARNING)
    from dedup_service.service import DedupService

    return run_service(DedupService(config))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "serve":
        return serve(args.config)
    return 2


if __name__ == "__main__":
    sys.exit(main())
