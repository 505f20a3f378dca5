"""`ddc topology check` on plain ddc TOML configs: every violation kind, and the quiet cases."""


def test_one_pair_is_fine(write, check, ingress_toml, egress_toml):
    files = [
        write("in.toml", ingress_toml("10.0.0.9:7001")),
        write("out.toml", egress_toml("0.0.0.0:7001")),
    ]
    code, out, _ = check(*files)
    assert code == 0, out
    assert "topology check OK: 1 link pair(s)" in out


def test_two_ingresses_with_one_egress_destination(write, check, ingress_toml, egress_toml):
    files = [
        write("ingress-a.toml", ingress_toml("127.0.0.1:7001", name="a")),
        write("ingress-b.toml", ingress_toml("localhost:7001", name="b")),
        write("egress.toml", egress_toml("127.0.0.1:7001")),
    ]
    code, out, _ = check(*files)
    assert code == 1
    assert "[many-to-one] 2 ingresses are aimed at one egress" in out
    for name in ("ingress-a.toml", "ingress-b.toml", "egress.toml"):
        assert name in out.split("[many-to-one]")[1]
    assert "[shared-port]" not in out  # the same egress: reported once, as many-to-one


def test_one_ingress_aimed_at_several_egresses(write, check, ingress_toml, egress_toml):
    files = [
        write("ingress.toml", ingress_toml("10.0.0.9:7001")),
        write("egress-1.toml", egress_toml("0.0.0.0:7001", name="one")),
        write("egress-2.toml", egress_toml("0.0.0.0:7001", name="two")),
    ]
    code, out, _ = check(*files)
    assert code == 1
    section = out.split("[one-to-many]")[1]
    assert "one ingress is aimed at 2 egresses through 10.0.0.9:7001" in section
    assert "ingress.toml" in section and "egress-1.toml" in section and "egress-2.toml" in section


def test_egress_with_no_ingress(write, check, ingress_toml, egress_toml):
    files = [
        write("ingress.toml", ingress_toml("127.0.0.1:7001")),
        write("egress.toml", egress_toml("127.0.0.1:7001")),
        write("lonely-egress.toml", egress_toml("127.0.0.1:7002", name="lonely")),
    ]
    code, out, _ = check(*files)
    assert code == 1
    section = out.split("[egress-without-ingress]")[1]
    assert "lonely-egress.toml" in section and "127.0.0.1:7002" in section
    assert out.count("[egress-without-ingress]") == 1


def test_ingress_whose_destination_no_egress_listens_on(write, check, ingress_toml, egress_toml):
    files = [
        write("ingress.toml", ingress_toml("127.0.0.1:7001")),
        write("ingress-typo.toml", ingress_toml("127.0.0.1:7010", name="typo")),
        write("egress.toml", egress_toml("127.0.0.1:7001")),
    ]
    code, out, _ = check(*files)
    assert code == 1
    section = out.split("[ingress-without-egress]")[1]
    assert "no egress in the input listens on the destination 127.0.0.1:7010" in section
    assert "ingress-typo.toml" in section


def test_one_side_alone_is_not_dangling(write, check, ingress_toml, egress_toml):
    """Only ingress configs (the source side's machine): nothing to pair them with, no verdict."""
    files = [write(f"ingress-{n}.toml", ingress_toml(f"10.0.0.{n}:700{n}")) for n in (1, 2)]
    code, out, _ = check(*files)
    assert code == 0, out


def test_two_pairs_sharing_a_port(write, check, ingress_toml, egress_toml):
    files = [
        write("ingress-a.toml", ingress_toml("10.0.0.1:7001", name="a")),
        write("egress-a.toml", egress_toml("10.0.0.1:7001", name="a")),
        write("ingress-b.toml", ingress_toml("10.0.0.2:7001", name="b")),
        write("egress-b.toml", egress_toml("10.0.0.2:7001", name="b")),
    ]
    code, out, _ = check(*files)
    assert code == 1
    assert out.count("[shared-port]") == 1
    section = out.split("[shared-port]")[1]
    assert "2 egresses of different pairs listen on port 7001" in section
    assert "egress-a.toml" in section and "egress-b.toml" in section
    assert "[many-to-one]" not in out and "[one-to-many]" not in out


def test_unreadable_inputs_exit_2(write, check, ingress_toml, egress_toml):
    code, _, err = check(write("x", "").parent / "missing.toml")
    assert code == 2 and "no such file" in err
    code, _, err = check(write("broken.toml", "[ingress\n"))
    assert code == 2 and "broken.toml: invalid TOML" in err
    code, _, err = check(write("other.toml", "[something]\n"))
    assert code == 2 and "not a ddc config" in err
    bad = ingress_toml("127.0.0.1:7001").replace('name = "i"', 'name = "i"\nbogus = 1')
    code, _, err = check(write("bad.toml", bad))
    assert code == 2 and "bad.toml: invalid ingress config: ingress.bogus: unknown key" in err


def test_dedup_and_supervisor_configs_are_skipped(write, check, ingress_toml, egress_toml):
    files = [
        write("ingress.toml", ingress_toml("127.0.0.1:7001")),
        write("egress.toml", egress_toml("127.0.0.1:7001")),
        write("supervisor.toml", "[supervisor]\n"),
    ]
    code, _, err = check(*files)
    assert code == 0
    assert "supervisor.toml: not an ingress/egress config, skipped" in err
