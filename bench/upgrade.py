#!/usr/bin/env python3
"""The upgrade benchmark: a rolling upgrade by one minor of 1 master + W workers at
max_unavailable, on a lab with realistic durations, beside its ideal.

    bench/upgrade.py K8SUP K8SUP_LAB [WORKERS=50] [MAX_UNAVAILABLE=10%] [TIME_SCALE=0.2]

The cluster is installed at 1.29, a workload is spread over every node (two pods a
node, tolerating the control plane's taint, as CoreDNS does), so that every drain
evicts pods and takes the profile's drain time, as on a real cluster; then the
inventory asks for 1.30 and `k8sup apply` carries the upgrade out. The ideal is
`k8sup-lab ideal-upgrade` for the same shape and profile: the first master, then
batches x one node's upgrade time, with nothing overlapped. Prints one JSON record
(wall times are unscaled back to real-host seconds with TIME_SCALE) and keeps the
run's logs in a temporary directory it names.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

K8SUP, LAB = sys.argv[1], sys.argv[2]
WORKERS = int(sys.argv[3]) if len(sys.argv) > 3 else 50
UNAV = sys.argv[4] if len(sys.argv) > 4 else "10%"
SCALE = float(sys.argv[5]) if len(sys.argv) > 5 else 0.2
ROOT = Path(__file__).resolve().parent.parent
LABS = Path("/var/lib/k8sup-lab/labs")
work = Path(tempfile.mkdtemp(prefix="k8sup-bench-upgrade-"))

WORKLOAD = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench-web
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: bench-web}}
  template:
    metadata:
      labels: {{app: bench-web}}
    spec:
      tolerations: [{{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}}]
      containers:
      - name: web
        image: registry.k8s.io/pause:3.9
"""


def run(cmd, what, env=None, log=None, stdin=None):
    started = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin)
    if log:
        Path(log).write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise SystemExit(f"{what} failed ({p.returncode}):\n{(p.stdout + p.stderr)[-3000:]}")
    return p.stdout, time.monotonic() - started


profile = work / "durations.toml"
realistic = (ROOT / "testing/lab/src/durations/realistic.toml").read_text()
profile.write_text(re.sub(r"(?m)^time_scale = .*$", f"time_scale = {SCALE}", realistic))
spec = work / "lab.toml"
spec.write_text('name = "upb"\n[[hosts]]\nname = "master"\ncount = 1\nroles = ["master"]\n'
                'cpus = 2\nmemory_mib = 4096\n[[hosts]]\nname = "node"\ncount = 1\n')
out, _ = run([LAB, "up", "-f", str(spec), "--hosts", str(WORKERS + 1), "--durations", str(profile)],
             "lab up")
name = re.search(r"^lab (\S+) up:", out, re.M).group(1)
try:
    record = json.loads((LABS / name / "lab.json").read_text())
    first = next(h for h in record["hosts"] if h["name"] == "master-1")

    def inventory(version, upgrade):
        fragment = work / f"cluster-{version}.toml"
        fragment.write_text(f'[cluster]\nname = "upb"\nkubernetes_version = "{version}"\n\n'
                            f'[upgrade]\n{upgrade}')
        path = work / f"inventory-{version}.toml"
        run([LAB, "inventory", name, "--cluster", str(fragment), "-o", str(path)], "inventory")
        text = path.read_text().replace("port = 2222\n", f"port = 2222\nparallelism = {WORKERS + 1}\n", 1)
        path.write_text(text)
        return str(path)

    env = dict(os.environ, K8SUP_STATE_DIR=str(work / "state"))
    _, install = run([K8SUP, "apply", "-i", inventory("1.29", ""), "--yes"], "install", env,
                     work / "install.log")
    ssh = ["ssh", "-i", str(LABS / name / "id_ed25519"), "-o",
           f"UserKnownHostsFile={LABS / name / 'known_hosts'}", "-o", "BatchMode=yes",
           "-p", "2222", f"root@{first['address']}"]
    run(ssh + ["kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f -"], "workload",
        stdin=WORKLOAD.format(replicas=2 * (WORKERS + 1)))
    target = inventory("1.30", f'max_unavailable = "{UNAV}"\n')
    load_before = os.getloadavg()[0]
    _, upgrade = run([K8SUP, "apply", "-i", target, "--yes"], "upgrade", env, work / "upgrade.log")
    load_after = os.getloadavg()[0]
    state = json.loads((LABS / name / "cluster/state.json").read_text())
    version = state.get("kubernetes_version", "").lstrip("v")
    batch = (max(1, WORKERS * int(UNAV.rstrip("%")) // 100) if UNAV.endswith("%") else int(UNAV))
    ideal_out, _ = run([LAB, "ideal-upgrade", "--durations", str(profile), "--masters", "1",
                        "--workers", str(WORKERS), "--max-unavailable", str(batch),
                        "--version", version, "--json"], "ideal")
    ideal = json.loads(ideal_out)
    applied = [json.loads(line) for line in
               (LABS / name / "cluster/durations/applied.jsonl").read_text().splitlines() if line]
    drains = sum(1 for a in applied if a.get("op") == "drain")
    print(json.dumps({
        "workers": WORKERS, "max_unavailable": UNAV, "batch": batch, "time_scale": SCALE,
        "version": version, "drains_charged": drains,
        "install_s": round(install / SCALE, 1),
        "upgrade_s": round(upgrade / SCALE, 1),
        "ideal_s": round(ideal["total_ms"] / 1000, 1),
        "ratio": round(upgrade / SCALE / (ideal["total_ms"] / 1000), 3),
        "ideal": ideal, "load": [load_before, load_after], "logs": str(work),
    }, indent=1))
finally:
    cluster = LABS / name / "cluster"
    for f in ("durations/applied.jsonl", "state.json", "cordons.jsonl"):
        if (cluster / f).exists():
            shutil.copy(cluster / f, work / Path(f).name)
    subprocess.run([LAB, "down", name], capture_output=True)
