# The hostname kind (hostname.rs), after the prelude.
# shellcheck disable=SC2034,SC2154 # the prelude's shared variables (its header names them)
k8sup_probe_hostname() {
  if [ -r "$k8sup_proc/sys/kernel/hostname" ] && k8sup_read_text "$k8sup_proc/sys/kernel/hostname" 2>/dev/null; then :; else k8sup_v=$(hostname); fi
  k8sup_put current_text current
}
k8sup_apply_hostname() {
  if command -v hostnamectl >/dev/null 2>&1 && hostnamectl set-hostname "$1"; then return 0; fi
  hostname "$1" && printf '%s\n' "$1" > /etc/hostname
}
