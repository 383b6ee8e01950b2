//! `curl`: the lab has no network, so downloads are answered from what the lab
//! knows. The signing keys of the repositories the package emulation serves
//! (pkgs.k8s.io's `Release.key` and `repomd.xml.key`, Docker's `gpg`) come back
//! as an ASCII-armoured key block; anything else fails like an offline host
//! (`curl: (6) Could not resolve host: …`, exit 6). Flags an installer uses:
//! `-f`, `-s`, `-S`, `-L`, `-o FILE`, combined or apart.

use super::repos::{identify, signing_key, split_url, Format, Identity};
use super::Invocation;

pub fn run(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let mut out_file: Option<String> = None;
    let mut fail = false;
    // -k or --cacert: a TLS server the lab emulates (the API server) is accepted.
    let mut insecure = false;
    let mut url: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-o" | "--output" => {
                i += 1;
                out_file = args.get(i).cloned();
            }
            "--fail" => fail = true,
            "--insecure" => insecure = true,
            "--max-time" | "--connect-timeout" => i += 1,
            "--cacert" => {
                i += 1;
                insecure |= args.get(i).is_some();
            }
            "--silent" | "--show-error" | "--location" => {}
            flags if flags.starts_with('-') && !flags.starts_with("--") => {
                for c in flags[1..].chars() {
                    match c {
                        'f' => fail = true,
                        's' | 'S' | 'L' => {}
                        'k' => insecure = true,
                        'o' => {
                            i += 1;
                            out_file = args.get(i).cloned();
                        }
                        other => {
                            inv.errln(&format!("curl: option -{other}: is unknown"));
                            return 2;
                        }
                    }
                }
            }
            other if other.starts_with("--") => {
                inv.errln(&format!("curl: option {other}: is unknown"));
                return 2;
            }
            other => url = Some(other.to_string()),
        }
        i += 1;
    }
    let Some(url) = url else {
        inv.errln("curl: no URL specified!");
        return 2;
    };
    if let Some(answer) = super::etcd::apiserver_health(inv, &url) {
        return match answer {
            Ok(_) if !insecure => {
                inv.errln(
                    "curl: (60) SSL certificate problem: unable to get local issuer certificate",
                );
                60
            }
            Ok(body) => {
                inv.out(&body);
                0
            }
            Err(e) => {
                inv.errln(&e);
                if e.contains("(22)") && !fail {
                    inv.out("[-]etcd failed: reason withheld\nlivez check failed");
                    return 0;
                }
                e[6..]
                    .split(')')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(7)
            }
        };
    }
    let Some((host, path)) = split_url(&url) else {
        inv.errln(&format!(
            "curl: (1) Protocol \"{}\" not supported",
            url.split("://").next().unwrap_or("")
        ));
        return 1;
    };
    let Some(body) = key_for(&url, &path) else {
        if matches!(identify(&url, Format::Deb), Identity::Unreachable { .. })
            && matches!(identify(&url, Format::Rpm), Identity::Unreachable { .. })
        {
            inv.errln(&format!("curl: (6) Could not resolve host: {host}"));
            return 6;
        }
        if fail {
            inv.errln("curl: (22) The requested URL returned error: 404");
            return 22;
        }
        inv.out("<html><body>404 Not Found</body></html>\n");
        return 0;
    };
    match out_file {
        Some(file) => match inv.write(&file, &body) {
            Ok(()) => 0,
            Err(e) => {
                inv.errln(&format!(
                    "curl: (23) Failure writing output to destination: {e}"
                ));
                23
            }
        },
        None => {
            inv.out(&body);
            0
        }
    }
}

/// The armoured signing key served at `url`, when it is a key of a repository
/// the lab serves.
fn key_for(url: &str, path: &str) -> Option<String> {
    let file = path.rsplit('/').next().unwrap_or("");
    if !matches!(file, "Release.key" | "repomd.xml.key" | "gpg") {
        return None;
    }
    let base = &url[..url.len() - file.len()];
    let origin =
        [Format::Deb, Format::Rpm]
            .into_iter()
            .find_map(|format| match identify(base, format) {
                Identity::Known(origin) => Some(origin),
                _ => None,
            })?;
    Some(armoured(signing_key(&origin)))
}

/// A key block `gpg --dearmor` accepts: armour around the key id's bytes.
fn armoured(key_id: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data = format!("k8sup-lab repository signing key {key_id}");
    let bytes = data.as_bytes();
    let mut b64 = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for k in 0..4 {
            if k <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    format!("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{b64}\n-----END PGP PUBLIC KEY BLOCK-----\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curl(args: &[&str]) -> (i32, Invocation) {
        let dir =
            std::env::temp_dir().join(format!("curl-emu-{}-{}", std::process::id(), args.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut inv = Invocation::new(&dir, "curl", args, 0);
        let status = run(&mut inv);
        (status, inv)
    }

    #[test]
    fn repository_keys_are_served() {
        let (status, inv) = curl(&[
            "-fsSL",
            "https://pkgs.k8s.io/core:/stable:/v1.30/deb/Release.key",
        ]);
        assert_eq!(status, 0, "{}", inv.stderr);
        assert!(inv
            .stdout
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let (status, _) = curl(&[
            "-fsSL",
            "https://download.docker.com/linux/ubuntu/gpg",
            "-o",
            "/docker.asc",
        ]);
        assert_eq!(status, 0);
    }

    #[test]
    fn anything_else_fails_like_an_offline_host() {
        let (status, inv) = curl(&["-fsSL", "https://example.org/install.sh"]);
        assert_eq!(status, 6);
        assert_eq!(
            inv.stderr,
            "curl: (6) Could not resolve host: example.org\n"
        );
        let (status, _) = curl(&[
            "-fsSL",
            "https://pkgs.k8s.io/core:/stable:/v1.30/deb/nothing-here",
        ]);
        assert_eq!(status, 22);
    }
}
