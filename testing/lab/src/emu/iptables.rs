//! `iptables` / `ip6tables` / `iptables-save`: the rule tables, kept per host
//! under `/run/lab-iptables/` (one file per family and table), so that what an
//! installer adds, checks, flushes and deletes (kube-proxy's leftovers at
//! `reset`) behaves as on a real host. No packet ever goes through them.

use super::Invocation;

const BUILTIN: &[(&str, &[&str])] = &[
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
    ("raw", &["PREROUTING", "OUTPUT"]),
];
const VERSION: &str = "iptables v1.8.7 (nf_tables)";

/// One table: user chains and rules, in order.
struct Table {
    chains: Vec<String>,
    rules: Vec<(String, String)>,
}

fn path(family: &str, table: &str) -> String {
    format!("/run/lab-iptables/{family}-{table}")
}

fn load(inv: &Invocation, family: &str, table: &str) -> Table {
    let text = inv.read(&path(family, table)).unwrap_or_default();
    let mut t = Table {
        chains: Vec::new(),
        rules: Vec::new(),
    };
    for line in text.lines() {
        if let Some(chain) = line.strip_prefix("-N ") {
            t.chains.push(chain.to_string());
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let (chain, rule) = rest.split_once(' ').unwrap_or((rest, ""));
            t.rules.push((chain.to_string(), rule.to_string()));
        }
    }
    t
}

fn save(inv: &Invocation, family: &str, table: &str, t: &Table) -> Result<(), String> {
    let mut text = String::new();
    for c in &t.chains {
        text.push_str(&format!("-N {c}\n"));
    }
    for (c, r) in &t.rules {
        text.push_str(&format!("-A {c} {r}\n"));
    }
    inv.write(&path(family, table), &text)
        .map_err(|e| e.to_string())
}

fn builtin(table: &str) -> Option<&'static [&'static str]> {
    BUILTIN.iter().find(|(t, _)| *t == table).map(|(_, c)| *c)
}

pub fn run(inv: &mut Invocation) -> i32 {
    let family = if inv.tool.starts_with("ip6") {
        "ip6"
    } else {
        "ip4"
    };
    if inv.tool.ends_with("-save") {
        return save_cmd(inv, family);
    }
    let args = inv.args.clone();
    if args.iter().any(|a| a == "--version" || a == "-V") {
        inv.outln(VERSION);
        return 0;
    }
    if inv.uid != 0 {
        inv.errln(&format!("{VERSION}: Permission denied (you must be root)"));
        return 4;
    }
    let mut table = "filter".to_string();
    let mut op: Option<(String, Vec<String>)> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-t" | "--table" => {
                i += 1;
                table = args.get(i).cloned().unwrap_or_default();
            }
            "-w" | "--wait" | "-n" | "--numeric" | "-v" => {}
            flag @ ("-F" | "-X" | "-N" | "-A" | "-I" | "-D" | "-C" | "-S" | "-L" | "--flush"
            | "--delete-chain" | "--new-chain" | "--append" | "--insert" | "--delete"
            | "--check" | "--list-rules" | "--list") => {
                let rest: Vec<String> = args[i + 1..]
                    .iter()
                    .filter(|a| !matches!(a.as_str(), "-w" | "--wait" | "-n" | "--numeric"))
                    .cloned()
                    .collect();
                op = Some((flag.to_string(), rest));
                break;
            }
            other => {
                inv.errln(&format!("{VERSION}: unknown option \"{other}\"\nTry `iptables -h' or 'iptables --help' for more information."));
                return 2;
            }
        }
        i += 1;
    }
    let Some(chains) = builtin(&table) else {
        inv.errln(&format!("{VERSION}: can't initialize iptables table `{table}': Table does not exist (do you need to insmod?)"));
        return 3;
    };
    let Some((flag, rest)) = op else {
        inv.errln(&format!("{VERSION}: no command specified\nTry `iptables -h' or 'iptables --help' for more information."));
        return 2;
    };
    let mut t = load(inv, family, &table);
    let chain = rest.first().cloned();
    let rule = rest.iter().skip(1).cloned().collect::<Vec<_>>().join(" ");
    let exists = |t: &Table, c: &str| chains.contains(&c) || t.chains.iter().any(|x| x == c);
    let no_chain = |inv: &mut Invocation, c: &str| {
        inv.errln(&format!(
            "iptables: No chain/target/match by that name. ({c})"
        ));
        1
    };
    match flag.as_str() {
        "-F" | "--flush" => match chain {
            Some(c) if !exists(&t, &c) => return no_chain(inv, &c),
            Some(c) => t.rules.retain(|(rc, _)| *rc != c),
            None => t.rules.clear(),
        },
        "-X" | "--delete-chain" => match chain {
            Some(c) if !t.chains.contains(&c) => return no_chain(inv, &c),
            Some(c) => {
                let jump = format!("-j {c}");
                let busy = t.rules.iter().any(|(rc, r)| {
                    *rc == c
                        || r.split(" -").any(|part| {
                            part.trim_start_matches('-') == jump.trim_start_matches('-')
                        })
                });
                if busy {
                    inv.errln(&format!("iptables v1.8.7 (nf_tables): CHAIN_DEL failed (Device or resource busy): chain {c}"));
                    return 1;
                }
                t.chains.retain(|x| *x != c);
            }
            None => {
                // Like the real one: every empty, unreferenced user chain goes.
                let busy = |c: &String| {
                    t.rules
                        .iter()
                        .any(|(rc, r)| rc == c || r.contains(&format!("-j {c}")))
                };
                let keep: Vec<String> = t.chains.iter().filter(|c| busy(c)).cloned().collect();
                t.chains = keep;
            }
        },
        "-N" | "--new-chain" => match chain {
            Some(c) if exists(&t, &c) => {
                inv.errln("iptables: Chain already exists.");
                return 1;
            }
            Some(c) => t.chains.push(c),
            None => return no_chain(inv, ""),
        },
        "-A" | "--append" | "-I" | "--insert" => match chain {
            Some(c) if exists(&t, &c) => {
                if flag.starts_with("-I") || flag == "--insert" {
                    t.rules.insert(0, (c, rule));
                } else {
                    t.rules.push((c, rule));
                }
            }
            Some(c) => return no_chain(inv, &c),
            None => return no_chain(inv, ""),
        },
        "-D" | "--delete" | "-C" | "--check" => {
            let Some(c) = chain else {
                return no_chain(inv, "");
            };
            let at = t.rules.iter().position(|(rc, r)| *rc == c && *r == rule);
            match at {
                None => {
                    inv.errln("iptables: Bad rule (does a matching rule exist in that chain?).");
                    return 1;
                }
                Some(at) if flag.starts_with("-D") || flag == "--delete" => {
                    t.rules.remove(at);
                }
                Some(_) => return 0,
            }
        }
        "-S" | "--list-rules" => {
            for c in chains {
                if chain.as_deref().is_none_or(|x| x == *c) {
                    inv.outln(&format!("-P {c} ACCEPT"));
                }
            }
            for c in &t.chains {
                if chain.as_deref().is_none_or(|x| x == c) {
                    inv.outln(&format!("-N {c}"));
                }
            }
            for (c, r) in &t.rules {
                if chain.as_deref().is_none_or(|x| x == c) {
                    inv.outln(&format!("-A {c} {r}"));
                }
            }
            return 0;
        }
        _ => {
            for c in chains
                .iter()
                .map(|c| c.to_string())
                .chain(t.chains.iter().cloned())
            {
                if chain.as_deref().is_some_and(|x| x != c) {
                    continue;
                }
                inv.outln(&format!("Chain {c} (policy ACCEPT)\ntarget     prot opt source               destination"));
                for (rc, r) in &t.rules {
                    if *rc == c {
                        inv.outln(r);
                    }
                }
                inv.outln("");
            }
            return 0;
        }
    }
    match save(inv, family, &table, &t) {
        Ok(()) => 0,
        Err(e) => {
            inv.errln(&format!("{VERSION}: {e}"));
            4
        }
    }
}

