# The service kind (service.rs), after the prelude.
# shellcheck disable=SC2034,SC2154 # the prelude's shared variables (its header names them)
# What `is-enabled` and `is-active` say, from one `systemctl show` (empty when the
# unit or systemd is missing).
k8sup_probe_service() {
  k8sup_svc_o=; k8sup_svc_e=; k8sup_svc_a=
  k8sup_svc_r=$(systemctl show -p LoadState -p UnitFileState -p ActiveState "$1" 2>/dev/null)$k8sup_nl
  while [ -n "$k8sup_svc_r" ]; do
    k8sup_svc_l=${k8sup_svc_r%%"$k8sup_nl"*}; k8sup_svc_r=${k8sup_svc_r#*"$k8sup_nl"}
    case $k8sup_svc_l in
      LoadState=*) k8sup_svc_o=${k8sup_svc_l#*=};; UnitFileState=*) k8sup_svc_e=${k8sup_svc_l#*=};; ActiveState=*) k8sup_svc_a=${k8sup_svc_l#*=};;
    esac
  done
  printf 'load=%s\nenabled=%s\nactive=%s\n' "$k8sup_svc_o" "$k8sup_svc_e" "$k8sup_svc_a"
}
