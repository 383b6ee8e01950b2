//! The shell side of the engine: one static prelude of functions, and the framing
//! that lets many probes (or an apply, its state write and the re-probes after it)
//! share one channel.
//!
//! Every script sent is the [`PRELUDE`] (fixed text written here) followed by calls
//! of its functions whose every variable part is a quoted [`ShellArg`]. Output is
//! framed in sections:
//!
//! ```text
//! <nonce> begin <name>
//! key=value lines
//! <nonce> end <name> <exit status>
//! ```
//!
//! The nonce is 128 random bits chosen per script. Nothing a host prints can forge a
//! section: every free-form text (file content, command output, sysctl values) is
//! base64-encoded by the prelude, commands from playbooks run with stdout sent to
//! stderr or /dev/null and fd 3 closed, so the only lines on stdout are the
//! prelude's own. The parser is strict anyway: sections must appear in the order
//! asked for, with matching names.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use k8sup_shell::{Script, ShellArg};

/// Shell functions used by probes and applies. Probes (`k8sup_probe_*`,
/// `k8sup_read_state`) only read: no temp file, no lock, no write.
pub(crate) const PRELUDE: &str = r#"
k8sup_nl='
'
# Where the kernel's files are (tests point it elsewhere).
k8sup_proc=${K8SUP_PROC:-/proc}
k8sup_init() { K8SUP_NONCE=$1; k8sup_go=1; k8sup_entries=; K8SUP_LEN=; k8sup_pfn=0; k8sup_reloaded=; k8sup_has_text=; k8sup_clock_ms=; }
k8sup_begin() { printf '%s begin %s\n' "$K8SUP_NONCE" "$1"; }
k8sup_end() { printf '\n%s end %s %s\n' "$K8SUP_NONCE" "$1" "$2"; }
k8sup_b64() { base64 -w 0; }
# k8sup_v as "$1=text" when it is plain, else as "$2=base64" (tabs, several lines...).
k8sup_put() {
  case $k8sup_v in
    *[!A-Za-z0-9\ ._:/-]*) printf '%s=' "$2"; printf '%s' "$k8sup_v" | k8sup_b64; echo;;
    *) printf '%s=%s\n' "$1" "$k8sup_v";;
  esac
}
k8sup_ms() { k8sup_m=$(date +%s%3N 2>/dev/null); case $k8sup_m in ''|*[!0-9]*) k8sup_m=$(( $(date +%s) * 1000 ));; esac; echo "$k8sup_m"; }
# The time in ms since the epoch in k8sup_now: from bash's EPOCHREALTIME when the
# shell has it, else from one `date` per script plus the hundredths of a second that
# /proc/uptime moved since (no process), else from `date`.
k8sup_now() {
  case ${EPOCHREALTIME:-} in
    [0-9]*[.,][0-9][0-9][0-9]*)
      k8sup_now=${EPOCHREALTIME%[.,]*}${EPOCHREALTIME#*[.,]}
      k8sup_now=${k8sup_now%???}
      case $k8sup_now in *[!0-9]*) ;; *) return 0;; esac;;
  esac
  if k8sup_uptime; then
    if [ -z "$k8sup_clock_ms" ]; then k8sup_clock_ms=$(k8sup_ms); k8sup_clock_cs=$k8sup_up; fi
    k8sup_now=$(( k8sup_clock_ms + (k8sup_up - k8sup_clock_cs) * 10 ))
  else
    k8sup_now=$(k8sup_ms)
  fi
}
# /proc/uptime in hundredths of a second, in k8sup_up.
k8sup_uptime() {
  read -r k8sup_up k8sup_rest < "$k8sup_proc/uptime" 2>/dev/null || return 1
  case $k8sup_up in [0-9]*.[0-9][0-9]) k8sup_up=${k8sup_up%.*}${k8sup_up#*.};; *) return 1;; esac
  case $k8sup_up in *[!0-9]*) return 1;; esac
  # No leading zero: $(( )) would read octal.
  k8sup_up=${k8sup_up#"${k8sup_up%%[!0]*}"}; k8sup_up=${k8sup_up:-0}
}
k8sup_read_state() {
  if [ -e "$1" ]; then printf 'state='; k8sup_b64 < "$1" || return; echo; else echo state=absent; fi
  if [ -s "$1.journal" ]; then printf 'journal='; k8sup_b64 < "$1.journal" || return; echo; fi
}
# One stat and one sha256sum for all the files that the probes after it read, kept
# by position (names with a newline or backslash are left to the probes). Only for
# read-only scripts: nothing may change the files between this and their probes.
k8sup_prefetch() {
  for k8sup_f; do
    shift
    case $k8sup_f in *"$k8sup_nl"*|*\\*) continue;; esac
    if [ -f "$k8sup_f" ] && [ -r "$k8sup_f" ]; then set -- "$@" "$k8sup_f"; fi
  done
  [ $# -gt 0 ] || return 0
  k8sup_pst=$(stat -L -c '%a %U %G' -- "$@") || return 0
  k8sup_psum=$(sha256sum -- "$@") || return 0
  k8sup_i=0
  for k8sup_f; do k8sup_i=$((k8sup_i + 1)); eval "k8sup_pfp_$k8sup_i=\$k8sup_f"; done
  k8sup_index k8sup_pfs_ "$k8sup_pst" ''
  [ "$k8sup_i" = $# ] || return 0
  k8sup_index k8sup_pfh_ "$k8sup_psum" first-word
  [ "$k8sup_i" = $# ] || return 0
  k8sup_pfn=$#
}
# The lines of $2 as variables $1 1, $1 2, ... (with $3, each line's first word only);
# their count in k8sup_i.
k8sup_index() {
  k8sup_i=0; k8sup_r=$2$k8sup_nl
  while [ -n "$k8sup_r" ]; do
    k8sup_i=$((k8sup_i + 1)); k8sup_l=${k8sup_r%%"$k8sup_nl"*}; k8sup_r=${k8sup_r#*"$k8sup_nl"}
    [ -z "$3" ] || k8sup_l=${k8sup_l%% *}
    eval "$1$k8sup_i=\$k8sup_l"
  done
}
k8sup_probe_file() {
  if [ -d "$1" ]; then echo kind=dir; return 0; fi
  if [ ! -e "$1" ]; then echo kind=absent; return 0; fi
  echo kind=file
  k8sup_s=; k8sup_j=1
  while [ "$k8sup_j" -le "$k8sup_pfn" ]; do
    eval "k8sup_x=\$k8sup_pfp_$k8sup_j"
    if [ "$k8sup_x" = "$1" ]; then eval "k8sup_x=\$k8sup_pfs_$k8sup_j; k8sup_s=\$k8sup_pfh_$k8sup_j"; break; fi
    k8sup_j=$((k8sup_j + 1))
  done
  if [ -n "$k8sup_s" ]; then
    echo "stat=$k8sup_x"
  else
    echo "stat=$(stat -L -c '%a %U %G' -- "$1")"
    k8sup_s=$(sha256sum < "$1") || return 1
    k8sup_s=${k8sup_s%% *}
  fi
  echo "sha256=$k8sup_s"
  [ "$k8sup_s" = "$2" ] && return 0
  [ -n "$3" ] && return 0
  k8sup_n=$(wc -c < "$1")
  if [ "$k8sup_n" -gt 1048576 ]; then echo "content_too_large=$k8sup_n"; return 0; fi
  printf 'content='; k8sup_b64 < "$1"; echo
}
k8sup_probe_apt() {
  for k8sup_p in "$@"; do
    k8sup_v=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$k8sup_p" 2>/dev/null) || k8sup_v=
    case $k8sup_v in ?i*) printf 'installed.%s=%s\n' "$k8sup_p" "${k8sup_v#*|}";; *) printf 'installed.%s=\n' "$k8sup_p";; esac
    case $k8sup_v in h*) printf 'held.%s=1\n' "$k8sup_p";; *) printf 'held.%s=0\n' "$k8sup_p";; esac
  done
}
k8sup_probe_rpm() {
  for k8sup_p in "$@"; do
    k8sup_v=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$k8sup_p" 2>/dev/null) || k8sup_v=
    printf 'installed.%s=%s\n' "$k8sup_p" "$k8sup_v"
    k8sup_re=$(printf '%s' "$k8sup_p" | sed 's/[.+]/\\&/g')
    k8sup_h=0
    for k8sup_f in /etc/dnf/plugins/versionlock.list /etc/yum/pluginconf.d/versionlock.list; do
      [ -r "$k8sup_f" ] && grep -Eq "^([0-9]+:)?$k8sup_re-([0-9]+:)?[0-9]" "$k8sup_f" && k8sup_h=1
    done
    printf 'held.%s=%s\n' "$k8sup_p" "$k8sup_h"
  done
}
# What `is-enabled` and `is-active` say, from one `systemctl show` (empty when the
# unit or systemd is missing).
k8sup_probe_service() {
  k8sup_e=; k8sup_a=
  k8sup_r=$(systemctl show -p UnitFileState -p ActiveState "$1" 2>/dev/null)$k8sup_nl
  while [ -n "$k8sup_r" ]; do
    k8sup_l=${k8sup_r%%"$k8sup_nl"*}; k8sup_r=${k8sup_r#*"$k8sup_nl"}
    case $k8sup_l in UnitFileState=*) k8sup_e=${k8sup_l#*=};; ActiveState=*) k8sup_a=${k8sup_l#*=};; esac
  done
  printf 'enabled=%s\nactive=%s\n' "$k8sup_e" "$k8sup_a"
}
# A kernel file's text as `sysctl -n` or `cat` would print it (trailing newlines
# dropped) in k8sup_v, read by the shell itself: no process.
k8sup_read_text() {
  k8sup_v=; k8sup_first=1
  while IFS= read -r k8sup_l || [ -n "$k8sup_l" ]; do
    if [ -n "$k8sup_first" ]; then k8sup_v=$k8sup_l; k8sup_first=; else k8sup_v="$k8sup_v$k8sup_nl$k8sup_l"; fi
  done < "$1" || return
  while :; do case $k8sup_v in *"$k8sup_nl") k8sup_v=${k8sup_v%"$k8sup_nl"};; *) return 0;; esac; done
}
# Loaded modules are /proc/modules' first words (what lsmod lists); built-in ones
# show only in /sys/module.
k8sup_probe_module() {
  k8sup_v=0
  if [ -r "$k8sup_proc/modules" ]; then
    while read -r k8sup_l k8sup_rest; do
      if [ "$k8sup_l" = "$1" ]; then k8sup_v=1; break; fi
    done < "$k8sup_proc/modules"
  else
    case "$k8sup_nl$(lsmod 2>/dev/null)" in *"$k8sup_nl$1 "*) k8sup_v=1;; esac
  fi
  if [ "$k8sup_v" = 0 ] && [ -d "/sys/module/$1" ]; then k8sup_v=1; fi
  echo "loaded=$k8sup_v"
  if [ -n "$2" ]; then k8sup_probe_file "$2" "$3"; fi
}
# A key's value from its file under /proc/sys (dots are slashes unless the key has
# slashes already, as sysctl reads it), else from sysctl itself.
k8sup_sysctl_path() {
  case $1 in
    */*) k8sup_p=$1;;
    *) k8sup_p=; k8sup_r=$1
       while :; do case $k8sup_r in *.*) k8sup_p="$k8sup_p${k8sup_r%%.*}/"; k8sup_r=${k8sup_r#*.};; *) k8sup_p=$k8sup_p$k8sup_r; break;; esac; done;;
  esac
}
k8sup_sysctl_value() {
  k8sup_sysctl_path "$1"
  if [ -f "$k8sup_proc/sys/$k8sup_p" ] && k8sup_read_text "$k8sup_proc/sys/$k8sup_p" 2>/dev/null; then return 0; fi
  k8sup_v=$(sysctl -n "$1" 2>/dev/null) || k8sup_v=
}
k8sup_probe_sysctl() {
  k8sup_f=$1; k8sup_e=$2; shift 2
  for k8sup_k in "$@"; do
    k8sup_sysctl_value "$k8sup_k"
    k8sup_put "text.$k8sup_k" "value.$k8sup_k"
  done
  k8sup_probe_file "$k8sup_f" "$k8sup_e"
}
k8sup_probe_command() {
  if [ -n "$1" ]; then if [ -e "$1" ]; then echo creates=1; else echo creates=0; fi; fi
  if [ -n "$2" ]; then k8sup_sh "$2" </dev/null >/dev/null 2>&1 3>&-; echo "unless=$?"; fi
  return 0
}
k8sup_probe_hostname() {
  if [ -r "$k8sup_proc/sys/kernel/hostname" ] && k8sup_read_text "$k8sup_proc/sys/kernel/hostname" 2>/dev/null; then :; else k8sup_v=$(hostname); fi
  k8sup_put current_text current
}
k8sup_write() {
  k8sup_reloaded=
  if [ -n "$5" ]; then
    if [ -e "$1" ]; then k8sup_c=$(sha256sum < "$1") || return; k8sup_c=${k8sup_c%% *}; else k8sup_c=absent; fi
    if [ "$k8sup_c" != "$5" ]; then echo "k8sup: $1 changed since it was probed" >&2; return 3; fi
  fi
  k8sup_d=${1%/*}; [ -n "$k8sup_d" ] || k8sup_d=/
  [ -d "$k8sup_d" ] || mkdir -p -- "$k8sup_d" || return
  # A new temp file beside the target, created exclusively (noclobber is O_EXCL) and,
  # for the usual modes, with its mode from the umask: no mktemp, no chmod.
  case $2 in
    0644|644) k8sup_um=022; k8sup_cm=;; 0640|640) k8sup_um=027; k8sup_cm=;;
    0600|600) k8sup_um=077; k8sup_cm=;; *) k8sup_um=077; k8sup_cm=1;;
  esac
  k8sup_w=0
  while :; do
    k8sup_w=$((k8sup_w + 1)); k8sup_t="$k8sup_d/.k8sup.$$.$k8sup_w"
    ( umask "$k8sup_um"; set -C; : > "$k8sup_t" ) 2>/dev/null && break
    if [ ! -e "$k8sup_t" ] && [ ! -L "$k8sup_t" ] || [ "$k8sup_w" -ge 100 ]; then
      echo "k8sup: cannot create a file in $k8sup_d" >&2; return 1
    fi
  done
  # The content: k8sup_text when set; in a batch the next K8SUP_LEN bytes of stdin.
  if [ -n "$k8sup_has_text" ]; then k8sup_has_text=; printf '%s' "$k8sup_text" > "$k8sup_t"
  elif [ -n "$K8SUP_LEN" ]; then head -c "$K8SUP_LEN" > "$k8sup_t"; else cat > "$k8sup_t"; fi && { [ -z "$k8sup_cm" ] || chmod "$2" "$k8sup_t"; } && { [ -z "$3" ] || chown "$3" "$k8sup_t"; } && { [ -z "$4" ] || chgrp "$4" "$k8sup_t"; } && { sync "$k8sup_t" 2>/dev/null || sync; } && mv -f -- "$k8sup_t" "$1" && return 0
  k8sup_r=$?; rm -f -- "$k8sup_t"; return $k8sup_r
}
k8sup_apt_install() { apt-get install -y -q --allow-downgrades --allow-change-held-packages "$@"; }
k8sup_apply_pkg() {
  k8sup_reloaded=
  k8sup_m=$1; k8sup_h=$2; shift 2; k8sup_n=$#
  if [ "$k8sup_m" = dnf ] && ! command -v dnf >/dev/null 2>&1; then k8sup_m=yum; fi
  for k8sup_s in "$@"; do
    [ "$k8sup_m" = apt ] || $k8sup_m versionlock delete "${k8sup_s%%|*}" >/dev/null 2>&1
    set -- "$@" "${k8sup_s#*|}"
  done
  if [ "$k8sup_m" = apt ]; then
    # From the package lists the host has; only when they lack the package or the
    # version (a repository added since, a pinned version newer than the lists) are
    # they refreshed and the install tried again.
    ( shift "$k8sup_n"; export DEBIAN_FRONTEND=noninteractive
      k8sup_apt_install "$@" 2>/dev/null || { apt-get update -q && k8sup_apt_install "$@"; } ) || return
  else
    ( shift "$k8sup_n"; $k8sup_m install -y "$@" ) || return
  fi
  [ "$k8sup_h" = 1 ] || return 0
  # dnf/yum hold packages with the versionlock plugin, which minimal installs lack.
  if [ "$k8sup_m" = dnf ] && ! dnf versionlock list >/dev/null 2>&1; then
    dnf install -y python3-dnf-plugin-versionlock || return
  elif [ "$k8sup_m" = yum ] && ! yum versionlock list >/dev/null 2>&1; then
    yum install -y yum-plugin-versionlock || return
  fi
  k8sup_i=0
  for k8sup_s in "$@"; do
    k8sup_i=$((k8sup_i + 1)); [ "$k8sup_i" -le "$k8sup_n" ] || break
    if [ "$k8sup_m" = apt ]; then apt-mark hold "${k8sup_s%%|*}" || return; else $k8sup_m versionlock add "${k8sup_s%%|*}" || return; fi
  done
}
# systemd reloads its units once per script, and again only after something else
# was written, installed or run.
k8sup_apply_service() {
  if [ -z "$k8sup_reloaded" ]; then systemctl daemon-reload || return; k8sup_reloaded=1; fi
  case $2$3 in
    1start) systemctl enable --now "$1" || return; return 0;;
  esac
  case $2 in 1) systemctl enable "$1" || return;; 0) systemctl disable "$1" || return;; esac
  case $3 in -) ;; *) systemctl "$3" "$1" || return;; esac
}
k8sup_apply_module() {
  modprobe "$1" || return
  if [ -n "$2" ]; then k8sup_text=$1$k8sup_nl; k8sup_has_text=1; k8sup_write "$2" 0644 '' '' ''; fi
}
k8sup_apply_sysctl() {
  k8sup_f=$1; shift
  k8sup_write "$k8sup_f" 0644 '' '' '' || return
  # Each value written to its file under /proc/sys, as sysctl -w does.
  for k8sup_kv in "$@"; do
    k8sup_sysctl_path "${k8sup_kv%%=*}"
    if [ -f "$k8sup_proc/sys/$k8sup_p" ]; then
      printf '%s\n' "${k8sup_kv#*=}" > "$k8sup_proc/sys/$k8sup_p" || return
    else
      sysctl -w "$k8sup_kv" || return
    fi
  done
}
# Playbook code ($1) in a sh of its own, as `sh -c` would run it, but handed over in
# the environment (readable by its owner only) and not as an argument (readable by
# every local user): it may hold a secret. Its own commands do not inherit it.
k8sup_sh() { K8SUP_CODE=$1 sh -c 'k8sup_c=$K8SUP_CODE; unset K8SUP_CODE; eval "$k8sup_c"' k8sup; }
k8sup_apply_command() { k8sup_reloaded=; k8sup_sh "$1" </dev/null 3>&-; }
k8sup_fetch() {
  k8sup_reloaded=
  k8sup_v=$(k8sup_sh "$1" </dev/null 3>&-) || return
  { printf 'value='; printf '%s' "$k8sup_v" | k8sup_b64; echo; } >&3
}
k8sup_apply_hostname() {
  if command -v hostnamectl >/dev/null 2>&1 && hostnamectl set-hostname "$1"; then return 0; fi
  hostname "$1" && printf '%s\n' "$1" > /etc/hostname
}
k8sup_state() {
  # $1 path, $2 head, $3 tail, $4 entry prefix, $5 1 if head has entries, $6 journal
  # line prefix, $7 apply status, $8 $9 start and end. The times land in JSON: digits.
  for k8sup_n in "$8" "$9"; do
    case $k8sup_n in ''|*[!0-9]*) echo "k8sup: bad task times '$8' '$9'" >&2; return 1;; esac
  done
  k8sup_d=${1%/*}; [ -n "$k8sup_d" ] || k8sup_d=/
  [ -d "$k8sup_d" ] || mkdir -p -- "$k8sup_d" || return
  if [ "$7" = 0 ]; then k8sup_res=changed; else k8sup_res=failed; fi
  echo "start=$8"; echo "end=$9"
  k8sup_v="$k8sup_res\",\"started_ms\":$8,\"finished_ms\":$9,\"duration_ms\":$(( $9 - $8 ))}"
  # The entries this script recorded, for the ledger rewritten at its end...
  if [ -n "$k8sup_entries" ] || [ "$5" = 1 ]; then k8sup_entries="$k8sup_entries,"; fi
  k8sup_entries="$k8sup_entries$4$k8sup_v"
  k8sup_head=$2; k8sup_tail=$3
  # ...and this one in the journal now: one line appended, no process.
  printf '%s\n' "$6$k8sup_v}" >> "$1.journal"
}
# Rewrites the ledger with the entries of this script (atomically, made durable),
# then empties the journal that held them meanwhile.
k8sup_compact() {
  [ -n "$k8sup_entries" ] || return 0
  # A name of this script's own: two writers never share a temp file.
  k8sup_t=$1.k8sup-tmp.$$
  printf '%s%s%s' "$k8sup_head" "$k8sup_entries" "$k8sup_tail" > "$k8sup_t" && { sync "$k8sup_t" 2>/dev/null || sync; } && mv -f -- "$k8sup_t" "$1" && : > "$1.journal" && return 0
  k8sup_r=$?; rm -f -- "$k8sup_t"; return $k8sup_r
}
k8sup_batch() { k8sup_go=1; k8sup_from=$1; }
k8sup_guard() {
  # $1: the output judged, as text (t:...) or as its digest (d:...).
  case $1 in
    t:*) [ "t:$k8sup_o|$2" = "$1" ];;
    *) k8sup_s=$(printf '%s|%s' "$k8sup_o" "$2" | sha256sum) || k8sup_s=; [ "d:${k8sup_s%% *}" = "$1" ];;
  esac
  if [ $? = 0 ]; then k8sup_r=0; else k8sup_r=1; k8sup_go=0; k8sup_from=$3; fi
}
k8sup_len() { K8SUP_LEN=$1; }
k8sup_reach() { [ "$k8sup_from" -le "$1" ]; }
"#;

/// A fresh nonce of 128 random bits, as 32 hex digits.
pub(crate) fn nonce() -> String {
    // RandomState is seeded from the OS's randomness per instance.
    let mut out = String::new();
    for salt in 0..2u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

/// Makes a [`ShellArg`] of text known to hold no NUL (checked by the caller, or
/// built here from digits and names).
pub(crate) fn arg(text: impl Into<String>) -> Result<ShellArg, String> {
    ShellArg::new(text).map_err(|e| e.to_string())
}

/// A script under construction: the prelude, the nonce, then sections.
pub(crate) struct FramedScript {
    script: Script,
    nonce: String,
    expected: Vec<String>,
}

impl FramedScript {
    pub fn new() -> FramedScript {
        let nonce = nonce();
        let script = Script::new(PRELUDE)
            .code("k8sup_init")
            .arg(ShellArg::new(nonce.clone()).expect("hex digits"));
        FramedScript {
            script,
            nonce,
            expected: Vec::new(),
        }
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Reads the state of `paths` for the probes that follow, all at once (see
    /// `k8sup_prefetch`). Only for scripts that change nothing.
    pub fn prefetch<'a>(mut self, paths: impl IntoIterator<Item = &'a str>) -> Self {
        let mut paths: Vec<&str> = paths.into_iter().collect();
        paths.sort_unstable();
        paths.dedup();
        let args: Vec<ShellArg> = paths
            .into_iter()
            .filter_map(|p| ShellArg::new(p).ok())
            .collect();
        if !args.is_empty() {
            self.script = self
                .script
                .code("; k8sup_prefetch")
                .args(args)
                .code("</dev/null >/dev/null 2>&1");
        }
        self
    }

    /// Adds a section `name` whose body is the output of `call` (a prelude function
    /// invocation, its status the section's status).
    pub fn section(mut self, name: &str, call: Script) -> Self {
        let name_arg = ShellArg::new(name).expect("section names are ours");
        self.script = self
            .script
            .code("; k8sup_begin")
            .arg(name_arg.clone())
            .then(";", call)
            .code("; k8sup_end")
            .arg(name_arg)
            .code("$?");
        self.expected.push(name.to_string());
        self
    }

    /// Adds the apply of a task as section `name`: `call`'s stdout goes to stderr, its
    /// fd 3 becomes the section body; the start and end times are kept for the state
    /// write. With `stdin_len`, the call reads exactly that many bytes of the channel's
    /// stdin (the rest belongs to later applies); without, it reads nothing.
    pub fn apply_section(mut self, name: &str, call: Script, stdin_len: Option<usize>) -> Self {
        let name_arg = ShellArg::new(name).expect("section names are ours");
        self.script = self
            .script
            .code("; k8sup_now; k8sup_apply_t0=$k8sup_now; k8sup_begin")
            .arg(name_arg.clone());
        self.script = match stdin_len {
            Some(len) => self
                .script
                .code("; k8sup_len")
                .arg(ShellArg::new(len.to_string()).expect("digits"))
                .code("; {")
                .then("", call)
                .code("; } 3>&1 >&2"),
            None => self
                .script
                .code("; {")
                .then("", call)
                .code("; } </dev/null 3>&1 >&2"),
        };
        self.script = self
            .script
            .code(
                "; k8sup_apply_rc=$?; K8SUP_LEN=; k8sup_now; k8sup_apply_t1=$k8sup_now; k8sup_end",
            )
            .arg(name_arg)
            .code("$k8sup_apply_rc");
        self.expected.push(name.to_string());
        self
    }

    /// Adds the atomic state write `name` after an apply section: the whole ledger,
    /// with the entries this script recorded so far (see
    /// [`crate::state::StateLedger::batch_write`]).
    pub fn state_section(
        mut self,
        name: &str,
        state_path: ShellArg,
        write: &crate::state::LedgerWrite,
    ) -> Result<Self, String> {
        let name_arg = ShellArg::new(name).expect("section names are ours");
        let flag = if write.head_has_entries { "1" } else { "0" };
        self.script = self
            .script
            .code("; k8sup_begin")
            .arg(name_arg.clone())
            .code("; k8sup_state")
            .arg(state_path)
            .arg(arg(write.head.clone())?)
            .arg(arg(write.tail.clone())?)
            .arg(arg(write.entry_prefix.clone())?)
            .arg(ShellArg::new(flag).expect("a digit"))
            .arg(arg(write.journal_prefix.clone())?)
            .code(r#""$k8sup_apply_rc" "$k8sup_apply_t0" "$k8sup_apply_t1"; k8sup_end"#)
            .arg(name_arg)
            .code("$?");
        self.expected.push(name.to_string());
        Ok(self)
    }

    /// Stops the script here, the ledger rewritten, unless the apply succeeded.
    pub fn stop_unless_applied(mut self, state_path: ShellArg) -> Self {
        self.script = self
            .script
            .code(r#"; [ "$k8sup_apply_rc" = 0 ] || { k8sup_compact"#)
            .arg(state_path)
            .code("; exit 0; }");
        self
    }

    /// Starts a batch of steps. Its parts run while every guard holds; the first guard
    /// that fails stops them and moves the re-probe's start (`from`, by default the
    /// step after the batch) to its step.
    pub fn begin_batch(mut self, from: usize) -> Self {
        self.script = self
            .script
            .code("; k8sup_batch")
            .arg(ShellArg::new(from.to_string()).expect("digits"));
        self
    }

    /// Re-runs the probe of step `step` (section `g<step>`, status 0 when its output is
    /// still the one judged, whose digest is `digest`; see [`guard_digest`]).
    pub fn guard(mut self, step: usize, probe: Script, digest: &str) -> Self {
        let name = format!("g{step}");
        let name_arg = ShellArg::new(name.clone()).expect("section names are ours");
        self.script = self
            .script
            .code(r#"; if [ "$k8sup_go" = 1 ]; then k8sup_begin"#)
            .arg(name_arg.clone())
            .code("; k8sup_o=$(")
            .then("", probe)
            .code("</dev/null); k8sup_guard")
            .arg(ShellArg::new(digest).expect("guard_digest has no NUL"))
            .code(r#""$?""#)
            .arg(ShellArg::new(step.to_string()).expect("digits"))
            .code("; k8sup_end")
            .arg(name_arg)
            .code(r#""$k8sup_r"; fi"#);
        self.expected.push(name);
        self
    }

    /// What follows, up to [`FramedScript::end_if_going`], runs only while every guard
    /// of the batch held.
    pub fn if_going(mut self) -> Self {
        self.script = self.script.code(r#"; if [ "$k8sup_go" = 1 ]; then :"#);
        self
    }

    pub fn end_if_going(mut self) -> Self {
        self.script = self.script.code("; fi");
        self
    }

    /// Rewrites the ledger at `state_path` with what this script recorded in its journal.
    pub fn compact_state(mut self, state_path: ShellArg) -> Self {
        self.script = self.script.code("; k8sup_compact").arg(state_path);
        self
    }

    /// Adds section `from`: where the re-probe starts (field `from`).
    pub fn restart_section(mut self) -> Self {
        self.script = self
            .script
            .code(r#"; k8sup_begin from; echo "from=$k8sup_from"; k8sup_end from 0"#);
        self.expected.push("from".into());
        self
    }

    /// Adds the probe of step `step` (section `<step>`), run only when the re-probe
    /// starts at or before it.
    pub fn reprobe_section(mut self, step: usize, probe: Script) -> Self {
        let name_arg = ShellArg::new(step.to_string()).expect("digits");
        self.script = self
            .script
            .code("; if k8sup_reach")
            .arg(name_arg.clone())
            .code("; then k8sup_begin")
            .arg(name_arg.clone())
            .then(";", probe)
            .code("; k8sup_end")
            .arg(name_arg)
            .code("$?; fi");
        self.expected.push(step.to_string());
        self
    }

    pub fn finish(self) -> (Script, Framing) {
        (
            self.script,
            Framing {
                nonce: self.nonce,
                expected: self.expected,
            },
        )
    }
}

/// What a [`FramedScript`]'s output must look like.
#[derive(Debug, Clone)]
pub(crate) struct Framing {
    nonce: String,
    expected: Vec<String>,
}

/// One section of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: String,
    pub status: i32,
    pub body: String,
}

impl Section {
    /// The `key=value` lines of the body.
    pub fn fields(&self) -> BTreeMap<String, String> {
        self.body
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Framing {
    /// Splits `stdout` into the sections asked for, in order. Sections skipped (a
    /// guard failed) or missing at the end (the script stopped early) are simply
    /// absent; a section out of order or twice, or anything out of frame, is an error.
    pub fn parse(&self, stdout: &str) -> Result<Vec<Section>, String> {
        let begin_prefix = format!("{} begin ", self.nonce);
        let end_prefix = format!("{} end ", self.nonce);
        let mut sections = Vec::new();
        let mut next = 0;
        let mut current: Option<(String, Vec<&str>)> = None;
        for line in stdout.split('\n') {
            if let Some(name) = line.strip_prefix(&begin_prefix) {
                if let Some((open, _)) = &current {
                    return Err(format!("section {name:?} began inside section {open:?}"));
                }
                // Sections come in the order asked for; a guard that fails skips some.
                let Some(offset) = self.expected[next..].iter().position(|e| e == name) else {
                    return Err(format!(
                        "unexpected section {name:?} (expected one of {:?})",
                        &self.expected[next..]
                    ));
                };
                next += offset + 1;
                current = Some((name.to_string(), Vec::new()));
            } else if let Some(rest) = line.strip_prefix(&end_prefix) {
                let Some((open, mut body)) = current.take() else {
                    return Err(format!("section end {rest:?} outside any section"));
                };
                let (name, status) = rest
                    .rsplit_once(' ')
                    .ok_or_else(|| format!("malformed section end {rest:?}"))?;
                if name != open {
                    return Err(format!("section {open:?} ended as {name:?}"));
                }
                let status = status
                    .parse::<i32>()
                    .map_err(|_| format!("section {name:?} has status {status:?}"))?;
                // k8sup_end prints a newline first: the last body line is always empty.
                if body.last() == Some(&"") {
                    body.pop();
                }
                sections.push(Section {
                    name: open,
                    status,
                    body: body.join("\n"),
                });
            } else if let Some((_, body)) = &mut current {
                body.push(line);
            } else if !line.is_empty() {
                return Err(format!(
                    "output outside any section: {:?}",
                    truncate(line, 80)
                ));
            }
        }
        if let Some((open, _)) = current {
            return Err(format!("section {open:?} never ended (output cut off)"));
        }
        Ok(sections)
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// What `k8sup_guard` compares a step's probe output with: the output without its
/// trailing newlines (as `$(...)` keeps it), `|`, and the probe's exit status; as
/// text (`t:`) when short, which the shell compares without a process, else as its
/// sha256 (`d:`).
pub(crate) fn guard_digest(section: &Section) -> String {
    let text = format!("{}|{}", section.body.trim_end_matches('\n'), section.status);
    if text.len() <= 1024 && !text.contains('\0') {
        format!("t:{text}")
    } else {
        format!("d:{}", crate::kinds::sha256_hex(text.as_bytes()))
    }
}

/// Decodes a base64 field written by `k8sup_b64`.
pub(crate) fn decode_b64(text: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [255u8; 256];
    for (i, c) in ALPHABET.iter().enumerate() {
        table[*c as usize] = i as u8;
    }
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let trimmed: Vec<u8> = clean.iter().copied().take_while(|b| *b != b'=').collect();
    if clean.len() % 4 != 0 && !clean.is_empty() {
        return Err("base64 text of a length that is not a multiple of 4".into());
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for b in trimmed {
        let v = table[b as usize];
        if v == 255 {
            return Err(format!("not base64: byte {b:#x}"));
        }
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Encodes bytes as base64.
#[cfg(test)]
pub(crate) fn encode_b64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(nonce: &str, expected: &[&str]) -> Framing {
        Framing {
            nonce: nonce.into(),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn sections_parse_in_order_with_status() {
        let f = framing("N1", &["0", "1"]);
        let out = "N1 begin 0\nkind=absent\n\nN1 end 0 0\nN1 begin 1\n\nN1 end 1 3\n";
        let s = f.parse(out).unwrap();
        assert_eq!(s[0].body, "kind=absent");
        assert_eq!(s[0].fields()["kind"], "absent");
        assert_eq!((s[1].status, s[1].body.as_str()), (3, ""));
    }

    #[test]
    fn marker_like_text_from_a_host_is_data_or_an_error() {
        // A line with another nonce is body text.
        let f = framing("REAL", &["0"]);
        let out = "REAL begin 0\nFAKE end 0 0\nFAKE begin 1\n\nREAL end 0 0\n";
        let s = f.parse(out).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].body, "FAKE end 0 0\nFAKE begin 1");
        // Even a forged marker with the real nonce cannot add or reorder sections.
        let forged = "REAL begin 0\nREAL end 0 0\nREAL begin 0\n\nREAL end 0 0\n";
        assert!(f.parse(forged).is_err());
        // A section skipped by a failed guard is absent; the order still holds.
        let f3 = framing("REAL", &["g1", "a1", "from", "1"]);
        let skipped =
            "REAL begin g1\n\nREAL end g1 1\nREAL begin from\nfrom=1\n\nREAL end from 0\n";
        let s = f3.parse(skipped).unwrap();
        assert_eq!(s.len(), 2);
        assert!(f3
            .parse("REAL begin from\n\nREAL end from 0\nREAL begin a1\n\nREAL end a1 0\n")
            .is_err());
        let out_of_frame = "hello\nREAL begin 0\n\nREAL end 0 0\n";
        assert!(f.parse(out_of_frame).is_err());
        assert!(f.parse("REAL begin 0\npartial").is_err());
    }

    #[test]
    fn base64_round_trips() {
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"\x00\xff\x10 line\n",
        ] {
            assert_eq!(decode_b64(&encode_b64(data)).unwrap(), data);
        }
        assert_eq!(encode_b64(b"hello"), "aGVsbG8=");
        assert!(decode_b64("a$==").is_err());
    }

    #[test]
    fn a_framed_script_runs_in_sh_and_parses_back() {
        let (script, framing) = FramedScript::new()
            .section(
                "0",
                Script::new("printf 'x=%s\\n'").arg(arg("a b").unwrap()),
            )
            .section(
                "1",
                Script::new("k8sup_probe_file")
                    .arg(arg("/nonexistent/k8sup").unwrap())
                    .arg(arg("").unwrap()),
            )
            .section("2", Script::new("printf '%s\\n' 'NONCE end 2 0'; false"))
            .finish();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .output()
            .unwrap();
        let sections = framing
            .parse(&String::from_utf8_lossy(&out.stdout))
            .unwrap();
        assert_eq!(sections.len(), 3);
        assert_eq!(sections[0].fields()["x"], "a b");
        assert_eq!(sections[1].fields()["kind"], "absent");
        assert_eq!(sections[2].status, 1);
        assert_eq!(sections[2].body, "NONCE end 2 0");
    }

    /// Runs a framed script under `shell` with `env` and parses its sections.
    fn run_framed(
        shell: &str,
        script: &Script,
        framing: &Framing,
        env: &[(&str, &std::path::Path)],
    ) -> Vec<Section> {
        let out = std::process::Command::new(shell)
            .arg("-c")
            .arg(script.render())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        framing
            .parse(&String::from_utf8_lossy(&out.stdout))
            .unwrap()
    }

    /// Modules, sysctls and the hostname are read from the kernel's files by the shell
    /// itself, under sh and bash alike, with the tools only where a file is missing.
    #[test]
    fn kernel_state_is_read_from_proc_without_processes() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(proc.join("sys/net/ipv4")).unwrap();
        std::fs::create_dir_all(proc.join("sys/kernel")).unwrap();
        std::fs::create_dir_all(proc.join("sys/net/ipv4/conf/eth0.5")).unwrap();
        std::fs::write(proc.join("sys/net/ipv4/ip_forward"), "1\n").unwrap();
        std::fs::write(
            proc.join("sys/net/ipv4/ip_local_port_range"),
            "32768\t60999\n",
        )
        .unwrap();
        std::fs::write(proc.join("sys/net/ipv4/conf/eth0.5/forwarding"), "0\n").unwrap();
        std::fs::write(proc.join("sys/kernel/hostname"), "node-1\n").unwrap();
        std::fs::write(
            proc.join("modules"),
            "overlay 151552 0 - Live 0x0\nbr_netfilter 32768 0 - Live 0x0\n",
        )
        .unwrap();
        let (script, framing) = FramedScript::new()
            .section("0", Script::new("k8sup_probe_module br_netfilter"))
            .section("1", Script::new("k8sup_probe_module br_netfilte"))
            .section(
                "2",
                Script::new(
                    "k8sup_probe_sysctl /nonexistent/k8sup '' net.ipv4.ip_forward \
                     net.ipv4.ip_local_port_range net/ipv4/conf/eth0.5/forwarding",
                ),
            )
            .section("3", Script::new("k8sup_probe_hostname"))
            .finish();
        // Only base64 and tr (for values that are not plain text) can be found: no
        // lsmod, sysctl or hostname.
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in ["base64", "tr"] {
            std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), bin.join(tool)).unwrap();
        }
        for shell in ["/bin/sh", "/bin/bash"] {
            let sections = run_framed(
                shell,
                &script,
                &framing,
                &[("K8SUP_PROC", proc.as_path()), ("PATH", bin.as_path())],
            );
            assert_eq!(sections[0].fields()["loaded"], "1", "{shell}");
            assert_eq!(sections[1].fields()["loaded"], "0", "{shell}");
            let sysctl = sections[2].fields();
            assert_eq!(sysctl["text.net.ipv4.ip_forward"], "1", "{shell}");
            assert_eq!(
                decode_b64(&sysctl["value.net.ipv4.ip_local_port_range"]).unwrap(),
                b"32768\t60999",
                "{shell}"
            );
            assert_eq!(
                sysctl["text.net/ipv4/conf/eth0.5/forwarding"], "0",
                "{shell}"
            );
            assert_eq!(sections[3].fields()["current_text"], "node-1", "{shell}");
        }
    }

    /// A read-only script reads all its files with one stat and one sha256sum, and
    /// each probe reports exactly what it reports on its own.
    #[test]
    fn prefetched_files_probe_as_they_do_alone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.conf"), "a\n").unwrap();
        std::fs::write(d.join("b conf"), "b").unwrap();
        std::fs::write(d.join("new\nline"), "n").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let log = d.join("calls");
        let bin = d.join("bin");
        std::fs::create_dir(&bin).unwrap();
        for tool in ["stat", "sha256sum", "base64", "tr", "wc"] {
            let wrapper = format!(
                "#!/bin/sh\necho {tool} >> '{}'\nexec /usr/bin/{tool} \"$@\"\n",
                log.display()
            );
            std::fs::write(bin.join(tool), wrapper).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let paths: Vec<String> = ["a.conf", "b conf", "new\nline", "sub", "absent"]
            .iter()
            .map(|n| d.join(n).display().to_string())
            .collect();
        let probes = |prefetch: bool| {
            let mut framed = FramedScript::new();
            if prefetch {
                framed = framed.prefetch(paths.iter().map(String::as_str));
            }
            for (i, path) in paths.iter().enumerate() {
                framed = framed.section(
                    &i.to_string(),
                    Script::new("k8sup_probe_file")
                        .arg(arg(path.as_str()).unwrap())
                        .arg(arg("").unwrap()),
                );
            }
            framed.finish()
        };
        for shell in ["/bin/sh", "/bin/bash"] {
            let mut bodies = Vec::new();
            for prefetch in [false, true] {
                let _ = std::fs::remove_file(&log);
                let (script, framing) = probes(prefetch);
                let sections = run_framed(shell, &script, &framing, &[("PATH", bin.as_path())]);
                bodies.push(
                    sections
                        .iter()
                        .map(|s| (s.status, s.body.clone()))
                        .collect::<Vec<_>>(),
                );
                let calls = std::fs::read_to_string(&log).unwrap_or_default();
                let count = |tool: &str| calls.lines().filter(|l| *l == tool).count();
                if prefetch {
                    // Once for the two plain files; the name with a newline on its own.
                    assert_eq!((count("stat"), count("sha256sum")), (2, 2), "{shell}");
                } else {
                    assert_eq!((count("stat"), count("sha256sum")), (3, 3), "{shell}");
                }
            }
            assert_eq!(bodies[0], bodies[1], "{shell}");
            assert!(bodies[0][0].1.contains("sha256="), "{:?}", bodies[0]);
            assert!(bodies[0][3].1.contains("kind=dir"), "{:?}", bodies[0]);
            assert!(bodies[0][4].1.contains("kind=absent"), "{:?}", bodies[0]);
        }
    }

    /// Writes replace the file atomically with exactly the mode asked for, whatever
    /// the shell's umask, and leave no temporary file behind.
    #[test]
    fn writes_set_the_mode_asked_for() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (mode, name) in [
            ("0644", "a"),
            ("0640", "b"),
            ("0600", "c"),
            ("0755", "d"),
            ("0444", "e"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, "old").unwrap();
            let script = format!(
                "{PRELUDE}\numask 0002; printf new | k8sup_write {} {mode} '' '' ''",
                arg(path.display().to_string()).unwrap().quoted()
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
            let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(format!("{got:04o}"), mode, "{name}");
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 5, "no temporary file left: {names:?}");
    }

    /// Without bash's EPOCHREALTIME, task times come from one `date` and /proc/uptime.
    #[test]
    fn the_clock_follows_uptime_in_any_shell() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(&proc).unwrap();
        let uptime = proc.join("uptime");
        std::fs::write(&uptime, "1000.05 3999.00\n").unwrap();
        let script = format!(
            "unset EPOCHREALTIME\n{PRELUDE}\nk8sup_init x; k8sup_now; a=$k8sup_now; printf '1012.34 4000.00\\n' > \"$K8SUP_PROC/uptime\"; k8sup_now; echo \"$a $k8sup_now\""
        );
        for shell in ["/bin/sh", "/bin/bash"] {
            std::fs::write(&uptime, "1000.05 3999.00\n").unwrap();
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&script)
                .env("K8SUP_PROC", &proc)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let times: Vec<u64> = text
                .split_whitespace()
                .map(|t| t.parse().unwrap())
                .collect();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            assert!(times[0].abs_diff(now_ms) < 60_000, "{shell}: {text}");
            assert_eq!(
                times[1] - times[0],
                12_290,
                "{shell}: uptime moved 12.29 s: {text}"
            );
        }
    }
}