fn save_cmd(inv: &mut Invocation, family: &str) -> i32 {
    inv.outln("# Generated by iptables-save v1.8.7");
    for (table, chains) in BUILTIN {
        let t = load(inv, family, table);
        inv.outln(&format!("*{table}"));
        for c in chains.iter() {
            inv.outln(&format!(":{c} ACCEPT [0:0]"));
        }
        for c in &t.chains {
            inv.outln(&format!(":{c} - [0:0]"));
        }
        for (c, r) in &t.rules {
            inv.outln(&format!("-A {c} {r}"));
        }
        inv.outln("COMMIT");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipt(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
        let mut inv = Invocation::new(dir, "iptables", args, 0);
        let status = run(&mut inv);
        (status, inv.stdout, inv.stderr)
    }

    #[test]
    fn rules_are_added_checked_flushed_and_chains_deleted() {
        let dir = std::env::temp_dir().join(format!("ipt-emu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(ipt(&dir, &["-t", "nat", "-N", "KUBE-SERVICES"]).0, 0);
        assert_eq!(
            ipt(
                &dir,
                &["-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES"]
            )
            .0,
            0
        );
        assert_eq!(
            ipt(
                &dir,
                &["-t", "nat", "-C", "PREROUTING", "-j", "KUBE-SERVICES"]
            )
            .0,
            0
        );
        let (_, rules, _) = ipt(&dir, &["-t", "nat", "-S"]);
        assert!(
            rules.contains("-N KUBE-SERVICES\n-A PREROUTING -j KUBE-SERVICES"),
            "{rules}"
        );
        // A chain that a rule jumps to cannot be deleted; after a flush it can.
        assert_eq!(ipt(&dir, &["-t", "nat", "-X", "KUBE-SERVICES"]).0, 1);
        assert_eq!(ipt(&dir, &["-t", "nat", "-F"]).0, 0);
        assert_eq!(ipt(&dir, &["-t", "nat", "-X"]).0, 0);
        let (status, _, err) = ipt(
            &dir,
            &["-t", "nat", "-C", "PREROUTING", "-j", "KUBE-SERVICES"],
        );
        assert_eq!(status, 1, "{err}");
        assert_eq!(ipt(&dir, &["-t", "nosuch", "-F"]).0, 3);
        let mut user = Invocation::new(&dir, "iptables", &["-F"], 1000);
        assert_eq!(run(&mut user), 4);
    }
}
