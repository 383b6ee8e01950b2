//! `ss` (iproute2): listening TCP sockets are the host's `listening_ports` plus the ports of
//! running emulated services. Supports the listing options installers use (`-l -t -n -p -H`,
//! combined as `-ltnH` or `-tlnp`) and `sport = :PORT` filters.

use super::systemctl::{active_units, service_ports};
use super::Invocation;

struct Socket {
    local: String,
    port: u16,
    process: String,
}

fn sockets(inv: &Invocation) -> Vec<Socket> {
    let profile = inv.profile().ok();
    let mut out: Vec<Socket> = Vec::new();
    for port in profile.map(|p| p.listening_ports).unwrap_or_default() {
        let process = if port == 22 { "sshd" } else { "lab-listener" };
        out.push(Socket {
            local: "0.0.0.0".into(),
            port,
            process: process.into(),
        });
    }
    for unit in active_units(inv) {
        let process = unit.trim_end_matches(".service").to_string();
        for &port in service_ports(&unit) {
            if out.iter().any(|s| s.port == port) {
                continue;
            }
            let local = if port == 10248 {
                "127.0.0.1"
            } else {
                "0.0.0.0"
            };
            out.push(Socket {
                local: local.into(),
                port,
                process: process.clone(),
            });
        }
    }
    out.sort_by_key(|s| s.port);
    out
}

/// Ports named by `sport = :N` / `sport == :N` / `( sport = :N or sport = :M )` filters.
fn port_filter(words: &[String]) -> Result<Option<Vec<u16>>, String> {
    if words.is_empty() {
        return Ok(None);
    }
    let joined = words.join(" ").replace(['(', ')'], " ");
    let tokens: Vec<&str> = joined.split_whitespace().collect();
    let mut ports = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i] {
            "or" | "||" => i += 1,
            "sport" | "src" if i + 2 < tokens.len() + 1 => {
                let (op, value) = match (tokens.get(i + 1), tokens.get(i + 2)) {
                    (Some(op), Some(v)) if ["=", "==", "eq"].contains(op) => (op, *v),
                    _ => return Err(format!("ss: bad filter near \"{}\"", tokens[i])),
                };
                let _ = op;
                let port = value
                    .trim_start_matches(':')
                    .parse::<u16>()
                    .map_err(|_| format!("ss: bad port \"{value}\""))?;
                ports.push(port);
                i += 3;
            }
            other => return Err(format!("ss: unsupported filter \"{other}\"")),
        }
    }
    Ok(Some(ports))
}

pub fn run(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let (mut listening, mut tcp, mut udp, mut numeric, mut processes, mut headers) =
        (false, false, false, false, false, true);
    let mut filter_words = Vec::new();
    for a in &args {
        match a.as_str() {
            "--listening" => listening = true,
            "--tcp" => tcp = true,
            "--udp" => udp = true,
            "--numeric" => numeric = true,
            "--processes" => processes = true,
            "--no-header" => headers = false,
            "--ipv4" | "--ipv6" => {}
            s if s.starts_with('-') && !s.starts_with("--") => {
                for c in s[1..].chars() {
                    match c {
                        'l' => listening = true,
                        't' => tcp = true,
                        'u' => udp = true,
                        'n' => numeric = true,
                        'p' => processes = true,
                        'H' => headers = false,
                        '4' | '6' | 'a' | 'e' | 'o' => {}
                        other => {
                            inv.errln(&format!("ss: invalid option -- '{other}'"));
                            return 1;
                        }
                    }
                }
            }
            s if s.starts_with("--") => {
                inv.errln(&format!("ss: unrecognized option '{s}'"));
                return 1;
            }
            s => filter_words.push(s.to_string()),
        }
    }
    let _ = numeric;
    let filter = match port_filter(&filter_words) {
        Ok(f) => f,
        Err(e) => {
            inv.errln(&e);
            return 1;
        }
    };
    if headers {
        inv.outln("State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess");
    }
    // Only listening TCP sockets exist in a lab host.
    if !listening || (udp && !tcp) {
        return 0;
    }
    for (i, s) in sockets(inv).iter().enumerate() {
        if filter
            .as_ref()
            .is_some_and(|ports| !ports.contains(&s.port))
        {
            continue;
        }
        let local = format!("{}:{}", s.local, s.port);
        let process = if processes {
            format!("users:((\"{}\",pid={},fd=3))", s.process, 1000 + i)
        } else {
            String::new()
        };
        inv.outln(&format!(
            "LISTEN 0      4096   {local:>18} {:>17}{process}",
            "0.0.0.0:*        "
        ));
    }
    0
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn lists_profile_ports_and_started_services() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let out = h.run("ss", &["-ltnH"]).1;
        assert_eq!(out.lines().count(), 1);
        assert!(out.contains("0.0.0.0:22 "), "{out}");
        h.write(
            "/usr/lib/systemd/system/kubelet.service",
            "[Service]\nExecStart=/usr/bin/kubelet\n",
        );
        assert_eq!(h.run("systemctl", &["start", "kubelet"]).0, 0);
        let out = h.run("ss", &["-tlnp"]).1;
        assert!(out.starts_with("State"), "{out}");
        assert!(out.contains("0.0.0.0:10250"), "{out}");
        assert!(out.contains("users:((\"kubelet\""), "{out}");
        let only = h.run("ss", &["-ltnH", "sport", "=", ":10250"]).1;
        assert_eq!(only.lines().count(), 1, "{only}");
        assert_eq!(h.run("ss", &["-ltnH", "( sport = :6443 )"]).1, "");
    }
}
