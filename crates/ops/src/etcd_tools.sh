# etcd's client tools on a kubeadm master, for the etcd scripts that follow.
#
# The host's own etcdctl when there is one (Debian's etcd-client, or etcd's release
# binaries), else the etcdctl and etcdutl of the etcd container kubeadm runs: its image
# holds them, and its pod mounts etcd's data dir and /etc/kubernetes/pki/etcd from the
# host, so what they read and write must be under those (a stock kubeadm master has no
# etcd client of its own).

# Sets etcd_where (host or container), etcd_container and etcd_data (the member's data
# dir); fails when etcd's container does not run here and the host has no etcdctl.
etcd_find() {
  etcd_data=$(sed -n 's/^ *- --data-dir=//p' /etc/kubernetes/manifests/etcd.yaml 2>/dev/null | head -n 1)
  [ -n "$etcd_data" ] || etcd_data=/var/lib/etcd
  etcd_container=
  if command -v etcdctl >/dev/null 2>&1; then
    etcd_where=host
    return 0
  fi
  etcd_where=container
  etcd_container=$(crictl ps --name '^etcd$' --state running -q 2>/dev/null | head -n 1)
  [ -n "$etcd_container" ]
}

# etcdctl against the local member, with a client certificate it can read where it runs.
etcd_ctl() {
  etcd_ctl_at https://127.0.0.1:2379 "$@"
}

# etcdctl against the members at $1 (comma-separated client URLs).
etcd_ctl_at() {
  etcd_endpoints=$1
  shift
  if [ "$etcd_where" = host ]; then
    ETCDCTL_API=3 etcdctl --endpoints="$etcd_endpoints" \
      --cacert=/etc/kubernetes/pki/etcd/ca.crt \
      --cert=/etc/kubernetes/pki/apiserver-etcd-client.crt \
      --key=/etc/kubernetes/pki/apiserver-etcd-client.key "$@"
  else
    crictl exec "$etcd_container" etcdctl --endpoints="$etcd_endpoints" \
      --cacert=/etc/kubernetes/pki/etcd/ca.crt \
      --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
      --key=/etc/kubernetes/pki/etcd/healthcheck-client.key "$@"
  fi
}

# etcdutl (3.5+), or etcd 3.4's etcdctl, which still has the offline snapshot commands.
etcd_utl() {
  if [ "$etcd_where" = container ]; then
    crictl exec "$etcd_container" etcdutl "$@"
  elif command -v etcdutl >/dev/null 2>&1; then
    etcdutl "$@"
  else
    ETCDCTL_API=3 etcdctl "$@"
  fi
}

# A new private directory the tools can reach, named $1 (which must not exist yet):
# under /var/tmp for the host's tools, inside etcd's data dir for the container's.
etcd_scratch() {
  if [ "$etcd_where" = host ]; then
    etcd_scratch_dir="/var/tmp/$1"
  else
    etcd_scratch_dir="$etcd_data/$1"
  fi
  (umask 077 && mkdir "$etcd_scratch_dir")
}
