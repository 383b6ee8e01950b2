# The package kind (package.rs), after the prelude.
# shellcheck disable=SC2034,SC2154 # the prelude's shared variables (its header names them)
k8sup_probe_apt() {
  for k8sup_apt_p in "$@"; do
    k8sup_apt_v=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$k8sup_apt_p" 2>/dev/null) || k8sup_apt_v=
    case $k8sup_apt_v in ?i*) printf 'installed.%s=%s\n' "$k8sup_apt_p" "${k8sup_apt_v#*|}";; *) printf 'installed.%s=\n' "$k8sup_apt_p";; esac
    case $k8sup_apt_v in h*) printf 'held.%s=1\n' "$k8sup_apt_p";; *) printf 'held.%s=0\n' "$k8sup_apt_p";; esac
  done
}
k8sup_probe_rpm() {
  # The installer the apply will run: dnf, or yum where there is no dnf (release 7).
  if command -v dnf >/dev/null 2>&1; then echo manager=dnf; else echo manager=yum; fi
  for k8sup_rpm_p in "$@"; do
    k8sup_rpm_v=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$k8sup_rpm_p" 2>/dev/null) || k8sup_rpm_v=
    printf 'installed.%s=%s\n' "$k8sup_rpm_p" "$k8sup_rpm_v"
    k8sup_rpm_re=$(printf '%s' "$k8sup_rpm_p" | sed 's/[.+]/\\&/g')
    k8sup_rpm_h=0
    for k8sup_rpm_f in /etc/dnf/plugins/versionlock.list /etc/yum/pluginconf.d/versionlock.list; do
      [ -r "$k8sup_rpm_f" ] && grep -Eq "^([0-9]+:)?$k8sup_rpm_re-([0-9]+:)?[0-9]" "$k8sup_rpm_f" && k8sup_rpm_h=1
    done
    printf 'held.%s=%s\n' "$k8sup_rpm_p" "$k8sup_rpm_h"
  done
}
