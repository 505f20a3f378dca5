"""`ddc ingress -c ingress.toml`."""

from ddc.daemon import proxy_command

configure_parser, run = proxy_command("ingress", "ddc.ingress.proxy:IngressProxy")
