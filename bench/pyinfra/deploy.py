"""The benchmark's host preparation for pyinfra: the same work as bench/k8sup.toml and
bench/ansible/site.yml, with pyinfra's own operations wherever it has one."""

from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

HERE = Path(__file__).resolve().parent

server.hostname(name="hostname", hostname=host.name)

if host.get_fact(Command, "swapon --show --noheadings"):
    server.shell(name="swap off now", commands=["swapoff -a"])

files.replace(
    name="swap off at boot",
    path="/etc/fstab",
    text=r"^([^#].*\sswap\s.*)$",
    replace=r"# \1",
)

server.modprobe(name="overlay", module="overlay")
server.modprobe(name="br_netfilter", module="br_netfilter")
files.put(
    name="kernel modules at boot",
    src=StringIO("overlay\nbr_netfilter\n"),
    dest="/etc/modules-load.d/k8s.conf",
)

for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
    server.sysctl(
        name=key,
        key=key,
        value=1,
        persist=True,
        persist_file="/etc/sysctl.d/99-kubernetes.conf",
    )

apt.packages(name="socat", packages=["socat"])

files.put(
    name="containerd unit",
    src=StringIO(
        "[Unit]\nDescription=containerd container runtime\n[Service]\n"
        "ExecStart=/usr/bin/containerd\nRestart=always\n[Install]\nWantedBy=multi-user.target\n"
    ),
    dest="/etc/systemd/system/containerd.service",
)
config = files.template(
    name="containerd config",
    src=str(HERE / "templates" / "config.toml.j2"),
    dest="/etc/containerd/config.toml",
)
systemd.service(name="containerd service", service="containerd", running=True, enabled=True)
systemd.service(
    name="restart containerd",
    service="containerd",
    restarted=True,
    _if=config.did_change,
)
