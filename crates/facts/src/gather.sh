LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
# Files are read with the shell's `read` where one line is enough: a process less.
k8sup_line() { k8sup_v=; read -r k8sup_v 2>/dev/null < "$1"; }
k8sup_v=$(uname -r -m)
echo "machine=${k8sup_v#* }"
echo "kernel=${k8sup_v%% *}"
k8sup_line /proc/sys/kernel/hostname
[ -n "$k8sup_v" ] || k8sup_v=$(hostname 2>/dev/null || cat /etc/hostname 2>/dev/null)
echo "hostname=$k8sup_v"
if [ -r /etc/os-release ]; then
  # The host's file, read in this script's own shell (no subshell: the script ends
  # with it); what the lines after it rely on is put back.
  k8sup_p=$PATH
  # shellcheck source=/dev/null
  . /etc/os-release
  PATH=$k8sup_p; LC_ALL=C; unset IFS
  echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_like=$ID_LIKE"; echo "os_name=$PRETTY_NAME"
fi
# The CPUs online, from the kernel's cpulist ("0-3,8-11") read by the shell: no
# process; cpuinfo's processors when the list is missing or not one.
k8sup_line /sys/devices/system/cpu/online
k8sup_c=
case $k8sup_v in
  [0-9]*)
    k8sup_c=0; IFS=,
    for k8sup_r in $k8sup_v; do
      case $k8sup_r in
        *[!0-9-]*|*-*-*|-*|*-) k8sup_c=; break;;
        *-*) k8sup_c=$((k8sup_c + ${k8sup_r#*-} - ${k8sup_r%-*} + 1));;
        *) k8sup_c=$((k8sup_c + 1));;
      esac
    done
    unset IFS;;
esac
case $k8sup_c in ''|0|-*) k8sup_c=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null);; esac
echo "cpus=$k8sup_c"
k8sup_t=; k8sup_a=
while read -r k8sup_k k8sup_n _; do
  case $k8sup_k in MemTotal:) k8sup_t=$k8sup_n;; MemAvailable:) k8sup_a=$k8sup_n; break;; esac
done < /proc/meminfo 2>/dev/null
[ -n "$k8sup_t" ] && echo "memory_kib=$k8sup_t"
[ -n "$k8sup_a" ] && echo "memory_available_kib=$k8sup_a"
k8sup_t=0; k8sup_u=0
{ read -r _; while read -r _ _ k8sup_n k8sup_m _; do
  case $k8sup_n$k8sup_m in *[!0-9]*|'') continue;; esac
  k8sup_t=$((k8sup_t + k8sup_n)); k8sup_u=$((k8sup_u + k8sup_m))
done; } < /proc/swaps 2>/dev/null
echo "swap_kib=$k8sup_t"; echo "swap_used_kib=$k8sup_u"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo cgroup=2; else echo cgroup=1; fi
k8sup_line /sys/class/dmi/id/product_uuid; echo "product_uuid=$k8sup_v"
for dev in /sys/class/net/*; do
  [ -e "$dev/address" ] || continue
  name=${dev##*/}; [ "$name" = lo ] && continue
  k8sup_line "$dev/address"; echo "mac=$name $k8sup_v"
done
k8sup_line /proc/1/comm; echo "init=$k8sup_v"
for pm in apt-get dnf yum; do command -v $pm >/dev/null 2>&1 && { echo "package_manager=$pm"; break; }; done
if command -v ss >/dev/null 2>&1; then
  # Each line's fourth field, the local address, split by the shell (no pipeline).
  k8sup_r=$(ss -ltnH 2>/dev/null)
  set -f
  IFS='
'
  for k8sup_l in $k8sup_r; do
    unset IFS
    # shellcheck disable=SC2086 # split into its fields on purpose
    set -- $k8sup_l
    [ $# -ge 4 ] && echo "port=${4##*:}"
    IFS='
'
  done
  unset IFS; set +f
fi
command -v kubelet >/dev/null 2>&1 && echo "kubelet=$(kubelet --version 2>/dev/null | awk '{ print $2 }')"
command -v kubeadm >/dev/null 2>&1 && echo "kubeadm=$(kubeadm version -o short 2>/dev/null)"
command -v kubectl >/dev/null 2>&1 && echo "kubectl=$(kubectl version --client -o yaml 2>/dev/null | awk '/gitVersion/ { print $2 }')"
command -v containerd >/dev/null 2>&1 && echo "containerd=$(containerd --version 2>/dev/null | awk '{ print $3 }')"
command -v docker >/dev/null 2>&1 && echo "docker=$(docker version --format '{{.Server.Version}}' 2>/dev/null)"
command -v cri-dockerd >/dev/null 2>&1 && echo "cri_dockerd=$(cri-dockerd --version 2>&1 | awk '{ print $2 }')"
if [ -r /etc/kubernetes/manifests/kube-apiserver.yaml ]; then
  echo "control_plane=$(sed -n 's|^[[:space:]]*image:.*/kube-apiserver:\(v[0-9][0-9.]*\).*|\1|p' /etc/kubernetes/manifests/kube-apiserver.yaml | head -n 1)"
fi
if [ -r /etc/docker/daemon.json ]; then
  if grep -q 'native.cgroupdriver=systemd' /etc/docker/daemon.json; then echo docker_cgroup=systemd; else echo docker_cgroup=cgroupfs; fi
fi
if [ -r /etc/containerd/config.toml ]; then
  if grep -Eq '^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*true' /etc/containerd/config.toml; then echo containerd_cgroup=systemd; else echo containerd_cgroup=cgroupfs; fi
fi
if [ -r /var/lib/kubelet/config.yaml ]; then
  echo "kubelet_cgroup=$(awk '/^cgroupDriver:/ { print $2 }' /var/lib/kubelet/config.yaml)"
fi
for f in /var/lib/k8sup/upgrade/cordoned/*; do [ -e "$f" ] && echo "upgrade_cordoned=${f##*/}"; done
# The ledger's size: its file's, or its journal's while every entry is still there.
if [ -f /var/lib/k8sup/state.json ]; then echo "k8sup_state=$(wc -c < /var/lib/k8sup/state.json)"
elif [ -s /var/lib/k8sup/state.json.journal ]; then echo "k8sup_state=$(wc -c < /var/lib/k8sup/state.json.journal)"; fi
# Root, the owner of / on every system k8sup runs on, needs no `id`: the shell's
# `test -O` compares a file's owner with its own effective uid.
if [ -O / ]; then echo uid=0; else echo "uid=$(id -u)"; fi
echo end=1
