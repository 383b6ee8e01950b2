# The module kind (module.rs), after the prelude.
# shellcheck disable=SC2034,SC2154 # the prelude's shared variables (its header names them)
# Loaded modules are /proc/modules' first words (what lsmod lists); built-in ones
# show only in /sys/module.
k8sup_probe_module() {
  k8sup_mod_v=0
  if [ -r "$k8sup_proc/modules" ]; then
    while read -r k8sup_mod_l _; do
      if [ "$k8sup_mod_l" = "$1" ]; then k8sup_mod_v=1; break; fi
    done < "$k8sup_proc/modules"
  else
    case "$k8sup_nl$(lsmod 2>/dev/null)" in *"$k8sup_nl$1 "*) k8sup_mod_v=1;; esac
  fi
  if [ "$k8sup_mod_v" = 0 ] && [ -d "/sys/module/$1" ]; then k8sup_mod_v=1; fi
  echo "loaded=$k8sup_mod_v"
  if [ -n "$2" ]; then k8sup_probe_file "$2" "$3"; fi
}
k8sup_apply_module() {
  modprobe "$1" || return
  if [ -n "$2" ]; then k8sup_text=$1$k8sup_nl; k8sup_has_text=1; k8sup_write "$2" 0644 '' '' ''; fi
}
