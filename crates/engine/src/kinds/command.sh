# The command kind (command.rs), after the prelude.
# shellcheck disable=SC2034,SC2154 # the prelude's shared variables (its header names them)
k8sup_probe_command() {
  if [ -n "$1" ]; then if [ -e "$1" ]; then echo creates=1; else echo creates=0; fi; fi
  if [ -n "$2" ]; then k8sup_sh "$2" </dev/null >/dev/null 2>&1 3>&-; echo "unless=$?"; fi
  return 0
}
# Playbook code ($1) in a subshell of its own: a fork of this shell, not a new
# program, with no positional parameters, so its `exit`, `set`, `cd`, traps and
# variables end with it as they would in a `sh -c`. The text is in an unexported
# variable, never in a process's arguments (readable by every local user) or in the
# environment of the commands it runs: it may hold a secret.
k8sup_sh() { ( k8sup_c=$1; set --; eval "$k8sup_c" ); }
k8sup_apply_command() { k8sup_reloaded=; k8sup_sh "$1" </dev/null 3>&-; }
