"""`ddc topology check` on compose files: commands, mounted configs, DDC__ env overrides, replicas."""

import textwrap

import pytest

SERVICE = """
  {name}:
    image: ddc:latest
    command: ddc {role} -c /etc/ddc/{name}.toml
    volumes:
      - ./cfg:/etc/ddc:ro
"""


@pytest.fixture
def stack(write, ingress_toml, egress_toml):
    """stack(pairs, extra_services="", extra_configs={}) -> compose file path.

    pairs: {"a": ("egress-a:7011", "0.0.0.0:7011"), ...}: ingress destination, egress listen.
    """

    def make(pairs, extra_services="", extra_configs=None, name="stack.yml"):
        services = []
        for pair, (destination, listen) in pairs.items():
            write(f"cfg/ingress-{pair}.toml", ingress_toml(destination, name=pair))
            write(f"cfg/egress-{pair}.toml", egress_toml(listen, name=pair))
            services.append(SERVICE.format(name=f"ingress-{pair}", role="ingress"))
            services.append(SERVICE.format(name=f"egress-{pair}", role="egress"))
        for config_name, text in (extra_configs or {}).items():
            write(f"cfg/{config_name}", text)
        body = (
            "services:" + "".join(services) + textwrap.indent(textwrap.dedent(extra_services), "  ")
        )
        return write(name, body)

    return make


TWO_PAIRS = {"a": ("egress-a:7011", "0.0.0.0:7011"), "b": ("egress-b:7021", "0.0.0.0:7021")}


def test_two_pairs_are_fine(stack, check):
    code, out, _ = check(stack(TWO_PAIRS))
    assert code == 0, out
    assert "topology check OK: 2 link pair(s)" in out
    assert "stack.yml service 'ingress-a'" in out and "-> " in out


def test_second_ingress_service_aimed_at_the_same_egress(stack, check, ingress_toml):
    extra = """
    ingress-c:
      image: ddc:latest
      command: ["ddc", "ingress", "--config", "/etc/ddc/ingress-c.toml"]
      volumes: ["./cfg:/etc/ddc:ro"]
    """
    path = stack(TWO_PAIRS, extra, {"ingress-c.toml": ingress_toml("egress-a:7011", name="c")})
    code, out, _ = check(path)
    assert code == 1
    section = out.split("[many-to-one]")[1]
    assert "2 ingresses are aimed at one egress" in section
    assert "stack.yml service 'egress-a'" in section
    assert "stack.yml service 'ingress-a'" in section and "stack.yml service 'ingress-c'" in section
    assert "cfg/ingress-c.toml" in section


@pytest.mark.parametrize("form", ["mapping", "list"])
def test_env_override_is_applied(stack, check, form):
    path = stack(TWO_PAIRS)
    text = path.read_text()
    env = (
        "    environment:\n      DDC__TRANSPORT__DESTINATION: egress-a:7011\n"
        if form == "mapping"
        else "    environment:\n      - DDC__TRANSPORT__DESTINATION=egress-a:7011\n"
    )
    marker = "command: ddc ingress -c /etc/ddc/ingress-b.toml\n"
    path.write_text(text.replace(marker, marker + env))
    code, out, _ = check(path)
    assert code == 1
    assert "[many-to-one]" in out and "service 'ingress-b'" in out.split("[many-to-one]")[1]
    assert (
        "[egress-without-ingress]" in out
        and "service 'egress-b'" in out.split("[egress-without-ingress]")[1]
    )


def test_env_override_with_compose_interpolation(stack, check, monkeypatch):
    pairs = {"a": ("wrong-host:7011", "0.0.0.0:7011")}
    path = stack(pairs)
    marker = "command: ddc ingress -c /etc/ddc/ingress-a.toml\n"
    env = "    environment:\n      DDC__TRANSPORT__DESTINATION: ${EGRESS_HOST:-egress-a}:7011\n"
    path.write_text(path.read_text().replace(marker, marker + env))
    monkeypatch.delenv("EGRESS_HOST", raising=False)
    assert check(path)[0] == 0
    monkeypatch.setenv("EGRESS_HOST", "elsewhere")
    code, out, _ = check(path)
    assert code == 1 and "destination elsewhere:7011" in out


def test_egress_replicas_mean_one_to_many(stack, check):
    path = stack({"a": ("egress-a:7011", "0.0.0.0:7011")})
    marker = "command: ddc egress -c /etc/ddc/egress-a.toml\n"
    path.write_text(path.read_text().replace(marker, marker + "    deploy:\n      replicas: 2\n"))
    code, out, _ = check(path)
    assert code == 1
    section = out.split("[one-to-many]")[1]
    assert "service 'egress-a'" in section and "(replica 2 of 2)" in section


def test_ingress_scale_means_many_to_one(stack, check):
    path = stack({"a": ("egress-a:7011", "0.0.0.0:7011")})
    marker = "command: ddc ingress -c /etc/ddc/ingress-a.toml\n"
    path.write_text(path.read_text().replace(marker, marker + "    scale: 3\n"))
    code, out, _ = check(path)
    assert code == 1 and "3 ingresses are aimed at one egress" in out


def test_two_pairs_sharing_a_port(stack, check):
    code, out, _ = check(
        stack({"a": ("egress-a:7011", "0.0.0.0:7011"), "b": ("egress-b:7011", "0.0.0.0:7011")})
    )
    assert code == 1
    assert out.count("[shared-port]") == 1
    section = out.split("[shared-port]")[1]
    assert "listen on port 7011 in compose file" in section and "stack.yml" in section
    assert "service 'egress-a'" in section and "service 'egress-b'" in section


