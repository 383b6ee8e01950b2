//! Asking before changing hosts: the one mechanism every command that changes
//! or destroys something goes through (reset now; apply on a terminal; node
//! removal and etcd restore when they come).
//!
//! On a terminal the user is asked and must type the expected answer exactly.
//! `--yes` answers for them. Without a terminal no one can answer: a destructive
//! command refuses (exit 1, nothing touched) unless `--yes` is given, while a
//! converging one (apply, the nightly job) goes on as it always has.

use std::io::{BufRead, IsTerminal};

/// What a command does when no one can be asked (stdin is not a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unattended {
    /// Go on: the command converges, it destroys nothing (`apply`).
    Proceed,
    /// Refuse without `--yes` (`reset`, node removal, etcd restore).
    RequireYes,
}

/// A question put to the user before a change.
pub struct Question<'a> {
    /// What is about to happen, shown before the question.
    pub what: &'a str,
    /// The question itself, ending where the answer is typed.
    pub prompt: &'a str,
    /// The only answer that goes on.
    pub expected: &'a str,
    /// The flag that answers without asking (named in the refusal).
    pub unattended: Unattended,
}

/// Why the command stops before touching anything.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("stdin is not a terminal, so no one can confirm: nothing was changed; pass --yes to go on without a question")]
    NoTerminal,

    #[error("not confirmed (only {expected:?} is accepted): nothing was changed")]
    NotConfirmed { expected: String },
}

/// Whether to go on: `yes` (the `--yes` flag) goes on at once; on a terminal the
/// answer decides; otherwise `question.unattended` does.
pub fn confirm(question: &Question<'_>, yes: bool) -> Result<(), Refusal> {
    let stdin = std::io::stdin();
    confirm_with(question, yes, stdin.is_terminal(), &mut stdin.lock())
}

/// Before tearing down something of `cluster` (reset, etcd restore): on a terminal
/// the user types the cluster's name; without one only `--yes` goes on.
pub fn confirm_destructive(what: &str, cluster: &str, yes: bool) -> Result<(), Refusal> {
    let question = Question {
        what,
        prompt: "Type the cluster name to go on: ",
        expected: cluster,
        unattended: Unattended::RequireYes,
    };
    confirm(&question, yes)
}

/// [`confirm`] with the terminal test and the answer's source given.
fn confirm_with(
    question: &Question<'_>,
    yes: bool,
    terminal: bool,
    input: &mut dyn BufRead,
) -> Result<(), Refusal> {
    if yes {
        return Ok(());
    }
    if !terminal {
        return match question.unattended {
            Unattended::Proceed => Ok(()),
            Unattended::RequireYes => Err(Refusal::NoTerminal),
        };
    }
    // The question goes to stderr: it is seen even when stdout is redirected.
    crate::out::flush();
    if !question.what.is_empty() {
        eprintln!("{}", question.what);
    }
    eprint!("{}", question.prompt);
    let mut answer = String::new();
    // End of input or an unreadable answer is no answer.
    let _ = input.read_line(&mut answer);
    if answer.trim() == question.expected {
        Ok(())
    } else {
        Err(Refusal::NotConfirmed {
            expected: question.expected.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(unattended: Unattended) -> Question<'static> {
        Question {
            what: "This tears down 2 hosts.",
            prompt: "Type the cluster name to go on: ",
            expected: "lab",
            unattended,
        }
    }

    #[test]
    fn only_the_expected_answer_goes_on() {
        let q = question(Unattended::RequireYes);
        assert_eq!(confirm_with(&q, false, true, &mut &b"lab\n"[..]), Ok(()));
        for answer in [&b"y\n"[..], b"yes\n", b"", b"LAB\n"] {
            assert_eq!(
                confirm_with(&q, false, true, &mut &answer[..]),
                Err(Refusal::NotConfirmed {
                    expected: "lab".into()
                })
            );
        }
    }

    #[test]
    fn without_a_terminal_destruction_needs_yes() {
        let q = question(Unattended::RequireYes);
        assert_eq!(
            confirm_with(&q, false, false, &mut &b"lab\n"[..]),
            Err(Refusal::NoTerminal)
        );
        assert_eq!(confirm_with(&q, true, false, &mut &b""[..]), Ok(()));
        let q = question(Unattended::Proceed);
        assert_eq!(confirm_with(&q, false, false, &mut &b""[..]), Ok(()));
    }
}
