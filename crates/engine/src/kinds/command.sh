# The command kind (command.rs), after the prelude.
# shellcheck disable=SC2034,SC2154 # the prelude's shared variables (its header names them)
k8sup_probe_command() {
  if [ -n "$1" ]; then if [ -e "$1" ]; then echo creates=1; else echo creates=0; fi; fi
  if [ -n "$2" ]; then k8sup_sh "$2" </dev/null >/dev/null 2>&1 3>&-; echo "unless=$?"; fi
  return 0
}
# Playbook code ($1) in a sh of its own, as `sh -c` would run it, but handed over in
# the environment (readable by its owner only) and not as an argument (readable by
# every local user): it may hold a secret. Its own commands do not inherit it.
# shellcheck disable=SC2016 # the single quotes are the inner sh's code, expanded there
k8sup_sh() { K8SUP_CODE=$1 sh -c 'k8sup_c=$K8SUP_CODE; unset K8SUP_CODE; eval "$k8sup_c"' k8sup; }
k8sup_apply_command() { k8sup_reloaded=; k8sup_sh "$1" </dev/null 3>&-; }
