#!/usr/bin/env python3
"""The whole-cluster benchmark: k8sup installs Kubernetes (containerd, kubeadm, flannel,
3 masters) on a lab with realistic durations, and its wall time is put beside the
critical path computed from the same durations for the same cluster
(`k8sup-lab critical-path`). Run through `bench/run cluster [--sizes 4,50,200]`.

Records, not assertions: the machine is shared, so wall times are noisy. Every run checks
that every node of the cluster ended Ready (from the lab's cluster state) and keeps the
lab's applied-durations log summary; a run that exits 0 without a Ready cluster fails.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RELEASE = ROOT / "target" / "release"
K8SUP = Path(os.environ.get("BENCH_K8SUP", RELEASE / "k8sup"))
LAB_BIN = Path(os.environ.get("BENCH_K8SUP_LAB", RELEASE / "k8sup-lab"))
LABS_DIR = Path("/var/lib/k8sup-lab/labs")
RESULTS = HERE / "results"

SPEC = """# The whole-cluster benchmark's lab: 3 masters, nodes added by --hosts.
name = "cluster"

[[hosts]]
name = "master"
count = 3
roles = ["master"]
cpus = 2
memory_mib = 4096

[[hosts]]
name = "node"
count = 1
"""

# Published figures for what users wait for, quoted in issue 13: NOT measured here.
PUBLISHED = [
    ("Kubespray", "10 nodes", "15 min", "kubespray#478"),
    ("Kubespray", "50 nodes", "35 min", "kubespray#478"),
    ("Kubespray", "7 nodes", "22 min (and as long again to add a node)", "kubespray#7509"),
    ("Kubespray", "6 nodes", "30-60 min", "kubespray#9279"),
    ("k0sctl", "2 nodes", "about 2 min", "k0sctl README"),
]


def log(msg: str) -> None:
    print(f"bench cluster: {msg}", flush=True)


def run(cmd: list[str], what: str) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"bench cluster: {what} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def durations_file(work: Path, profile: str, scale: float) -> str:
    """The profile to use: `realistic`, a file, or either scaled by --time-scale."""
    if scale == 1.0:
        return profile
    if profile == "realistic":
        src = (ROOT / "testing/lab/src/durations/realistic.toml").read_text()
    else:
        src = Path(profile).read_text()
    scaled, n = re.subn(r"(?m)^time_scale = .*$", f"time_scale = {scale}", src)
    if n != 1:
        raise SystemExit("bench cluster: the profile has no time_scale line to scale")
    path = work / "durations.toml"
    path.write_text(scaled)
    return str(path)


def bench(n: int, work: Path, profile: str, scale: float, version: str,
          playbook: str | None) -> dict:
    spec = work / f"cluster-{n}.toml"
    spec.write_text(SPEC)
    started = time.monotonic()
    out = run([str(LAB_BIN), "up", "-f", str(spec), "--hosts", str(n), "--durations", profile],
              "k8sup-lab up")
    m = re.search(r"^lab (\S+) up:", out, re.M)
    if not m:
        raise SystemExit(f"bench cluster: k8sup-lab up printed no lab name:\n{out}")
    name = m.group(1)
    log(f"lab {name}: {n} hosts up in {time.monotonic() - started:.1f}s")
    try:
        record = json.loads((LABS_DIR / name / "lab.json").read_text())
        first = next(h for h in record["hosts"] if h["name"] == "master-1")
        fragment = work / f"cluster-{n}-fragment.toml"
        fragment.write_text(
            "[cluster]\n"
            f'name = "bench{n}"\n'
            f'kubernetes_version = "{version}"\n'
            f'control_plane_endpoint = "{first["address"]}:6443"\n'
        )
        inv = work / f"inventory-{n}.toml"
        run([str(LAB_BIN), "inventory", name, "--cluster", str(fragment), "-o", str(inv)],
            "k8sup-lab inventory")
        text = inv.read_text()
        # parallelism = N as in the slice benchmark: every host worked on at once.
        text = text.replace("port = 2222\n", f"port = 2222\nparallelism = {n}\n", 1)
        inv.write_text(text)
        tomllib.loads(text)
        env = dict(os.environ, K8SUP_STATE_DIR=str(work / f"state-{n}"))
        logfile = work / f"apply-{n}.log"
        log(f"k8sup apply on {n} hosts (log {logfile})")
        t0 = time.monotonic()
        started_ms = time.time() * 1000
        with open(logfile, "w") as f:
            extra = ["--playbook", playbook] if playbook else []
            rc = subprocess.run([str(K8SUP), "apply", "-i", str(inv)] + extra, stdout=f,
                                stderr=subprocess.STDOUT, env=env).returncode
        wall = time.monotonic() - t0
        if rc != 0:
            raise SystemExit(f"bench cluster: k8sup apply exited {rc}:\n"
                             + logfile.read_text(errors="replace")[-4000:])
        cluster_dir = LABS_DIR / name / "cluster"
        state = json.loads((cluster_dir / "state.json").read_text())
        nodes = state.get("nodes", {})
        if len(nodes) != n or not all(v.get("kubelet", {}).get("running") for v in nodes.values()):
            raise SystemExit(f"bench cluster: {len(nodes)} nodes registered of {n}, or a kubelet is down")
        ready = {}
        rp = cluster_dir / "durations" / "ready.json"
        if rp.exists():
            ready = json.loads(rp.read_text())
        if len(ready) != n:
            raise SystemExit(f"bench cluster: {len(ready)} of {n} nodes were seen Ready")
        applied = [json.loads(line) for line in
                   (cluster_dir / "durations" / "applied.jsonl").read_text().splitlines() if line]
        first_pkgs = sorted(a["what"] for a in applied if a["host"] == "master-1" and a["op"] == "package")
        ops: dict[str, int] = {}
        for a in applied:
            ops[a["op"]] = ops.get(a["op"], 0) + 1
        kept = work / f"applied-{n}.jsonl"
        kept.write_text((cluster_dir / "durations" / "applied.jsonl").read_text())
        crit = json.loads(run([str(LAB_BIN), "critical-path", "--durations", profile,
                               "--hosts", str(n), "--masters", "3",
                               "--version", version_full(state), "--json"], "critical-path"))
        # The critical path is in profile time; the run in real time: compare like with like.
        crit_s = crit["total_ms"] / 1000 * scale
        result = {
            "hosts": n, "masters": 3, "time_scale": scale, "durations": profile,
            "playbook": playbook or "built in",
            "k8sup_wall_s": round(wall, 2), "critical_path_s": round(crit_s, 2),
            "ratio": round(wall / crit_s, 3), "critical_path": crit,
            "first_master_packages": first_pkgs, "applied_ops": ops,
            "timeline_s": timeline(applied, started_ms, scale),
            "log": str(logfile), "applied_log": str(kept),
        }
        log(f"N={n}: k8sup {wall:.1f}s, critical path {crit_s:.1f}s, ratio {wall / crit_s:.2f}")
        return result
    finally:
        subprocess.run([str(LAB_BIN), "down", name], capture_output=True)


def timeline(applied: list, started_ms: float, scale: float) -> dict:
    """When the chain's steps started and ended, seconds of wall time after the apply
    started (from the lab's applied log; an entry's `ms` is profile time, so scaled)."""
    def end(a: dict) -> float:
        return a["at_ms"] + a["ms"] * scale

    def rel(ms: float) -> float:
        return round((ms - started_ms) / 1000, 1)

    def pick(op: str) -> list:
        return [a for a in applied if a["op"] == op]

    t: dict[str, float] = {}
    init = pick("kubeadm-init")
    if init:
        t["init_start"] = rel(init[0]["at_ms"])
        t["init_end"] = rel(end(init[0]))
    for name, op in [("node_join", "kubeadm-join"), ("cp_join", "kubeadm-join-control-plane")]:
        steps = pick(op)
        if steps:
            t[f"{name}_first_start"] = rel(min(a["at_ms"] for a in steps))
            t[f"{name}_last_end"] = rel(max(end(a) for a in steps))
    node_pulls = [a for a in pick("image-pull") if a["host"].startswith("node-")
                  or "(kubelet of node-" in a["what"]]
    if node_pulls:
        t["node_pulls_first_start"] = rel(min(a["at_ms"] for a in node_pulls))
        t["node_pulls_last_end"] = rel(max(end(a) for a in node_pulls))
    master_pulls = [a for a in pick("image-pull") if a["host"].startswith("master-")
                    and "(kubelet of node-" not in a["what"]]
    if master_pulls:
        t["master_pulls_last_end"] = rel(max(end(a) for a in master_pulls))
    restarts = [a for a in pick("service-restart") if "containerd" in a["what"]]
    if restarts:
        t["last_runtime_restart_end"] = rel(max(end(a) for a in restarts))
    ready = pick("kubelet-ready")
    if ready:
        t["last_ready"] = rel(max(end(a) for a in ready))
    return t


def version_full(state: dict) -> str:
    return state.get("kubernetes_version", "1.30.4").lstrip("v")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="4,50,200")
    ap.add_argument("--durations", default="realistic")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="run the durations this much faster (the ratio is scale-free; "
                         "k8sup's own overhead is not scaled, so a small scale is harsher on it)")
    ap.add_argument("--version", default="1.30")
    ap.add_argument("--playbook", help="a playbook other than the built-in one (e.g. an "
                    "older one, to measure a change)")
    ap.add_argument("--command", default="bench/run cluster")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench cluster: run me as root (the lab needs it)")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="k8sup-bench-cluster-"))
    profile = durations_file(work, args.durations, args.time_scale)
    results = []
    for n in sizes:
        results.append(bench(n, work, profile, args.time_scale, args.version,
                             str(Path(args.playbook).resolve()) if args.playbook else None))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cluster-{stamp}.json"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    out.write_text(json.dumps({"command": args.command, "commit": commit, "date": stamp,
                               "load": os.getloadavg(), "results": results,
                               "published_not_measured": PUBLISHED}, indent=2) + "\n")
    print()
    print("| N (3 masters) | k8sup (s) | critical path (s) | k8sup ÷ critical path |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['hosts']} | {r['k8sup_wall_s']:.1f} | {r['critical_path_s']:.1f} | {r['ratio']:.2f} |")
    print(f"\nresults: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
