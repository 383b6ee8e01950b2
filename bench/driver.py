#!/usr/bin/env python3
"""The benchmark driver (stdlib only), run by bench/run.

For each N and each tool it brings up a lab of fresh hosts, runs the tool's first converge
and its no-op re-run, checks that the hosts really converged, counts round trips on the
lab's side (sshd's `Starting session` and `Accepted publickey` lines), measures the
controller's peak RSS with /usr/bin/time -v, and takes the lab down. Then the same with
the lab's latency proxy in front of every host. The floor is measured on a lab of its own.
Results go to bench/results/<date>.json, docs/benchmarks.md and docs/benchmarks.svg.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LAB_BIN = Path(os.environ.get("BENCH_K8SUP_LAB", ROOT / "target" / "release" / "k8sup-lab"))
K8SUP_BIN = Path(os.environ.get("BENCH_K8SUP", ROOT / "target" / "release" / "k8sup"))
VENV = Path(os.environ.get("BENCH_VENV", BENCH / ".venv"))
LAB_SPEC = BENCH / "lab.toml"
PROXY_PORT = 2223
# The delay with which round trips are counted (bench_round_trips).
ROUND_TRIP_RTT_MS = 200
TOOLS = ["k8sup", "ansible", "mitogen", "pyinfra"]
MEASURED = ["floor"] + TOOLS
LABS_DIR = Path("/var/lib/k8sup-lab/labs")

CONTAINERD_UNIT = (
    "[Unit]\nDescription=containerd container runtime\n[Service]\n"
    "ExecStart=/usr/bin/containerd\nRestart=always\n[Install]\nWantedBy=multi-user.target\n"
)

# Labs this process brought up: taken down on exit, whatever happens (only these, by name).
_OUR_LABS: list[str] = []
_OUR_PROCS: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- the lab


class Lab:
    def __init__(self, n: int, workdir: Path):
        self.n = n
        inv = workdir / f"lab-{n}-{time.monotonic_ns()}.toml"
        started = time.monotonic()
        out = run_checked([str(LAB_BIN), "up", "-f", str(LAB_SPEC), "--hosts", str(n),
                           "--inventory-out", str(inv)], what="k8sup-lab up")
        m = re.search(r"^lab (\S+) up:", out, re.M)
        if not m:
            raise BenchError(f"k8sup-lab up printed no lab name:\n{out}")
        self.name = m.group(1)
        _OUR_LABS.append(self.name)
        self.up_seconds = time.monotonic() - started
        self.inventory_text = inv.read_text()
        parsed = tomllib.loads(self.inventory_text)
        ssh = parsed["ssh"]
        self.key = ssh["identity_file"]
        self.known_hosts = ssh["known_hosts"]
        record = json.loads((LABS_DIR / self.name / "lab.json").read_text())
        self.hosts = [
            {"name": h["name"], "address": h["address"], "dir": Path(h["dir"])}
            for h in record["hosts"]
        ]
        if len(self.hosts) != n:
            raise BenchError(f"lab {self.name} has {len(self.hosts)} hosts, wanted {n}")
        self.proxy: subprocess.Popen | None = None
        self.port = 2222
        self.default_parallelism = False
        self.cpu_group = CpuGroup.make(f"k8sup-bench-{self.name}", [
            pid for pid in (read_pid(h["dir"] / "sshd.pid") for h in self.hosts) if pid is not None])

    def root(self, host: dict) -> Path:
        return host["dir"] / "root"

    def with_latency(self, rtt_ms: int) -> None:
        p = subprocess.Popen([str(LAB_BIN), "proxy", self.name, "--rtt-ms", str(rtt_ms)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _OUR_PROCS.append(p)
        line = p.stdout.readline() if p.stdout else ""
        if "latency proxy" not in line:
            p.kill()
            raise BenchError(f"k8sup-lab proxy did not start: {line}{p.stdout.read() if p.stdout else ''}")
        self.proxy = p
        self.port = PROXY_PORT

    def down(self) -> None:
        if self.proxy is not None:
            self.proxy.send_signal(signal.SIGTERM)
            try:
                self.proxy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
            self.proxy = None
        lab_down(self.name)
        if self.cpu_group is not None:
            self.cpu_group.remove()

    def k8sup_inventory(self, path: Path) -> Path:
        # parallelism = N like the peers' forks; the --max run keeps k8sup's default (64):
        # 1000 simultaneous handshakes on 2 cores exceed its 10 s connect timeout.
        extra = "" if self.default_parallelism else f"parallelism = {self.n}\n"
        text = self.inventory_text.replace("port = 2222\n", f"port = {self.port}\n{extra}", 1)
        path.write_text(text)
        return path

    def ansible_inventory(self, path: Path) -> Path:
        lines = ["[all]"]
        for h in self.hosts:
            lines.append(f"{h['name']} ansible_host={h['address']}")
        common = f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
        lines += ["", "[all:vars]", "ansible_user=root", f"ansible_port={self.port}",
                  f"ansible_ssh_private_key_file={self.key}",
                  f"ansible_ssh_common_args='{common}'",
                  "ansible_python_interpreter=/usr/bin/python3"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def pyinfra_inventory(self, path: Path) -> Path:
        data = {"ssh_port": self.port, "ssh_user": "root", "ssh_key": self.key,
                "ssh_known_hosts_file": self.known_hosts, "ssh_strict_host_key_checking": "yes"}
        hosts = [(h["name"], {**data, "ssh_hostname": h["address"]}) for h in self.hosts]
        path.write_text("hosts = " + repr(hosts) + "\n")
        return path

    def counters(self) -> dict[str, tuple[int, int]]:
        """Per host: (sessions opened, connections accepted) so far, from its sshd log."""
        out = {}
        for h in self.hosts:
            try:
                text = (h["dir"] / "sshd.log").read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            out[h["name"]] = (text.count("Starting session"), text.count("Accepted publickey"))
        return out

    def hosts_cpu_seconds(self) -> float | None:
        """The CPU time (user + system) the lab's hosts have used so far: every host's
        sshd and all it started (sessions, shells, every program the scripts ran, and
        whatever outlives its session), counted by the kernel in the lab's own CPU
        accounting cgroup. The work a tool made the hosts do, which the machine's load
        does not change. None when there is no such cgroup."""
        return None if self.cpu_group is None else self.cpu_group.seconds()

    def commands_logged(self) -> int:
        total = 0
        for h in self.hosts:
            p = self.root(h) / "var/log/k8sup-lab/commands.log"
            try:
                with open(p, "rb") as f:
                    total += sum(1 for _ in f)
            except FileNotFoundError:
                pass
        return total


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class CpuGroup:
    """A CPU accounting cgroup (v1 `cpuacct`, or v2) holding a lab's sshds: everything
    they start is born in it, so its usage is all the CPU the hosts used."""

    def __init__(self, path: Path, usage):
        self.path = path
        self._usage = usage

    @staticmethod
    def make(name: str, pids: list[int]) -> "CpuGroup | None":
        v1 = Path("/sys/fs/cgroup/cpuacct")
        if (v1 / "cpuacct.usage").exists():
            path = v1 / name
            usage = lambda: int((path / "cpuacct.usage").read_text()) / 1e9  # noqa: E731
        elif Path("/sys/fs/cgroup/cgroup.controllers").exists():
            path = Path("/sys/fs/cgroup") / name

            def usage() -> float:
                for line in (path / "cpu.stat").read_text().splitlines():
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) / 1e6
                raise OSError("no usage_usec in cpu.stat")
        else:
            return None
        try:
            path.mkdir(exist_ok=True)
            for pid in pids:
                (path / "cgroup.procs").write_text(f"{pid}\n")
            usage()
        except OSError as e:
            log(f"no CPU accounting of the hosts ({path}: {e})")
            CpuGroup(path, usage).remove()
            return None
        return CpuGroup(path, usage)

    def seconds(self) -> float | None:
        try:
            return self._usage()
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Removes the group once the lab's processes are gone (those left, if any, go
        back to the root group first)."""
        root = self.path.parent / "cgroup.procs"
        for _ in range(50):
            try:
                for pid in (self.path / "cgroup.procs").read_text().split():
                    try:
                        root.write_text(f"{pid}\n")
                    except OSError:
                        pass
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def lab_down(name: str) -> None:
    r = subprocess.run([str(LAB_BIN), "down", name], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"warning: k8sup-lab down {name}: {r.stderr.strip()}")
    if name in _OUR_LABS:
        _OUR_LABS.remove(name)


