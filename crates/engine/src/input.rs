//! Reading the controller's input files with a cap. A playbook, a template, a
//! saved plan, a manifest or an archive named on the command line may be a pipe
//! or a device (`--playbook /dev/zero`): every one of them is read through
//! [`read_capped`], which stops one byte past its limit and says so, instead of
//! growing until the kernel kills k8sup.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest playbook k8sup reads (the built-in one is ~30 KiB).
pub const MAX_PLAYBOOK_BYTES: u64 = 4 * 1024 * 1024;
/// The largest template file, and the most all of `--templates DIR` may hold.
pub const MAX_TEMPLATE_BYTES: u64 = 4 * 1024 * 1024;
pub const MAX_TEMPLATES_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// The largest saved plan (diffs of every file on every host).
pub const MAX_PLAN_BYTES: u64 = 256 * 1024 * 1024;
/// The largest run record in the history.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{what} {} is larger than {}: k8sup reads no more of it", path.display(), size_text(*limit))]
    TooLarge {
        what: String,
        path: PathBuf,
        limit: u64,
    },

    #[error("{what} {} is not UTF-8 text", path.display())]
    NotText { what: String, path: PathBuf },
}

/// A byte count as people read it: `4 MiB`, `512 KiB`, `100 bytes`.
pub fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// The bytes of `path`, at most `limit` of them; `what` names the input in errors
/// ("the playbook"). Reads from pipes and devices stop at the limit too.
pub fn read_capped(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge {
            what: what.to_string(),
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// [`read_capped`] for text.
pub fn read_text_capped(path: &Path, limit: u64, what: &str) -> Result<String, InputError> {
    String::from_utf8(read_capped(path, limit, what)?).map_err(|_| InputError::NotText {
        what: what.to_string(),
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_large_files_stop_at_the_limit() {
        let e = read_capped(Path::new("/dev/zero"), 1024, "the playbook").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the playbook /dev/zero is larger than 1 KiB: k8sup reads no more of it"
        );
        let dir = tempfile::tempdir().unwrap();
        let exact = dir.path().join("exact");
        std::fs::write(&exact, vec![b'a'; 1024]).unwrap();
        assert_eq!(read_capped(&exact, 1024, "x").unwrap().len(), 1024);
        assert!(matches!(
            read_capped(&exact, 1023, "x"),
            Err(InputError::TooLarge { limit: 1023, .. })
        ));
        let missing = read_capped(&dir.path().join("nope"), 10, "the plan").unwrap_err();
        assert!(
            missing.to_string().starts_with("cannot read the plan "),
            "{missing}"
        );
        std::fs::write(&exact, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_text_capped(&exact, 10, "x"),
            Err(InputError::NotText { .. })
        ));
    }
}
