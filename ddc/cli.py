"""`ddc` command line: one sub-command per module, imported only when chosen.

Only the chosen module is imported so that a daemon can monkey-patch before anything else loads.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command → (module exposing configure_parser(parser) and run(args) -> int, help)
COMMANDS = {
    "ingress": ("ddc.ingress.cli", "run an ingress proxy"),
    "egress": ("ddc.egress.cli", "run an egress proxy"),
    "diode-sim": ("ddc.diode_sim.cli", "a one-way UDP relay standing in for a data diode"),
    "topology": ("ddc.topology.cli", "check compose/k8s/ddc configs for pairing violations"),
    "supervise": ("ddc.supervisor.cli", "out-of-band monitor of all link pairs"),
    "replay": ("ddc.ingress.replay", "resend exact lost Kafka offsets through the pair"),
    "keygen": ("ddc.keygen", "print a new authentication key line ID:HEX"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    epilog = "commands:\n" + "\n".join(
        f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items()
    )
    top = argparse.ArgumentParser(
        prog="ddc",
        description="Data Diode Connector",
        epilog=epilog + "\n\n'ddc COMMAND --help' for each command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    top.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    chosen = top.parse_args(argv)
    module_name, help_text = COMMANDS[chosen.command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"ddc {chosen.command}", description=help_text)
    module.configure_parser(parser)
    return module.run(parser.parse_args(chosen.args))


if __name__ == "__main__":
    sys.exit(main())