def cleanup() -> None:
    for p in _OUR_PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    for name in list(_OUR_LABS):
        lab_down(name)


def run_checked(cmd: list[str], what: str, env: dict | None = None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise BenchError(f"{what} failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


# ---------------------------------------------------------------- verification


def verify(lab: Lab, tool: str) -> list[str]:
    """Every host must be converged: returns the problems found (empty when all is well)."""
    problems = []
    for h in lab.hosts:
        r = lab.root(h)
        name = h["name"]

        def read(p: str) -> str:
            try:
                return (r / p.lstrip("/")).read_text()
            except FileNotFoundError:
                return ""

        def bad(what: str) -> None:
            problems.append(f"{tool}: {name}: {what}")

        if read("/etc/hostname").strip() != name:
            bad(f"/etc/hostname is {read('/etc/hostname').strip()!r}")
        if read("/proc/swaps").strip().count("\n") > 0:
            bad("swap still on (/proc/swaps)")
        for line in read("/etc/fstab").splitlines():
            f = line.split()
            if len(f) >= 3 and f[2] == "swap" and not line.lstrip().startswith("#"):
                bad(f"fstab swap line not commented: {line!r}")
        mods = read("/proc/modules")
        persisted = []
        for f in sorted((r / "etc/modules-load.d").glob("*.conf")):
            try:
                persisted += f.read_text().split()
            except OSError:
                pass
        for m in ("overlay", "br_netfilter"):
            if not re.search(rf"^{m}\s", mods, re.M):
                bad(f"module {m} not loaded")
            if m not in persisted:
                bad(f"module {m} not persisted in /etc/modules-load.d")
        conf = read("/etc/sysctl.d/99-kubernetes.conf")
        for k in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
            if read("/proc/sys/" + k.replace(".", "/")).strip() != "1":
                bad(f"sysctl {k} is not 1")
            if not re.search(rf"^{re.escape(k)}\s*=\s*1\s*$", conf, re.M):
                bad(f"{k} = 1 not in /etc/sysctl.d/99-kubernetes.conf")
        cfg = read("/etc/containerd/config.toml")
        if "SystemdCgroup = true" not in cfg or 'sandbox_image = "registry.k8s.io/pause:3.9"' not in cfg:
            bad("/etc/containerd/config.toml is not the template's")
        if f"for {name}," not in cfg:
            bad("/etc/containerd/config.toml was not rendered for this host")
        try:
            installed = json.loads(read("/var/lib/lab-pkg/installed.json") or "{}")
        except json.JSONDecodeError:
            installed = {}
        if "socat" not in json.dumps(installed):
            bad("socat not installed")
        if read("/etc/systemd/system/containerd.service") != CONTAINERD_UNIT:
            bad("containerd unit missing or different")
        if not (r / "etc/systemd/system/multi-user.target.wants/containerd.service").is_symlink():
            bad("containerd not enabled")
        if not (r / "run/lab-systemd/containerd.service.active").exists():
            bad("containerd not running")
        log_text = read("/var/log/k8sup-lab/commands.log")
        if not re.search(r'"systemctl".*"(re)?start".*containerd|"(re)?start".*containerd', log_text):
            bad("containerd was never (re)started (commands.log)")
    return problems


def restarts(lab: Lab) -> int:
    """`systemctl restart containerd` calls logged on every host so far."""
    n = 0
    for h in lab.hosts:
        try:
            text = (lab.root(h) / "var/log/k8sup-lab/commands.log").read_text(errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            if "restart" in line and "containerd" in line and "systemctl" in line:
                n += 1
    return n


# ---------------------------------------------------------------- running a tool


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (the state first), or None
    when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def processes():
    """(pid, stat fields) of every process there is now."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            fields = proc_stat(d)
            if fields is not None:
                yield int(d), fields


class TreeRss:
    """Samples the summed RSS of a process tree (the controller and its children)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            parents: dict[int, int] = {}
            rss: dict[int, int] = {}
            for pid, fields in processes():
                try:
                    parents[pid] = int(fields[1])
                    rss[pid] = int(fields[21]) * 4
                except (ValueError, IndexError):
                    continue
            tree = {self.pid}
            grew = True
            while grew:
                grew = False
                for p, pp in parents.items():
                    if pp in tree and p not in tree:
                        tree.add(p)
                        grew = True
            total = sum(rss.get(p, 0) for p in tree)
            self.peak_kib = max(self.peak_kib, total)
            self._stop.wait(0.25)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak_kib


def tool_command(tool: str, lab: Lab, work: Path) -> tuple[list[str], dict]:
    env = dict(os.environ)
    n = lab.n
    if tool == "k8sup":
        inv = lab.k8sup_inventory(work / "inventory.toml")
        state = work / "k8sup-state"
        state.mkdir(exist_ok=True)
        env["K8SUP_STATE_DIR"] = str(state)
        return [str(K8SUP_BIN), "apply", "-i", str(inv), "--playbook", str(BENCH / "k8sup.toml"),
                "--templates", str(BENCH / "templates")], env
    if tool in ("ansible", "mitogen"):
        inv = lab.ansible_inventory(work / "hosts.ini")
        env["ANSIBLE_CONFIG"] = str(BENCH / "ansible" / "ansible.cfg")
        # A short, fresh ControlPath directory per run: no run reuses another's connections.
        cp = Path(tempfile.mkdtemp(prefix="cp", dir="/tmp"))
        env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(cp)
        env["ANSIBLE_LOCAL_TEMP"] = str(work / "ansible-tmp")
        env["ANSIBLE_HOME"] = str(work / "ansible-home")
        env["ANSIBLE_FORKS"] = str(n)
        if tool == "mitogen":
            env["ANSIBLE_STRATEGY"] = "mitogen_linear"
            env["ANSIBLE_STRATEGY_PLUGINS"] = str(mitogen_strategy_dir())
        return [str(VENV / "bin" / "ansible-playbook"), "-i", str(inv), "-f", str(n),
                str(BENCH / "ansible" / "site.yml")], env
    if tool == "pyinfra":
        inv = lab.pyinfra_inventory(work / "inventory.py")
        return [str(VENV / "bin" / "pyinfra"), "-y", "--parallel", str(n), str(inv),
                str(BENCH / "pyinfra" / "deploy.py")], env
    raise BenchError(f"unknown tool {tool}")


def mitogen_strategy_dir() -> Path:
    found = list((VENV / "lib").glob("python3*/site-packages/ansible_mitogen/plugins/strategy"))
    if not found:
        raise BenchError(f"mitogen is not installed in {VENV}")
    return found[0]


def close_control_masters(env: dict) -> None:
    cp = env.get("ANSIBLE_SSH_CONTROL_PATH_DIR")
    if not cp:
        return
    for sock in Path(cp).glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                       capture_output=True)
    shutil.rmtree(cp, ignore_errors=True)


def run_tool(tool: str, lab: Lab, work: Path, phase: str) -> dict:
    cmd, env = tool_command(tool, lab, work)
    before = lab.counters()
    cpu_before = lab.hosts_cpu_seconds()
    cmds_before = lab.commands_logged()
    timefile = work / f"{tool}-{phase}.time"
    logfile = work / f"{tool}-{phase}.log"
    full = ["/usr/bin/time", "-v", "-o", str(timefile)] + cmd
    started = time.monotonic()
    with open(logfile, "w") as out:
        p = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(work))
        tree = TreeRss(p.pid)
        try:
            rc = p.wait(timeout=3600)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = -9
    wall = time.monotonic() - started
    tree_peak = tree.stop()
    close_control_masters(env)
    after = lab.counters()
    cpu_after = lab.hosts_cpu_seconds()
    hosts_cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
    tinfo = timefile.read_text() if timefile.exists() else ""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tinfo)
    user = re.search(r"User time \(seconds\): ([\d.]+)", tinfo)
    sys_ = re.search(r"System time \(seconds\): ([\d.]+)", tinfo)
    sessions = [after[h][0] - before.get(h, (0, 0))[0] for h in after]
    conns = [after[h][1] - before.get(h, (0, 0))[1] for h in after]
    result = {
        "tool": tool, "phase": phase, "hosts": lab.n, "port": lab.port,
        "exit": rc, "wall_s": round(wall, 3),
        "peak_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "tree_rss_mb": round(tree_peak / 1024, 1),
        "cpu_s": round(float(user.group(1)) + float(sys_.group(1)), 2) if user and sys_ else None,
        "hosts_cpu_s": hosts_cpu,
        "sessions_per_host": round(sum(sessions) / len(sessions), 2),
        "sessions_max": max(sessions),
        "connections_per_host": round(sum(conns) / len(conns), 2),
        "commands_logged_per_host": round((lab.commands_logged() - cmds_before) / lab.n, 2),
        "command": ("ANSIBLE_STRATEGY=mitogen_linear " if tool == "mitogen" else "")
        + " ".join(shlex.quote(c) for c in cmd),
        "log": str(logfile),
    }
    if rc != 0:
        tail = logfile.read_text(errors="replace")[-4000:]
        raise BenchError(f"{tool} {phase} on {lab.n} hosts exited {rc}; log {logfile}:\n{tail}")
    return result