def test_egress_on_container_loopback_is_not_reachable(stack, check):
    code, out, _ = check(stack({"a": ("egress-a:7011", "127.0.0.1:7011")}))
    assert code == 1
    assert "[ingress-without-egress]" in out and "[egress-without-ingress]" in out


def test_diode_relay_between_ingress_and_egress(stack, check):
    extra = """
    diode:
      image: ddc:latest
      command: ddc diode-sim --listen 0.0.0.0:7500 --forward egress-a:7011 --loss 0.01
    """
    code, out, _ = check(stack({"a": ("diode:7500", "0.0.0.0:7011")}, extra))
    assert code == 0, out
    assert "stack.yml service 'diode' 0.0.0.0:7500 -> egress-a:7011" in out
    assert "1 link pair(s)" in out


def test_network_alias_and_long_volume_syntax(write, check, ingress_toml, egress_toml):
    write("conf/in.toml", ingress_toml("diode-b:7001"))
    write("conf/out.toml", egress_toml("0.0.0.0:7001"))
    path = write(
        "alias.yml",
        textwrap.dedent("""
        services:
          sender:
            image: ddc:latest
            entrypoint: ["ddc"]
            command: ["ingress", "-c", "/cfg/in.toml"]
            volumes:
              - {type: bind, source: ./conf, target: /cfg, read_only: true}
          receiver:
            image: ddc:latest
            command: sh -c "exec ddc egress -c /run/out.toml"
            configs:
              - {source: egress_config, target: /run/out.toml}
            networks:
              diode:
                aliases: [diode-b]
        configs:
          egress_config:
            file: ./conf/out.toml
        networks:
          diode: {}
    """),
    )
    code, out, _ = check(path)
    assert code == 0, out
    assert "service 'sender'" in out and "service 'receiver'" in out


def test_published_udp_port_pairs_across_compose_files(write, check, ingress_toml, egress_toml):
    """Source side and target side in separate files (separate machines): the diode address."""
    write("high/in.toml", ingress_toml("192.0.2.10:7001"))
    write("low/out.toml", egress_toml("0.0.0.0:7001"))
    high = write(
        "high/compose.yml",
        "services:\n  ingress:\n    command: ddc ingress -c /c/in.toml\n    volumes: ['.:/c']\n",
    )
    low = write(
        "low/compose.yml",
        "services:\n  egress:\n    command: ddc egress -c /c/out.toml\n    volumes: ['.:/c']\n    ports: ['7001:7001/udp']\n",
    )
    code, out, _ = check(high, low)
    assert code == 0, out
    assert "1 link pair(s)" in out


def test_config_given_twice_is_counted_once(stack, check, tmp_path):
    path = stack({"a": ("egress-a:7011", "0.0.0.0:7011")})
    code, out, err = check(path, tmp_path / "cfg" / "egress-a.toml", tmp_path / "cfg")
    assert code == 0, out
    assert "also mounted by a compose service, counted once" in err


def test_unreadable_compose_inputs_exit_2(stack, write, check, ingress_toml):
    code, _, err = check(write("bad.yml", "services: [\n"))
    assert code == 2 and "bad.yml: invalid YAML" in err

    code, _, err = check(write("neither.yml", "just: text\n"))
    assert code == 2 and "neither a compose file" in err

    unmounted = write(
        "unmounted.yml", "services:\n  in:\n    command: ddc ingress -c /etc/ddc/x.toml\n"
    )
    code, _, err = check(unmounted)
    assert code == 2 and "service 'in'" in err and "not in a bind-mounted file" in err

    path = stack({"a": ("egress-a:7011", "0.0.0.0:7011")})
    marker = "command: ddc ingress -c /etc/ddc/ingress-a.toml\n"
    path.write_text(
        path.read_text().replace(
            marker, marker + "    environment: {DDC__TRANSPORT__DESTINATION: nowhere}\n"
        )
    )
    code, _, err = check(path)
    assert code == 2
    assert (
        "service 'ingress-a'" in err and "ingress.transport.destination: expected HOST:PORT" in err
    )

    wrong_role = write(
        "role.yml",
        "services:\n  x:\n    command: ddc egress -c /c/ingress-a.toml\n    volumes: ['./cfg:/c']\n",
    )
    code, _, err = check(wrong_role)
    assert code == 2 and "runs 'ddc egress' but" in err and "is a ingress config" in err


@pytest.mark.parametrize(
    ("ports", "warned"),
    [
        ("['9101:9101']", True),
        ("['0.0.0.0:19101:9101/tcp']", True),
        ("[{target: 9101, published: 9101}]", True),
        ("['127.0.0.1:9101:9101']", False),  # a management address only
        ("['9101:9101/udp', '7000:7000/udp']", False),  # not the HTTP port
        ("[]", False),
    ],
)
def test_an_ingress_admin_port_published_on_every_interface_is_warned_about(
    write, check, ingress_toml, ports, warned
):
    write("cfg/in.toml", ingress_toml("192.0.2.10:7001"))
    path = write(
        "compose.yml",
        "services:\n  ingress:\n    command: ddc ingress -c /c/in.toml\n"
        f"    volumes: ['./cfg:/c']\n    ports: {ports}\n",
    )
    code, out, err = check(path)
    assert code == 0, out
    warning = "publishes its management port 9101 (/admin/pause, /admin/resume) on every host"
    assert (warning in err) is warned, err
