//! Masking secrets out of text a device, a child process or a plugin sends back, before
//! its words reach an error message, a log or the evidence record. Every driver that echoes
//! what the other side said needs this, so it lives with the contract.
//!
//! Text is often also cut to a length before it is quoted. Cutting first and masking after
//! would let the prefix of a secret that straddles the cut through (the whole secret no longer
//! matches), so [`Redactor::clip`] is the one way to shorten such text: it masks first, cuts
//! second, and then masks what may be a partial secret left at the cut.

use secrecy::{ExposeSecret, SecretString};

/// What replaces a secret in text.
pub const MASK: &str = "[redacted]";

/// The shortest prefix of a secret that is masked where it ends text that was cut: shorter
/// prefixes are too common in ordinary words to mask, and too short to help a guess much.
pub const MIN_PARTIAL: usize = 4;

/// Whether an option name calls for a secret (`password`, `snmp_priv_passwd`, `apikey`,
/// `secret_key`, `token`, `community`, `hexadecimal_kg`, … in any case, `-` or `_`): such a
/// value is a credential and must come by `ROLE_file`/`ROLE_env` reference, never inline in
/// a configuration file, a URL or an agent option, where it would be echoed and logged.
/// Names of references (`password_file`) and of commands (`password_script`) are not
/// secrets themselves.
pub fn secret_like(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    const EXACT: &[&str] = &["key", "kg", "pw", "pass", "psk"];
    const ENDINGS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "community",
        "apikey",
        "api_key",
        "secret_key",
        "access_key",
        "private_key",
        "_kg",
    ];
    EXACT.contains(&key.as_str()) || ENDINGS.iter().any(|e| key.ends_with(e))
}

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

    /// `text` fit for quoting in about `max` bytes: every secret masked first, then cut on a
    /// character boundary at or before `max` bytes (or just after a mask the cut would split),
    /// then a partial secret at the cut
    /// (a prefix of at least [`MIN_PARTIAL`] characters of a secret ending the kept text)
    /// masked too. A cut is marked with `…`.
    ///
    /// This is the only way text from a driver, agent or plugin may be shortened, so that no
    /// part of a secret survives a cut.
    pub fn clip(&self, text: &str, max: usize) -> String {
        self.clip_cut(text, max, false)
    }

    /// [`Redactor::clip`] for text a bounded reader has already cut at its end
    /// (`already_cut`): the partial secret that cut may have left is masked even when the
    /// text is now short enough.
    pub fn clip_cut(&self, text: &str, max: usize, already_cut: bool) -> String {
        let redacted = self.redact(text);
        let (kept, cut) = if redacted.len() > max {
            let mut at = max;
            while !redacted.is_char_boundary(at) {
                at -= 1;
            }
            // A mask the cut would split is kept whole: `[red…` would read as damage.
            if let Some(start) = redacted
                .match_indices(MASK)
                .map(|(start, _)| start)
                .find(|start| *start < at && at < start + MASK.len())
            {
                at = start + MASK.len();
            }
            (&redacted[..at], true)
        } else {
            (redacted.as_str(), already_cut)
        };
        if !cut {
            return redacted;
        }
        let mut out = self.mask_partial(kept);
        out.push('…');
        out
    }

    /// `kept` with a trailing prefix of a secret (at least [`MIN_PARTIAL`] characters)
    /// replaced by [`MASK`]; the longest such prefix of any secret wins.
    fn mask_partial(&self, kept: &str) -> String {
        let mut longest = 0;
        for secret in &self.secrets {
            let value = secret.expose_secret();
            for (at, _) in value.char_indices().skip(MIN_PARTIAL) {
                if at > longest && kept.ends_with(&value[..at]) {
                    longest = at;
                }
            }
        }
        if longest == 0 {
            kept.to_owned()
        } else {
            format!("{}{MASK}", &kept[..kept.len() - longest])
        }
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
    fn secret_like_names() {
        for key in [
            "password",
            "PASSWORD",
            "Password",
            "passwd",
            "snmp_priv_passwd",
            "snmp-priv-passwd",
            "apikey",
            "api_key",
            "secret_key",
            "access_key",
            "token",
            "bearer_token",
            "community",
            "kg",
            "hexadecimal_kg",
            "key",
            "secret",
            "client_secret",
            "passphrase",
        ] {
            assert!(secret_like(key), "{key}");
        }
        for key in [
            "ip",
            "ipport",
            "cipher",
            "password_file",
            "password_env",
            "password_script",
            "key_file",
            "known_hosts_file",
            "ca_file",
            "pin",
            "keyring",
            "tokens_dir",
        ] {
            assert!(!secret_like(key), "{key}");
        }
    }

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

    #[test]
    fn a_secret_straddling_the_cut_never_survives() {
        let secret = SecretString::from("Tr0ub4dor&3");
        let r = Redactor::new([&secret]);
        let text = format!("{}pw={} tail", "x".repeat(20), secret.expose_secret());
        // Every cut position: no prefix of four or more characters is ever left.
        for max in 0..text.len() + 2 {
            let out = r.clip(&text, max);
            for n in MIN_PARTIAL..=secret.expose_secret().len() {
                assert!(
                    !out.contains(&secret.expose_secret()[..n]),
                    "max {max}: {out:?} shows {n} characters"
                );
            }
            let whole = format!("{}pw=[redacted] tail", "x".repeat(20));
            if max >= whole.len() {
                assert_eq!(out, whole);
            } else {
                assert!(out.ends_with('…'), "{out:?}");
            }
        }
    }

    #[test]
    fn text_already_cut_by_a_reader_is_masked_at_its_end() {
        let secret = SecretString::from("hunter2-long");
        let r = Redactor::new([&secret]);
        assert_eq!(
            r.clip_cut("login failed pw=hunte", 500, true),
            "login failed pw=[redacted]…"
        );
        // Three characters are not masked (too common to mean anything).
        assert_eq!(r.clip_cut("the hun", 500, true), "the hun…");
        assert_eq!(r.clip_cut("pw=hunte", 500, false), "pw=hunte");
        // Cuts fall on character boundaries.
        assert_eq!(Redactor::default().clip("ééé", 3), "é…");
        assert_eq!(Redactor::default().clip("short", 5), "short");
    }
}