# ---------------------------------------------------------------- the floor

FLOOR_CONVERGE = r"""set -e
hostnamectl set-hostname {name}
swapoff -a
sed -i -E 's/^([^#].*\sswap\s.*)$/# \1/' /etc/fstab
modprobe overlay
modprobe br_netfilter
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/k8s.conf
printf 'net.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.ip_forward = 1\n' > /etc/sysctl.d/99-kubernetes.conf
sysctl -q -p /etc/sysctl.d/99-kubernetes.conf
apt-get install -y -qq socat > /dev/null
printf '%s' {unit} > /etc/systemd/system/containerd.service
mkdir -p /etc/containerd
printf '%s' {config} > /etc/containerd/config.toml
systemctl enable -q containerd
systemctl restart containerd
"""

FLOOR_NOOP = r"""cat /etc/hostname /etc/fstab /etc/modules-load.d/k8s.conf /etc/sysctl.d/99-kubernetes.conf \
  /etc/systemd/system/containerd.service /etc/containerd/config.toml > /dev/null
swapon --show --noheadings
lsmod > /dev/null
sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables > /dev/null
dpkg-query -W -f='${Status}' socat > /dev/null
systemctl is-enabled containerd > /dev/null
systemctl is-active containerd > /dev/null
"""


def render_config(name: str) -> str:
    text = (BENCH / "templates" / "bench" / "config.toml.j2").read_text()
    return text.replace("{{ host.name }}", name)


