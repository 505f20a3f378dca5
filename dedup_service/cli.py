"""`ddc-dedup serve -c dedup.toml`: the dedup service (console script dedup_service.cli:main)."""

from __future__ import annotations

import argparse
import sys

from ddc.daemon import boot


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
    return boot(
        config_path,
        "dedup_service.config:load_checked_dedup_config",
        "dedup_service.service:DedupService",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "serve":
        return serve(args.config)
    return 2


if __name__ == "__main__":
    sys.exit(main())
