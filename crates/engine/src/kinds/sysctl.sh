# The sysctl kind (sysctl.rs), after the prelude.
# shellcheck disable=SC2034,SC2154 # the prelude's shared variables (its header names them)
# A key's value from its file under /proc/sys (dots are slashes unless the key has
# slashes already, as sysctl reads it), else from sysctl itself.
k8sup_sysctl_path() {
  case $1 in
    */*) k8sup_p=$1;;
    *) k8sup_p=; k8sup_sp_r=$1
       while :; do case $k8sup_sp_r in *.*) k8sup_p="$k8sup_p${k8sup_sp_r%%.*}/"; k8sup_sp_r=${k8sup_sp_r#*.};; *) k8sup_p=$k8sup_p$k8sup_sp_r; break;; esac; done;;
  esac
}
k8sup_sysctl_value() {
  k8sup_sysctl_path "$1"
  if [ -f "$k8sup_proc/sys/$k8sup_p" ] && k8sup_read_text "$k8sup_proc/sys/$k8sup_p" 2>/dev/null; then return 0; fi
  # /proc/sys is there but not this key's file (br_netfilter's keys before the module
  # is loaded): sysctl, which reads that very file, has no value either.
  if [ -d "$k8sup_proc/sys/kernel" ] && [ ! -e "$k8sup_proc/sys/$k8sup_p" ]; then k8sup_v=; return 0; fi
  k8sup_v=$(sysctl -n "$1" 2>/dev/null) || k8sup_v=
}
k8sup_probe_sysctl() {
  k8sup_ps_f=$1; k8sup_ps_e=$2; shift 2
  for k8sup_ps_k in "$@"; do
    k8sup_sysctl_value "$k8sup_ps_k"
    k8sup_put "text.$k8sup_ps_k" "value.$k8sup_ps_k"
  done
  k8sup_probe_file "$k8sup_ps_f" "$k8sup_ps_e"
}
k8sup_apply_sysctl() {
  k8sup_as_f=$1; shift
  k8sup_write "$k8sup_as_f" 0644 '' '' '' || return
  # Each value written to its file under /proc/sys, as sysctl -w does.
  for k8sup_as_kv in "$@"; do
    k8sup_sysctl_path "${k8sup_as_kv%%=*}"
    if [ -f "$k8sup_proc/sys/$k8sup_p" ]; then
      printf '%s\n' "${k8sup_as_kv#*=}" >| "$k8sup_proc/sys/$k8sup_p" || return
    else
      sysctl -w "$k8sup_as_kv" || return
    fi
  done
}
