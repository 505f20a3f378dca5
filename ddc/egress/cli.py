"""`ddc egress -c egress.toml`."""

from ddc.daemon import proxy_command

configure_parser, run = proxy_command("egress", "ddc.egress.proxy:EgressProxy")
