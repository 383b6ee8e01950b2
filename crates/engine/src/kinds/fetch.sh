# The fetch kind (fetch.rs), after the prelude.
# shellcheck disable=SC2034,SC2154 # the prelude's shared variables (its header names them)
k8sup_fetch() {
  k8sup_reloaded=
  k8sup_fetch_v=$(k8sup_sh "$1" </dev/null 3>&-) || return
  { printf 'value='; printf '%s' "$k8sup_fetch_v" | k8sup_b64; echo; } >&3
}
