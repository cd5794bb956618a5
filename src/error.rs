//! The one error a front door returns when a command cannot be carried out: what was wrong,
//! where, and which exit code that deserves. Scripts act on the code (see [`crate::exit`]),
//! people read the message, so every message names the thing that was wrong (a flag, a
//! file, stdin, a device) and what to do about it where there is something to do.
//!
//! A verdict of the engine is never a `CommandError`: a refused or failed fence is a proof
//! with its own exit code. This is for what happens around it — a command line, an
//! inventory or an input that cannot be used (nothing was attempted), or fencegate itself
//! failing (nothing is reported fenced).

use crate::exit;

/// What kind of thing went wrong, which decides the exit code. Not the drivers'
/// `fencegate_driver::ErrorKind`, which classifies what a device said during an operation;
/// this says why a command could not be carried out at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandErrorKind {
    /// The command line: a flag, a host pattern, a device URL, a combination of options.
    Usage,
    /// The inventory: missing, unreadable, or without the host or device asked for.
    Config,
    /// What a caller sent on stdin: the OpenNebula host document, the agent's options.
    Input,
    /// fencegate itself: the journal, the runtime, a simulator of the demo, a task that
    /// died. Nothing is reported fenced.
    Internal,
}

/// A command that could not be carried out. `Display` is the message, already naming what
/// was wrong and where; the front door prefixes it with the program name and escapes it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    kind: CommandErrorKind,
    message: String,
}

impl CommandError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: CommandErrorKind, message: impl Into<String>) -> Self {
        CommandError {
            kind,
            message: message.into(),
        }
    }

    /// A command line that cannot be used.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(CommandErrorKind::Usage, message)
    }

    /// An inventory that cannot be used.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(CommandErrorKind::Config, message)
    }

    /// An input on stdin that cannot be used.
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(CommandErrorKind::Input, message)
    }

    /// fencegate itself failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(CommandErrorKind::Internal, message)
    }

    /// What kind of thing went wrong.
    pub fn kind(&self) -> CommandErrorKind {
        self.kind
    }

    /// The documented exit code: usage, configuration and input errors share
    /// [`exit::USAGE`] (nothing was attempted); fencegate's own failures are
    /// [`exit::INTERNAL`].
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            CommandErrorKind::Usage | CommandErrorKind::Config | CommandErrorKind::Input => {
                exit::USAGE
            }
            CommandErrorKind::Internal => exit::INTERNAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_documented_exit_codes() {
        assert_eq!(CommandError::usage("x").exit_code(), 2);
        assert_eq!(CommandError::config("x").exit_code(), 2);
        assert_eq!(CommandError::input("x").exit_code(), 2);
        assert_eq!(CommandError::internal("x").exit_code(), 4);
    }

    #[test]
    fn display_is_the_message_alone() {
        let e = CommandError::config("inventory fencegate.toml: no host \"h\"");
        assert_eq!(e.to_string(), "inventory fencegate.toml: no host \"h\"");
        assert_eq!(e.kind(), CommandErrorKind::Config);
    }
}
