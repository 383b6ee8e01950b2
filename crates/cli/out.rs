//! Printing that never aborts a run. `println!` panics when stdout is gone
//! (`k8sup apply | head -6`: "failed printing to stdout: Broken pipe", exit 101)
//! while hosts are half done and before the history is written. These macros,
//! declared before every other module of the binary, shadow the standard ones:
//! the first failed write of a stream stops the printing on it, never the run.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout failed: later prints are dropped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// Set once a write to stderr failed.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

fn write_to(gone: &AtomicBool, mut stream: impl Write, args: fmt::Arguments<'_>, newline: bool) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    let written = stream.write_fmt(args).and_then(|()| {
        if newline {
            stream.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if written.is_err() {
        gone.store(true, Ordering::Relaxed);
    }
}

/// What `print!`/`println!` do in this binary.
pub fn stdout(args: fmt::Arguments<'_>, newline: bool) {
    write_to(&STDOUT_GONE, std::io::stdout().lock(), args, newline);
}

/// What `eprint!`/`eprintln!` do in this binary.
pub fn stderr(args: fmt::Arguments<'_>, newline: bool) {
    write_to(&STDERR_GONE, std::io::stderr().lock(), args, newline);
}

/// Flushes stdout (before a question is read), dropping any error.
pub fn flush() {
    if std::io::stdout().flush().is_err() {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

macro_rules! print {
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*), false) };
}

macro_rules! println {
    () => { $crate::out::stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*), true) };
}

macro_rules! eprint {
    ($($arg:tt)*) => { $crate::out::stderr(format_args!($($arg)*), false) };
}

macro_rules! eprintln {
    () => { $crate::out::stderr(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::stderr(format_args!($($arg)*), true) };
}
