//! `sysctl` (procps): kernel parameters are files under the host's `/proc/sys`, one per key
//! with the dots as directories; a key that does not exist there (for example
//! `net.bridge.bridge-nf-call-iptables` before `modprobe br_netfilter`) fails as on a real
//! kernel. `--system` and `-p` read the same files, in the same order, as procps.

use super::Invocation;

fn key_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

#[derive(Clone, Copy)]
struct Opts {
    values_only: bool,
    quiet: bool,
    ignore: bool,
}

pub fn run(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let mut opts = Opts {
        values_only: false,
        quiet: false,
        ignore: false,
    };
    let mut write_mode = false;
    let mut system = false;
    let mut load: Option<Option<String>> = None;
    let mut all = false;
    let mut operands = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" | "--values" => opts.values_only = true,
            "-q" | "--quiet" => opts.quiet = true,
            "-e" | "--ignore" => opts.ignore = true,
            "-w" | "--write" => write_mode = true,
            "-a" | "-A" | "-X" | "--all" => all = true,
            "--system" => system = true,
            "-p" | "--load" => {
                let file = it.next_if(|n| !n.starts_with('-')).cloned();
                load = Some(file);
            }
            s if s.starts_with("--load=") => load = Some(Some(s["--load=".len()..].to_string())),
            s if s.starts_with("-p") && s.len() > 2 => load = Some(Some(s[2..].to_string())),
            s if s.starts_with('-') && s.len() > 2 && !s.starts_with("--") => {
                for c in s[1..].chars() {
                    match c {
                        'n' => opts.values_only = true,
                        'q' => opts.quiet = true,
                        'e' => opts.ignore = true,
                        'w' => write_mode = true,
                        'a' | 'A' | 'X' => all = true,
                        _ => {
                            inv.errln(&format!("sysctl: invalid option -- '{c}'"));
                            return 255;
                        }
                    }
                }
            }
            s if s.starts_with('-') => {
                inv.errln(&format!("sysctl: unrecognized option '{s}'"));
                return 255;
            }
            s => operands.push(s.to_string()),
        }
    }
    if system {
        return apply_system(inv, &opts);
    }
    if let Some(file) = load {
        let file = file.unwrap_or_else(|| "/etc/sysctl.conf".into());
        return apply_file(inv, &file, &opts, true);
    }
    if all {
        let mut keys = Vec::new();
        collect_keys(&inv.path("/proc/sys"), "", &mut keys);
        keys.sort();
        for k in keys {
            read_key(inv, &k, &opts);
        }
        return 0;
    }
    if operands.is_empty() {
        inv.errln("sysctl: no variables specified\nTry `sysctl --help' for more information.");
        return 255;
    }
    let mut status = 0;
    for op in operands {
        let rc = match op.split_once('=') {
            Some((k, v)) => write_key(inv, k.trim(), v.trim(), &opts),
            None if write_mode => {
                inv.errln(&format!("sysctl: \"{op}\" must be of the form name=value"));
                255
            }
            None => read_key(inv, &op, &opts),
        };
        if rc != 0 {
            status = rc;
        }
    }
    status
}

fn collect_keys(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if e.path().is_dir() {
            collect_keys(&e.path(), &key, out);
        } else {
            out.push(key);
        }
    }
}

fn read_key(inv: &mut Invocation, key: &str, opts: &Opts) -> i32 {
    let key = key.replace('/', ".");
    match inv.read(&key_path(&key)) {
        Ok(v) => {
            let v = v.trim_end_matches('\n');
            if opts.values_only {
                inv.outln(v);
            } else {
                inv.outln(&format!("{key} = {v}"));
            }
            0
        }
        Err(_) if opts.ignore => 0,
        Err(_) => {
            inv.errln(&format!(
                "sysctl: cannot stat {}: No such file or directory",
                key_path(&key)
            ));
            255
        }
    }
}

fn write_key(inv: &mut Invocation, key: &str, value: &str, opts: &Opts) -> i32 {
    let key = key.replace('/', ".");
    let path = key_path(&key);
    if !inv.path(&path).is_file() {
        if opts.ignore {
            return 0;
        }
        inv.errln(&format!(
            "sysctl: cannot stat {path}: No such file or directory"
        ));
        return 255;
    }
    if inv.uid != 0 {
        inv.errln(&format!("sysctl: permission denied on key \"{key}\""));
        return 255;
    }
    if let Err(e) = inv.write(&path, &format!("{value}\n")) {
        inv.errln(&format!("sysctl: setting key \"{key}\": {e}"));
        return 255;
    }
    if !opts.quiet {
        if opts.values_only {
            inv.outln(value);
        } else {
            inv.outln(&format!("{key} = {value}"));
        }
    }
    0
}