def ssh_base(lab: Lab) -> list[str]:
    return ["ssh", "-p", str(lab.port), "-i", lab.key, "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
            # The cheapest key exchange OpenSSH offers (its default, sntrup761x25519, costs
            # more CPU per handshake): the floor is the least a tool could do.
            "-o", "KexAlgorithms=curve25519-sha256"]


def floor_run(lab: Lab, phase: str) -> dict:
    """Every host at once: one OpenSSH connection, one channel, the work as one plain
    script (the converge blindly does everything; the no-op only reads what a tool must
    read to know there is nothing to do)."""
    before = lab.counters()
    cpu_before = lab.hosts_cpu_seconds()
    procs = []
    started = time.monotonic()
    for h in lab.hosts:
        if phase == "converge":
            script = FLOOR_CONVERGE.format(name=shlex.quote(h["name"]), unit=shlex.quote(CONTAINERD_UNIT),
                                           config=shlex.quote(render_config(h["name"])))
        else:
            script = FLOOR_NOOP
        cmd = ssh_base(lab) + [f"root@{h['address']}", script]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    failed = []
    for h, p in zip(lab.hosts, procs):
        out, _ = p.communicate()
        if p.returncode != 0:
            failed.append(f"{h['name']}: exit {p.returncode}: {out[-500:]}")
    wall = time.monotonic() - started
    if failed:
        raise BenchError(f"floor {phase} failed on {len(failed)} hosts: {failed[:3]}")
    after = lab.counters()
    cpu_after = lab.hosts_cpu_seconds()
    hosts_cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
    sessions = [after[h][0] - before[h][0] for h in after]
    return {"tool": "floor", "phase": phase, "hosts": lab.n, "port": lab.port, "exit": 0,
            "wall_s": round(wall, 3), "sessions_per_host": round(sum(sessions) / len(sessions), 2),
            "hosts_cpu_s": hosts_cpu}


