# k8sup's prelude: the shell functions every script k8sup sends to a host starts
# with (POSIX sh; crates/engine/src/script.rs adds the calls after it). Each task
# kind's own functions follow it, from kinds/<kind>.sh (see build.rs).
#
# POSIX sh has no local variables, so each function names its temporaries after
# itself (k8sup_wr_* in k8sup_write, ...) and shares no helper variable with
# another. What functions do share is named here, and nothing else:
# - script state, set by k8sup_init: K8SUP_NONCE, k8sup_go and k8sup_from (the
#   batch's guards), k8sup_entries/k8sup_head/k8sup_tail (the ledger), the
#   prefetch tables (k8sup_pfn, k8sup_pfp_N, k8sup_pfs_N, k8sup_pfh_N),
#   k8sup_reloaded (systemd reloaded since the last change), k8sup_clock_ms and
#   k8sup_clock_cs, K8SUP_LEN (stdin bytes of the next write), the staged writes
#   (k8sup_sg_n, k8sup_sg_synced and the k8sup_sg?_N of each, see k8sup_stage),
#   the temp files' last number and the shell's umask (k8sup_tf_seq, k8sup_um0),
#   whether the ledger is left in its journal at the end (k8sup_cp_lazy);
# - results: k8sup_v (k8sup_read_text, k8sup_sysctl_value, k8sup_probe_hostname;
#   printed by k8sup_put), k8sup_p (k8sup_sysctl_path), k8sup_up (k8sup_uptime),
#   k8sup_now (k8sup_now), k8sup_index_n (k8sup_index);
# - inputs: k8sup_text and k8sup_has_text (the content of the next k8sup_write,
#   set by k8sup_input or by a kind's apply).
# The calls script.rs writes after the prelude keep their own: k8sup_apply_rc,
# k8sup_apply_t0, k8sup_apply_t1 and k8sup_o.
k8sup_nl='
'
# Where the kernel's files are (tests point them elsewhere).
k8sup_proc=${K8SUP_PROC:-/proc}
k8sup_sys=${K8SUP_SYS:-/sys}
k8sup_init() { K8SUP_NONCE=$1; k8sup_tf_seq=0; k8sup_um0=; k8sup_go=1; k8sup_entries=; K8SUP_LEN=; k8sup_pfn=0; k8sup_reloaded=; k8sup_text=; k8sup_has_text=; k8sup_clock_ms=; k8sup_sg_n=0; k8sup_sg_synced=; k8sup_cp_lazy=; }
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
k8sup_ms() { k8sup_ms_v=$(date +%s%3N 2>/dev/null); case $k8sup_ms_v in ''|*[!0-9]*) k8sup_ms_v=$(( $(date +%s) * 1000 ));; esac; echo "$k8sup_ms_v"; }
# The clock of a batch: $1 is the controller's time (ms since the epoch) as it sent
# the script, and /proc/uptime's now its start; k8sup_now counts from them. Without
# /proc/uptime (or $1), k8sup_now keeps the host's own clock.
k8sup_clock() {
  case $1 in ''|*[!0-9]*) return 0;; esac
  k8sup_uptime || return 0
  k8sup_clock_ms=$1; k8sup_clock_cs=$k8sup_up
}
# The time in ms since the epoch in k8sup_now: the clock's start (k8sup_clock, or
# a first `date`) plus the hundredths of a second /proc/uptime moved since (no
# process); without a start, bash's EPOCHREALTIME when the shell has it, else one
# `date` and /proc/uptime; without /proc/uptime, `date`.
k8sup_now() {
  if [ -n "$k8sup_clock_ms" ] && k8sup_uptime; then
    k8sup_now=$(( k8sup_clock_ms + (k8sup_up - k8sup_clock_cs) * 10 ))
    return 0
  fi
  # bash's clock (no process); unset in other shells, which take the next way.
  # shellcheck disable=SC3028
  k8sup_now_e=${EPOCHREALTIME:-}
  case $k8sup_now_e in
    [0-9]*[.,][0-9][0-9][0-9]*)
      k8sup_now=${k8sup_now_e%[.,]*}${k8sup_now_e#*[.,]}
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
  read -r k8sup_up _ < "$k8sup_proc/uptime" 2>/dev/null || return 1
  case $k8sup_up in [0-9]*.[0-9][0-9]) k8sup_up=${k8sup_up%.*}${k8sup_up#*.};; *) return 1;; esac
  case $k8sup_up in *[!0-9]*) return 1;; esac
  # No leading zero: $(( )) would read octal.
  k8sup_up=${k8sup_up#"${k8sup_up%%[!0]*}"}; k8sup_up=${k8sup_up:-0}
}
k8sup_read_state() {
  if [ -e "$1" ]; then printf 'state='; k8sup_b64 < "$1" || return; echo; else echo state=absent; fi
  if [ -s "$1.journal" ]; then printf 'journal='; k8sup_b64 < "$1.journal" || return; echo; fi
}
# One stat for all the files that the probes after it read, and one sha256sum for
# those of them they hash, kept by position (names with a newline or backslash are
# left to the probes): k8sup_prefetch READ... -- HASHED..., where the READ files'
# probes want their whole content (k8sup hashes it). Only for read-only scripts:
# nothing may change the files between this and their probes.
k8sup_prefetch() {
  k8sup_pf_r=1; k8sup_pf_nr=0
  for k8sup_pf_f; do
    shift
    if [ "$k8sup_pf_f" = -- ] && [ -n "$k8sup_pf_r" ]; then k8sup_pf_r=; continue; fi
    case $k8sup_pf_f in *"$k8sup_nl"*|*\\*) continue;; esac
    if [ -f "$k8sup_pf_f" ] && [ -r "$k8sup_pf_f" ]; then
      set -- "$@" "$k8sup_pf_f"
      [ -z "$k8sup_pf_r" ] || k8sup_pf_nr=$((k8sup_pf_nr + 1))
    fi
  done
  [ $# -gt 0 ] || return 0
  k8sup_pst=$(stat -L -c '%s %a %U %G' -- "$@") || return 0
  k8sup_pf_i=0
  for k8sup_pf_f; do k8sup_pf_i=$((k8sup_pf_i + 1)); eval "k8sup_pfp_$k8sup_pf_i=\$k8sup_pf_f; k8sup_pfh_$k8sup_pf_i="; done
  k8sup_index k8sup_pfs_ "$k8sup_pst" '' 0
  [ "$k8sup_index_n" = $# ] || return 0
  if [ "$k8sup_pf_nr" -lt $# ]; then
    k8sup_psum=$(shift "$k8sup_pf_nr"; sha256sum -- "$@") || return 0
    k8sup_index k8sup_pfh_ "$k8sup_psum" first-word "$k8sup_pf_nr"
    [ "$k8sup_index_n" = $(($# - k8sup_pf_nr)) ] || return 0
  fi
  k8sup_pfn=$#
}
# The lines of $2 as variables $1 N, for N from $4 + 1 (with $3, each line's first
# word only); their count in k8sup_index_n.
k8sup_index() {
  k8sup_index_n=0; k8sup_ix_r=$2$k8sup_nl
  while [ -n "$k8sup_ix_r" ]; do
    k8sup_index_n=$((k8sup_index_n + 1)); k8sup_ix_l=${k8sup_ix_r%%"$k8sup_nl"*}; k8sup_ix_r=${k8sup_ix_r#*"$k8sup_nl"}
    [ -z "$3" ] || k8sup_ix_l=${k8sup_ix_l%% *}
    eval "$1$((k8sup_index_n + ${4:-0}))=\$k8sup_ix_l"
  done
}
# A file's kind, stat and sha256, and its content unless the hash is $2's. $3:
# "nocontent", never the content; "content", always the content and no sha256
# (k8sup hashes what it reads), but for a file too large to send.
k8sup_probe_file() {
  if [ -d "$1" ]; then echo kind=dir; return 0; fi
  if [ ! -e "$1" ]; then echo kind=absent; return 0; fi
  echo kind=file
  k8sup_file_s=; k8sup_file_x=; k8sup_file_j=1
  while [ "$k8sup_file_j" -le "$k8sup_pfn" ]; do
    eval "k8sup_file_x=\$k8sup_pfp_$k8sup_file_j"
    if [ "$k8sup_file_x" = "$1" ]; then eval "k8sup_file_x=\$k8sup_pfs_$k8sup_file_j; k8sup_file_s=\$k8sup_pfh_$k8sup_file_j"; break; fi
    k8sup_file_x=; k8sup_file_j=$((k8sup_file_j + 1))
  done
  # The stat is "size mode owner group": the size decides below whether the content
  # is sent, without a `wc`.
  [ -n "$k8sup_file_x" ] || k8sup_file_x=$(stat -L -c '%s %a %U %G' -- "$1")
  echo "stat=${k8sup_file_x#* }"
  k8sup_file_n=${k8sup_file_x%% *}
  case $k8sup_file_n in ''|*[!0-9]*) k8sup_file_n=$(wc -c < "$1");; esac
  if [ "$3" = content ] && [ "$k8sup_file_n" -le 1048576 ]; then
    printf 'content='; k8sup_b64 < "$1"; echo; return 0
  fi
  if [ -z "$k8sup_file_s" ]; then
    k8sup_file_s=$(sha256sum < "$1") || return 1
    k8sup_file_s=${k8sup_file_s%% *}
  fi
  echo "sha256=$k8sup_file_s"
  [ "$k8sup_file_s" = "$2" ] && return 0
  [ "$3" = nocontent ] && return 0
  if [ "$k8sup_file_n" -gt 1048576 ]; then echo "content_too_large=$k8sup_file_n"; return 0; fi
  printf 'content='; k8sup_b64 < "$1"; echo
}
# A kernel file's text as `sysctl -n` or `cat` would print it (trailing newlines
# dropped) in k8sup_v, read by the shell itself: no process.
k8sup_read_text() {
  k8sup_v=; k8sup_rt_first=1
  while IFS= read -r k8sup_rt_l || [ -n "$k8sup_rt_l" ]; do
    if [ -n "$k8sup_rt_first" ]; then k8sup_v=$k8sup_rt_l; k8sup_rt_first=; else k8sup_v="$k8sup_v$k8sup_nl$k8sup_rt_l"; fi
  done < "$1" || return
  while :; do case $k8sup_v in *"$k8sup_nl") k8sup_v=${k8sup_v%"$k8sup_nl"};; *) return 0;; esac; done
}
k8sup_write() {
  k8sup_reloaded=
  if [ -n "$5" ]; then
    if [ -e "$1" ]; then k8sup_wr_c=$(sha256sum < "$1") || return; k8sup_wr_c=${k8sup_wr_c%% *}; else k8sup_wr_c=absent; fi
    if [ "$k8sup_wr_c" != "$5" ]; then echo "k8sup: $1 changed since it was probed" >&2; return 3; fi
  fi
  # A temp file staged for this very write (k8sup_stage) is made durable with all the
  # others (one sync) and renamed.
  # Its directory first, made here when no task did (a staged temp file may wait
  # above it; one not renamed goes with the batch's end).
  k8sup_wr_d=${1%/*}; [ -n "$k8sup_wr_d" ] || k8sup_wr_d=/
  [ -d "$k8sup_wr_d" ] || mkdir -p -- "$k8sup_wr_d" || return
  k8sup_staged "$1" "$2" "$3" "$4"; k8sup_wr_r=$?
  case $k8sup_wr_r in
    0) k8sup_has_text=; mv -f -- "$k8sup_sd_t" "$1" && return 0
       k8sup_wr_r=$?; rm -f -- "$k8sup_sd_t"; return $k8sup_wr_r;;
    1) ;;
    *) rm -f -- "$k8sup_sd_t"; return $k8sup_wr_r;;
  esac
  k8sup_tempfile "$1" "$2" "$3" "$4" || return
  { sync "$k8sup_tf_t" 2>/dev/null || sync; } && mv -f -- "$k8sup_tf_t" "$1" && return 0
  k8sup_wr_r=$?; rm -f -- "$k8sup_tf_t"; return $k8sup_wr_r
}
# A new temp file beside $1 (whose directory exists), or in directory $5, with the
# content k8sup_write writes, mode $2, owner $3 and group $4; its name in
# k8sup_tf_t. Nothing is left behind when it fails.
k8sup_tempfile() {
  k8sup_tf_d=${5:-${1%/*}}; [ -n "$k8sup_tf_d" ] || k8sup_tf_d=/
  # Created exclusively (noclobber is O_EXCL) and, for the usual modes, with its mode
  # from the umask: no mktemp, no chmod.
  case $2 in
    0644|644) k8sup_tf_um=022; k8sup_tf_cm=;; 0640|640) k8sup_tf_um=027; k8sup_tf_cm=;;
    0600|600) k8sup_tf_um=077; k8sup_tf_cm=;; *) k8sup_tf_um=077; k8sup_tf_cm=1;;
  esac
  # Made in this shell, not a subshell (a fork a file): the umask and noclobber set
  # for it and put back. The shell's umask is read once per script (one fork), and
  # the names go on from the last one made, so that no try meets an earlier file.
  [ -n "$k8sup_um0" ] || k8sup_um0=$(umask)
  case $- in *C*) k8sup_tf_nc=1;; *) k8sup_tf_nc=;; esac
  k8sup_tf_w=${k8sup_tf_seq:-0}; k8sup_tf_w0=$k8sup_tf_w
  while :; do
    k8sup_tf_w=$((k8sup_tf_w + 1)); k8sup_tf_t="$k8sup_tf_d/.k8sup.$$.$k8sup_tf_w"
    # `true`, not `:`: a redirection that fails ends a shell at a special builtin.
    umask "$k8sup_tf_um"; set -C
    { true > "$k8sup_tf_t"; } 2>/dev/null; k8sup_tf_r=$?
    [ -n "$k8sup_tf_nc" ] || set +C; umask "$k8sup_um0"
    [ "$k8sup_tf_r" = 0 ] && break
    if [ ! -e "$k8sup_tf_t" ] && [ ! -L "$k8sup_tf_t" ] || [ $((k8sup_tf_w - k8sup_tf_w0)) -ge 100 ]; then
      echo "k8sup: cannot create a file in $k8sup_tf_d" >&2; return 1
    fi
  done
  k8sup_tf_seq=$k8sup_tf_w
  # The content: k8sup_text when set; in a batch the next K8SUP_LEN bytes of stdin.
  if [ -n "$k8sup_has_text" ]; then k8sup_has_text=; printf '%s' "$k8sup_text" >| "$k8sup_tf_t"
  elif [ -n "$K8SUP_LEN" ]; then head -c "$K8SUP_LEN" >| "$k8sup_tf_t"; else cat >| "$k8sup_tf_t"; fi && { [ -z "$k8sup_tf_cm" ] || chmod "$2" "$k8sup_tf_t"; } && { [ -z "$3" ] || chown "$3" "$k8sup_tf_t"; } && { [ -z "$4" ] || chgrp "$4" "$k8sup_tf_t"; } && return 0
  k8sup_tf_r=$?; rm -f -- "$k8sup_tf_t"; return $k8sup_tf_r
}
# A batch's writes of text, staged at its start: k8sup_stage PATH MODE OWNER GROUP
# TEXT makes the temp file k8sup_write PATH MODE OWNER GROUP would make with TEXT,
# and the first write that finds its temp file staged makes all of them durable with
# ONE sync, where each write would take a sync of its own. Each rename stays in its
# task, in order. A directory an earlier task makes is not made early: the temp file
# goes to the nearest directory above it that exists (a rename within one file
# system), but where SELinux labels files by the directory they are made in. Left to
# the write when the temp file cannot be made (an owner an earlier task adds...): a
# staging failure is no error. Staged write N
# is k8sup_sgp_N (path), k8sup_sgm_N, k8sup_sgo_N, k8sup_sgg_N, k8sup_sgc_N (text)
# and k8sup_sgt_N (its temp file, emptied once renamed or removed); k8sup_compact
# removes the temp files of the writes that did not run.
k8sup_stage() {
  k8sup_sg_d=${1%/*}; [ -n "$k8sup_sg_d" ] || k8sup_sg_d=/
  while [ ! -d "$k8sup_sg_d" ]; do
    [ ! -e "$k8sup_sys/fs/selinux/enforce" ] || return 0
    # Something else than a directory (a file, a dangling link): the write says so.
    if [ -e "$k8sup_sg_d" ] || [ -L "$k8sup_sg_d" ]; then return 0; fi
    k8sup_sg_d=${k8sup_sg_d%/*}; [ -n "$k8sup_sg_d" ] || k8sup_sg_d=/
  done
  k8sup_text=$5; k8sup_has_text=1
  k8sup_tempfile "$1" "$2" "$3" "$4" "$k8sup_sg_d" 2>/dev/null; k8sup_sg_r=$?
  k8sup_text=; k8sup_has_text=
  [ "$k8sup_sg_r" = 0 ] || return 0
  k8sup_sg_n=$((k8sup_sg_n + 1))
  eval "k8sup_sgp_$k8sup_sg_n=\$1; k8sup_sgm_$k8sup_sg_n=\$2; k8sup_sgo_$k8sup_sg_n=\$3; k8sup_sgg_$k8sup_sg_n=\$4; k8sup_sgc_$k8sup_sg_n=\$5; k8sup_sgt_$k8sup_sg_n=\$k8sup_tf_t"
}
# Whether the write of k8sup_text to $1 with mode $2, owner $3, group $4 was staged:
# 0 with its temp file, durable, in k8sup_sd_t (no longer staged); 1 when it was not
# (or its temp file is gone); else the sync's failure, k8sup_sd_t to remove.
k8sup_staged() {
  [ -n "$k8sup_has_text" ] || return 1
  k8sup_sd_i=0
  while [ "$k8sup_sd_i" -lt "$k8sup_sg_n" ]; do
    k8sup_sd_i=$((k8sup_sd_i + 1))
    eval "k8sup_sd_t=\$k8sup_sgt_$k8sup_sd_i"
    [ -n "$k8sup_sd_t" ] || continue
    eval "[ \"\$k8sup_sgp_$k8sup_sd_i\" = \"\$1\" ] && [ \"\$k8sup_sgm_$k8sup_sd_i\" = \"\$2\" ] && [ \"\$k8sup_sgo_$k8sup_sd_i\" = \"\$3\" ] && [ \"\$k8sup_sgg_$k8sup_sd_i\" = \"\$4\" ] && [ \"\$k8sup_sgc_$k8sup_sd_i\" = \"\$k8sup_text\" ]" || continue
    # Gone (an earlier task replaced its directory): the write makes its own.
    if [ ! -f "$k8sup_sd_t" ] || [ -L "$k8sup_sd_t" ]; then eval "k8sup_sgt_$k8sup_sd_i="; return 1; fi
    if [ -z "$k8sup_sg_synced" ]; then
      k8sup_sync_staged || { k8sup_sd_r=$?; eval "k8sup_sgt_$k8sup_sd_i="; return "$k8sup_sd_r"; }
    fi
    eval "k8sup_sgt_$k8sup_sd_i="
    return 0
  done
  return 1
}
# One sync for every staged temp file (sync with files fsyncs each; else all of them).
k8sup_sync_staged() {
  set --; k8sup_ss_i=0
  while [ "$k8sup_ss_i" -lt "$k8sup_sg_n" ]; do
    k8sup_ss_i=$((k8sup_ss_i + 1)); eval "k8sup_ss_t=\$k8sup_sgt_$k8sup_ss_i"
    [ -z "$k8sup_ss_t" ] || set -- "$@" "$k8sup_ss_t"
  done
  { sync -- "$@" 2>/dev/null || sync; } || { k8sup_ss_r=$?; [ "$k8sup_ss_r" -gt 1 ] || k8sup_ss_r=2; return "$k8sup_ss_r"; }
  k8sup_sg_synced=1
}
# Removes the temp files staged for writes that did not run.
k8sup_unstage() {
  set --; k8sup_us_i=0
  while [ "$k8sup_us_i" -lt "$k8sup_sg_n" ]; do
    k8sup_us_i=$((k8sup_us_i + 1)); eval "k8sup_us_t=\$k8sup_sgt_$k8sup_us_i; k8sup_sgt_$k8sup_us_i="
    [ -z "$k8sup_us_t" ] || set -- "$@" "$k8sup_us_t"
  done
  [ $# -eq 0 ] || rm -f -- "$@"
}
# systemd reloads its units once per script, and again only after something else
# was written, installed or run (which empties k8sup_reloaded).
k8sup_reload_units() {
  [ -z "$k8sup_reloaded" ] || return 0
  systemctl daemon-reload && k8sup_reloaded=1
}
k8sup_state() {
  # $1 path, $2 head, $3 tail, $4 entry prefix, $5 1 if head has entries, $6 journal
  # line prefix, $7 apply status, $8 $9 start and end. The times land in JSON: digits.
  for k8sup_st_n in "$8" "$9"; do
    case $k8sup_st_n in ''|*[!0-9]*) echo "k8sup: bad task times '$8' '$9'" >&2; return 1;; esac
  done
  k8sup_st_d=${1%/*}; [ -n "$k8sup_st_d" ] || k8sup_st_d=/
  [ -d "$k8sup_st_d" ] || mkdir -p -- "$k8sup_st_d" || return
  if [ "$7" = 0 ]; then k8sup_st_res=changed; else k8sup_st_res=failed; fi
  echo "start=$8"; echo "end=$9"
  k8sup_st_v="$k8sup_st_res\",\"started_ms\":$8,\"finished_ms\":$9,\"duration_ms\":$(( $9 - $8 ))}"
  # The entries this script recorded, for the ledger rewritten at its end...
  if [ -n "$k8sup_entries" ] || [ "$5" = 1 ]; then k8sup_entries="$k8sup_entries,"; fi
  k8sup_entries="$k8sup_entries$4$k8sup_st_v"
  k8sup_head=$2; k8sup_tail=$3
  # ...and this one in the journal now: one line appended, no process.
  printf '%s\n' "$6$k8sup_st_v}" >> "$1.journal"
}
# Rewrites the ledger with the entries of this script (atomically, made durable),
# then empties the journal that held them meanwhile. Every end of a batch passes
# here: the temp files staged for writes that did not run go first. With
# k8sup_cp_lazy set (the journal is still small), the entries stay in the journal,
# made durable by one fsync, and the ledger file is left as it is: what k8sup reads
# is the file with its journal replayed on it, the same either way.
k8sup_compact() {
  k8sup_unstage
  [ -n "$k8sup_entries" ] || return 0
  if [ -n "$k8sup_cp_lazy" ] && [ -f "$1.journal" ]; then
    sync -- "$1.journal" 2>/dev/null || sync
    return
  fi
  # A name of this script's own: two writers never share a temp file.
  k8sup_cp_t=$1.k8sup-tmp.$$
  printf '%s%s%s' "$k8sup_head" "$k8sup_entries" "$k8sup_tail" >| "$k8sup_cp_t" && { sync "$k8sup_cp_t" 2>/dev/null || sync; } && mv -f -- "$k8sup_cp_t" "$1" && : >| "$1.journal" && return 0
  k8sup_cp_r=$?; rm -f -- "$k8sup_cp_t"; return $k8sup_cp_r
}
k8sup_batch() { k8sup_go=1; k8sup_from=$1; }
# Whether every guard of the batch held so far.
k8sup_going() { [ "$k8sup_go" = 1 ]; }
# Holds when $1 is still absent, as k8sup_probe_file would say (a guard's check).
k8sup_absent() { [ ! -d "$1" ] && [ ! -e "$1" ]; }
# A guard's check ended with status $1; on a failure the batch stops, its re-probe
# starting at step $2.
k8sup_held() {
  [ "$1" = 0 ] && return 0
  k8sup_go=0; k8sup_from=$2
  return 1
}
k8sup_guard() {
  # $1: the output judged, as text (t:...) or as its digest (d:...); $2 and $3 the
  # probe's output and status now; $4 its step, where the re-probe starts when the
  # guard fails (and the batch stops).
  case $1 in
    t:*) [ "t:$2|$3" = "$1" ];;
    *) k8sup_g_s=$(printf '%s|%s' "$2" "$3" | sha256sum) || k8sup_g_s=; [ "d:${k8sup_g_s%% *}" = "$1" ];;
  esac && return 0
  k8sup_go=0; k8sup_from=$4
  return 1
}
k8sup_len() { K8SUP_LEN=$1; }
# The content of the next k8sup_write, given in the script: the shell's own printf
# writes it, where the next bytes of stdin need a `head`.
k8sup_input() { k8sup_text=$1; k8sup_has_text=1; }
k8sup_reach() { [ "$k8sup_from" -le "$1" ]; }