/// Applies one file of `key = value` lines; a key prefixed with `-` may be missing.
fn apply_file(inv: &mut Invocation, file: &str, opts: &Opts, must_exist: bool) -> i32 {
    let text = match inv.read(file) {
        Ok(t) => t,
        Err(_) if !must_exist => return 0,
        Err(_) => {
            inv.errln(&format!(
                "sysctl: cannot open \"{file}\": No such file or directory"
            ));
            return 255;
        }
    };
    let mut status = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            inv.errln(&format!("sysctl: {file}: line without '=': {line}"));
            continue;
        };
        let (k, optional) = match k.trim().strip_prefix('-') {
            Some(k) => (k.to_string(), true),
            None => (k.trim().to_string(), false),
        };
        let sub = Opts {
            ignore: opts.ignore || optional,
            ..*opts
        };
        if write_key(inv, &k, v.trim(), &sub) != 0 {
            status = 255;
        }
    }
    status
}

/// `sysctl --system`: every `*.conf` in the sysctl.d directories, by file name, a file in an
/// earlier directory hiding one of the same name in a later one; then /etc/sysctl.conf.
fn apply_system(inv: &mut Invocation, opts: &Opts) -> i32 {
    const DIRS: [&str; 5] = [
        "/etc/sysctl.d",
        "/run/sysctl.d",
        "/usr/local/lib/sysctl.d",
        "/usr/lib/sysctl.d",
        "/lib/sysctl.d",
    ];
    let mut files: std::collections::BTreeMap<String, String> = Default::default();
    for dir in DIRS {
        let Ok(entries) = std::fs::read_dir(inv.path(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                files.entry(name.clone()).or_insert(format!("{dir}/{name}"));
            }
        }
    }
    let mut status = 0;
    let mut list: Vec<String> = files.into_values().collect();
    list.push("/etc/sysctl.conf".into());
    for file in list {
        if !inv.path(&file).is_file() {
            continue;
        }
        if !opts.quiet {
            inv.outln(&format!("* Applying {file} ..."));
        }
        if apply_file(inv, &file, opts, false) != 0 {
            status = 255;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn reads_and_writes_keys() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        h.write("/proc/sys/net/ipv4/ip_forward", "0\n");
        assert_eq!(
            h.run("sysctl", &["net.ipv4.ip_forward"]).1,
            "net.ipv4.ip_forward = 0\n"
        );
        assert_eq!(
            h.run("sysctl", &["-w", "net.ipv4.ip_forward=1"]).1,
            "net.ipv4.ip_forward = 1\n"
        );
        assert_eq!(h.run("sysctl", &["-n", "net.ipv4.ip_forward"]).1, "1\n");
        assert_eq!(h.read("/proc/sys/net/ipv4/ip_forward"), "1\n");
    }

    #[test]
    fn missing_keys_fail_like_procps() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let (status, _, err) = h.run("sysctl", &["-w", "net.bridge.bridge-nf-call-iptables=1"]);
        assert_eq!(status, 255);
        assert_eq!(
            err,
            "sysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory\n"
        );
        assert_eq!(h.run_as(1000, "sysctl", &["-w", "kernel.x=1"]).0, 255);
    }

    #[test]
    fn system_applies_sysctl_d_in_order() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        h.write("/proc/sys/net/ipv4/ip_forward", "0\n");
        h.write("/proc/sys/vm/swappiness", "60\n");
        h.write(
            "/etc/sysctl.d/99-k8s.conf",
            "net.ipv4.ip_forward = 1\n-net.bridge.x = 1\n",
        );
        h.write("/usr/lib/sysctl.d/10-a.conf", "vm.swappiness=10\n");
        h.write("/usr/lib/sysctl.d/99-k8s.conf", "net.ipv4.ip_forward = 0\n");
        let (status, out, err) = h.run("sysctl", &["--system"]);
        assert_eq!(status, 0, "{err}");
        assert_eq!(
            out,
            "* Applying /usr/lib/sysctl.d/10-a.conf ...\nvm.swappiness = 10\n* Applying /etc/sysctl.d/99-k8s.conf ...\nnet.ipv4.ip_forward = 1\n"
        );
    }
}
