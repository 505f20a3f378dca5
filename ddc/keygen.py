"""`ddc keygen`: prints a new authentication key line ``ID:HEX`` (32 random bytes).

Append it to the egress's key file first (then SIGHUP the egress), then to the ingress's: the
ingress signs with its file's last line (docs/security.md, "Key rotation").
"""

from __future__ import annotations

import argparse
import sys

from ddc.protocol.auth_keys import MAX_KEY_ID, MIN_KEY_BYTES, new_key_line


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--id",
        type=int,
        default=1,
        dest="key_id",
        help=f"key id 0..{MAX_KEY_ID} (default 1); use a new id for each rotation",
    )
    parser.add_argument(
        "--bytes",
        type=int,
        default=MIN_KEY_BYTES,
        dest="size",
        help=f"key length in bytes (default and minimum {MIN_KEY_BYTES})",
    )


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.key_id <= MAX_KEY_ID:
        print(f"ddc keygen: --id must be 0..{MAX_KEY_ID}, got {args.key_id}", file=sys.stderr)
        return 2
    if args.size < MIN_KEY_BYTES:
        print(f"ddc keygen: --bytes must be >= {MIN_KEY_BYTES}", file=sys.stderr)
        return 2
    print(new_key_line(args.key_id, args.size))
    return 0
