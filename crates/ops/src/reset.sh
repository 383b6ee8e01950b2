PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
set -u
if command -v kubeadm >/dev/null 2>&1; then
  kubeadm reset -f || exit 1
fi
systemctl stop kubelet >/dev/null 2>&1 || true
rm -rf /etc/cni/net.d /var/lib/cni /var/lib/kubelet/pki /etc/kubernetes/manifests /var/lib/etcd /etc/k8sup
if command -v ip >/dev/null 2>&1; then
  for link in cni0 flannel.1 tunl0 vxlan.calico; do ip link delete "$link" >/dev/null 2>&1 || true; done
fi
if command -v iptables >/dev/null 2>&1; then
  for table in filter nat mangle; do iptables -t "$table" -F && iptables -t "$table" -X || exit 1; done
fi
if command -v ipvsadm >/dev/null 2>&1; then ipvsadm --clear || true; fi
# The node-local API server balancer: k8sup's configuration of the distribution's haproxy.
if grep -qs '^# Written by k8sup' /etc/haproxy/haproxy.cfg; then
  systemctl disable --now haproxy >/dev/null 2>&1 || true
  rm -f /etc/haproxy/haproxy.cfg
fi
rm -rf /var/lib/k8sup
echo reset-done
