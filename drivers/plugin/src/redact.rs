//! Masking a device's secrets out of whatever a plugin says back, before its words reach an
//! error message, a log or the evidence record.

use fencegate_driver::{ExposeSecret, SecretString};

/// What replaces a secret in text.
pub(crate) const MASK: &str = "[redacted]";

/// The secret values one driver handed its plugin (held as `SecretString`s, which wipe
/// themselves when dropped).
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Vec<SecretString>,
}

impl Redactor {
    /// A redactor for these secrets; empty values are ignored (there is nothing to hide).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let mut secrets: Vec<SecretString> = secrets
            .into_iter()
            .filter(|s| !s.expose_secret().is_empty())
            .cloned()
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        Redactor { secrets }
    }

    /// `text` with every occurrence of every secret replaced by [`MASK`].
    pub(crate) fn redact(&self, text: &str) -> String {
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