def handshake_seconds(lab: Lab, samples: int = 5) -> float:
    """One SSH handshake plus one trivial command on one host (median of a few)."""
    times = []
    for _ in range(samples):
        t = time.monotonic()
        subprocess.run(ssh_base(lab) + [f"root@{lab.hosts[0]['address']}", "true"], check=True,
                       capture_output=True)
        times.append(time.monotonic() - t)
    times.sort()
    return round(times[len(times) // 2], 4)


# ---------------------------------------------------------------- round trips on one host


def bench_round_trips(workroot: Path, latency_ms: int, results: list, reps: int = 5) -> None:
    """Round trips on the critical path of a host, counted on the lab's side: the lab's
    proxy delays every byte by half the RTT each way, so (time through the proxy - time
    direct) / RTT is the number of round trips, whatever the transport does. The
    smallest lab (2 hosts, in parallel on 2 cores), so that the CPU does not blur the
    delay; medians of `reps` no-op runs. The
    handshake's share is measured the same way with OpenSSH (`ssh host true` is the
    handshake, a channel open and an exec: 2 round trips after the handshake)."""
    rtt = latency_ms / 1000
    work = workroot / "rtts"
    work.mkdir(parents=True, exist_ok=True)
    log(f"round trips: two 2-host labs, +{latency_ms} ms through the proxy")
    delayed, direct = Lab(2, workroot), Lab(2, workroot)
    try:
        delayed.with_latency(latency_ms)
        conv_delayed = run_tool("k8sup", delayed, work, "converge")["wall_s"]
        conv_direct = run_tool("k8sup", direct, work, "converge")["wall_s"]

        def median(xs: list[float]) -> float:
            xs = sorted(xs)
            return xs[len(xs) // 2]

        def noop(port: int) -> float:
            delayed.port = port
            return median([run_tool("k8sup", delayed, work, "noop")["wall_s"] for _ in range(reps)])

        def ssh_true(port: int) -> float:
            delayed.port = port
            times = []
            for _ in range(reps):
                t = time.monotonic()
                subprocess.run(ssh_base(delayed) + [f"root@{delayed.hosts[0]['address']}", "true"],
                               check=True, capture_output=True)
                times.append(time.monotonic() - t)
            return median(times)

        noop_rtts = (noop(PROXY_PORT) - noop(2222)) / rtt
        ssh_rtts = (ssh_true(PROXY_PORT) - ssh_true(2222)) / rtt
        delayed.port = PROXY_PORT
        r = {"tool": "k8sup", "phase": "rtts", "hosts": 2, "rtt_ms": latency_ms, "reps": reps,
             "converge_rtts": round((conv_delayed - conv_direct) / rtt, 1),
             "noop_rtts": round(noop_rtts, 1), "ssh_true_rtts": round(ssh_rtts, 1),
             "noop_rtts_after_handshake": round(noop_rtts - (ssh_rtts - 2), 1)}
        results.append(r)
        log(f"round trips: converge {r['converge_rtts']}, no-op {r['noop_rtts']} "
            f"(ssh true {r['ssh_true_rtts']}: {r['noop_rtts_after_handshake']} after the handshake)")
    finally:
        delayed.down()
        direct.down()


# ---------------------------------------------------------------- one N


def bench_tool(tool: str, n: int, workroot: Path, latency_ms: int, results: list, smoke: bool,
               default_parallelism: bool = False) -> None:
    settings = [0] + ([latency_ms] if latency_ms else [])
    for rtt in settings:
        tag = f"{tool}-{n}-rtt{rtt}"
        work = workroot / tag
        work.mkdir(parents=True, exist_ok=True)
        log(f"{tag}: lab up")
        lab = Lab(n, workroot)
        lab.default_parallelism = default_parallelism
        try:
            if rtt:
                lab.with_latency(rtt)
            if tool == "floor":
                hs = handshake_seconds(lab)
                for phase in ("converge", "noop"):
                    r = floor_run(lab, phase)
                    r.update(rtt_ms=rtt, handshake_s=hs)
                    results.append(r)
                    log(f"{tag}: {phase} {r['wall_s']:.2f}s")
                problems = verify(lab, tool)
                if problems:
                    raise BenchError("floor did not converge:\n" + "\n".join(problems[:20]))
                continue
            restarts_before = restarts(lab)
            r = run_tool(tool, lab, work, "converge")
            problems = verify(lab, tool)
            restarted = restarts(lab) - restarts_before
            if restarted < n:
                problems.append(f"{tool}: containerd restarted on {restarted} of {n} hosts after its config changed")
            if problems:
                raise BenchError(f"{tool} exited 0 but did not converge the hosts:\n" + "\n".join(problems[:20]))
            r.update(rtt_ms=rtt, lab_up_s=round(lab.up_seconds, 2), default_parallelism=default_parallelism)
            results.append(r)
            log(f"{tag}: converge {r['wall_s']:.2f}s, {r['sessions_per_host']} sessions/host, rss {r['peak_rss_mb']} MB")
            restarts_before = restarts(lab)
            r = run_tool(tool, lab, work, "noop")
            problems = verify(lab, tool)
            if restarts(lab) != restarts_before:
                problems.append(f"{tool}: the no-op re-run restarted containerd")
            if problems:
                raise BenchError(f"{tool} no-op broke the hosts:\n" + "\n".join(problems[:20]))
            r.update(rtt_ms=rtt)
            results.append(r)
            log(f"{tag}: noop {r['wall_s']:.2f}s, {r['sessions_per_host']} sessions/host, "
                f"{r['connections_per_host']} connections/host")
        finally:
            lab.down()
        if smoke:
            break


def machine_info() -> dict:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    cpu = ""
    try:
        m = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1) if m else ""
    except OSError:
        pass
    osr = ""
    try:
        m = re.search(r'PRETTY_NAME="(.*)"', Path("/etc/os-release").read_text())
        osr = m.group(1) if m else ""
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "os": osr,
            "kernel": platform.release(), "python": platform.python_version()}


def versions() -> dict:
    v = {}
    for pkg in ("ansible-core", "mitogen", "pyinfra"):
        r = subprocess.run([str(VENV / "bin" / "python"), "-c",
                            f"import importlib.metadata as m; print(m.version({pkg!r}))"],
                           capture_output=True, text=True)
        v[pkg] = r.stdout.strip() if r.returncode == 0 else None
    r = subprocess.run([str(K8SUP_BIN), "--version"], capture_output=True, text=True)
    v["k8sup"] = r.stdout.strip()
    # BENCH_COMMIT names the commit of binaries built elsewhere (BENCH_K8SUP), e.g. a
    # base branch measured beside this one; by default, this checkout's.
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    v["commit"] = os.environ.get("BENCH_COMMIT") or r.stdout.strip()
    return v


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10,50,200")
    ap.add_argument("--tools", default=",".join(MEASURED),
                    help="among floor (one plain script per host), " + ", ".join(TOOLS))
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--max", type=int, default=0,
                    help="also run k8sup alone on this many hosts (or the most the lab holds)")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--command", default="bench/run")
    args = ap.parse_args()

    tools = [t for t in args.tools.split(",") if t]
    for t in tools:
        if t not in MEASURED:
            raise BenchError(f"unknown tool {t!r}; known: {', '.join(MEASURED)}")
    if args.smoke:
        sizes, latency = [3], 0
        tools = [t for t in tools if t != "floor"]
    else:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        latency = args.latency_ms

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workroot = Path(tempfile.mkdtemp(prefix="k8sup-bench-", dir="/var/tmp"))
    log(f"work directory {workroot}")
    results: list[dict] = []
    started = dt.datetime.now(dt.timezone.utc)
    out_json = BENCH / "results" / f"{started.strftime('%Y-%m-%dT%H%M%SZ')}.json"
    tmp_json = out_json.with_suffix(".json.tmp")
    # The machine is shared: its load, and the build measured, say which runs compare.
    doc = {"started": started.isoformat(timespec="seconds"), "command": args.command,
           "load_start": os.getloadavg(), "k8sup_binary": str(K8SUP_BIN),
           "machine": machine_info(), "versions": versions(), "latency_ms": latency,
           "smoke": args.smoke, "results": results, "max": None}
    failures = []
    try:
        for n in sizes:
            for tool in tools:
                try:
                    bench_tool(tool, n, workroot, latency, results, args.smoke)
                except BenchError as e:
                    failures.append(str(e))
                    log(f"FAILED: {e}")
                    if args.smoke:
                        raise
                if not args.smoke:
                    tmp_json.parent.mkdir(exist_ok=True)
                    tmp_json.write_text(json.dumps(doc, indent=1))
        if "k8sup" in tools and latency and not args.smoke:
            try:
                # A count, not a speed: a long delay leaves the hosts' own time negligible.
                bench_round_trips(workroot, max(latency, ROUND_TRIP_RTT_MS), results)
            except BenchError as e:
                failures.append(str(e))
                log(f"FAILED: {e}")
        if args.max:
            doc["max"] = bench_max(args.max, workroot, results)
    except BenchError as e:
        if str(e) not in failures:
            failures.append(str(e))
            log(f"FAILED: {e}")
    finally:
        cleanup()
    doc["failures"] = failures
    doc["load_end"] = os.getloadavg()
    doc["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if args.smoke:
        print(json.dumps(results, indent=1))
        if failures:
            log(f"smoke run FAILED ({len(failures)} failures)")
            return 1
        log("smoke run passed: every tool converged 3 fresh hosts and re-ran as a no-op")
        shutil.rmtree(workroot, ignore_errors=True)
        return 0
    out_json.parent.mkdir(exist_ok=True)
    out_json.write_text(json.dumps(doc, indent=1) + "\n")
    tmp_json.unlink(missing_ok=True)
    log(f"results: {out_json}")
    import report  # noqa: E402  (bench/report.py, next to this file)
    report.write(doc, out_json)
    return 1 if failures else 0


def bench_max(want: int, workroot: Path, results: list) -> dict:
    """k8sup alone on as many hosts as the lab holds, trying `want` and then smaller sizes."""
    n = want
    tried = []
    while n >= 100:
        try:
            bench_tool("k8sup", n, workroot, 0, results, smoke=False, default_parallelism=True)
            return {"hosts": n, "tried": tried}
        except BenchError as e:
            tried.append({"hosts": n, "error": str(e)[:2000]})
            log(f"{n} hosts failed: {str(e)[:300]}")
            n = int(n * 0.7)
    return {"hosts": None, "tried": tried}


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        cleanup()
        sys.exit(1)
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
