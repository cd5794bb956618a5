//! Masking secrets out of text a device, a child process or a plugin sends back, before
//! its words reach an error message, a log or the evidence record. Every driver that echoes
//! what the other side said needs this, so it lives with the contract.

use secrecy::{ExposeSecret, SecretString};

/// What replaces a secret in text.
pub const MASK: &str = "[redacted]";

/// The secret values one driver handed the other side (held as `SecretString`s, which wipe
/// themselves when dropped).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Vec<SecretString>,
}

impl Redactor {
    /// A redactor for these secrets (empty values are ignored: there is nothing to hide).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let mut secrets: Vec<SecretString> = secrets
            .into_iter()
            .filter(|s| !s.expose_secret().is_empty())
            .cloned()
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        Redactor { secrets }
    }

    /// `text` with every occurrence of every secret replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            let value = secret.expose_secret();
            if out.contains(value) {
                out = out.replace(value, MASK);
            }
        }
        out
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_secret_longest_first() {
        let a = SecretString::from("hunter2");
        let b = SecretString::from("hunter2-long");
        let empty = SecretString::from("");
        let r = Redactor::new([&a, &b, &empty]);
        assert_eq!(
            r.redact("pw=hunter2-long then hunter2 twice hunter2"),
            "pw=[redacted] then [redacted] twice [redacted]"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert!(!format!("{r:?}").contains("hunter"));
    }
}
