//! Host key policy: OpenSSH `known_hosts` entries or a pinned `SHA256:` fingerprint.
//!
//! Parsed once when the device is built, so a missing or garbled file is a configuration
//! error naming the option, and a connection never reads the disk. Supported: plain and
//! hashed (`|1|salt|hash`) host fields, comma lists, `[host]:port`, `*`/`?` wildcards and
//! `!` negation, and `@revoked` lines. `@cert-authority` lines are ignored: host
//! certificates are not accepted, so an entry of that kind can never let a key in.

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

/// How the server's host key is checked. There is no "accept anything" variant: a fencing
/// command sent to an impostor is worse than no command.
#[derive(Debug, Clone)]
pub enum HostKeyPolicy {
    /// Keys listed for the host in a known_hosts file.
    KnownHosts(KnownHosts),
    /// A pinned fingerprint, as `ssh-keygen -lf` prints it (`SHA256:…`).
    Fingerprint(String),
}

/// The verdict on a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is trusted for this host.
    Trusted,
    /// The key is not trusted; the reason names what was expected.
    Rejected(String),
}

impl HostKeyPolicy {
    /// Check the key the server presented for `host:port`.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        match self {
            HostKeyPolicy::Fingerprint(pin) => {
                let got = fingerprint(key);
                if &got == pin {
                    Verdict::Trusted
                } else {
                    Verdict::Rejected(format!("expected {pin}"))
                }
            }
            HostKeyPolicy::KnownHosts(kh) => kh.check(host, port, key),
        }
    }
}

/// The SHA-256 fingerprint of a key in OpenSSH's notation.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Validate a pinned fingerprint from configuration.
pub fn parse_fingerprint(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let b64 = raw
        .strip_prefix("SHA256:")
        .ok_or("expected `SHA256:` followed by the fingerprint as `ssh-keygen -lf` prints it")?;
    let padded = format!("{b64}{}", "=".repeat((4 - b64.len() % 4) % 4));
    match BASE64.decode(padded.as_bytes()) {
        Ok(d) if d.len() == 32 => Ok(raw.to_owned()),
        _ => Err("not a SHA-256 fingerprint (43 base64 characters after `SHA256:`)".to_owned()),
    }
}

#[derive(Debug, Clone)]
enum HostPattern {
    /// `|1|salt|hash`: HMAC-SHA1 of the host name as written.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// A comma list of patterns, some negated.
    Patterns(Vec<(bool, String)>),
}

#[derive(Debug, Clone)]
struct Entry {
    revoked: bool,
    hosts: HostPattern,
    key: PublicKey,
    line: usize,
}

/// A parsed known_hosts file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Parse the text of a known_hosts file. Lines whose key type is unknown to us are
    /// skipped (OpenSSH does the same); malformed lines are errors with their number.
    pub fn parse(text: &str) -> Result<KnownHosts, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if let Some(marker) = first.strip_prefix('@') {
                match marker {
                    "revoked" => revoked = true,
                    "cert-authority" => continue,
                    other => return Err(format!("line {n}: unknown marker @{other}")),
                }
                first = fields
                    .next()
                    .ok_or(format!("line {n}: marker without hosts"))?;
            }
            let (Some(alg), Some(b64)) = (fields.next(), fields.next()) else {
                return Err(format!("line {n}: expected `hosts key-type base64-key`"));
            };
            let key = match PublicKey::from_openssh(&format!("{alg} {b64}")) {
                Ok(k) => k,
                Err(_) if !alg.starts_with("ssh-") && !alg.starts_with("ecdsa-") => continue,
                Err(e) => return Err(format!("line {n}: bad {alg} key: {e}")),
            };
            let hosts = if let Some(rest) = first.strip_prefix("|1|") {
                let (salt, hash) = rest
                    .split_once('|')
                    .ok_or(format!("line {n}: malformed hashed host"))?;
                let dec = |s: &str| {
                    BASE64
                        .decode(s.as_bytes())
                        .map_err(|_| format!("line {n}: malformed hashed host"))
                };
                HostPattern::Hashed {
                    salt: dec(salt)?,
                    hash: dec(hash)?,
                }
            } else {
                HostPattern::Patterns(
                    first
                        .split(',')
                        .map(|p| match p.strip_prefix('!') {
                            Some(neg) => (true, neg.to_ascii_lowercase()),
                            None => (false, p.to_ascii_lowercase()),
                        })
                        .collect(),
                )
            };
            entries.push(Entry {
                revoked,
                hosts,
                key,
                line: n,
            });
        }
        Ok(KnownHosts { entries })
    }

    /// Whether any entry names this host (so a mismatch can say "no entry" or "key differs").
    fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = if port == 22 {
            host.to_ascii_lowercase()
        } else {
            format!("[{}]:{port}", host.to_ascii_lowercase())
        };
        let mut listed = Vec::new();
        for e in self.entries.iter().filter(|e| e.hosts.matches(&name)) {
            let same = e.key.key_data() == key.key_data();
            if e.revoked {
                if same {
                    return Verdict::Rejected(format!("the key is @revoked (line {})", e.line));
                }
                continue;
            }
            if same {
                return Verdict::Trusted;
            }
            listed.push(e.line.to_string());
        }
        if listed.is_empty() {
            Verdict::Rejected(format!("no known_hosts entry for {name}"))
        } else {
            Verdict::Rejected(format!(
                "known_hosts lists other key(s) for {name} (line {})",
                listed.join(", ")
            ))
        }
    }
}

impl HostPattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            HostPattern::Patterns(list) => {
                let mut hit = false;
                for (negated, p) in list {
                    if glob(p.as_bytes(), name.as_bytes()) {
                        if *negated {
                            return false;
                        }
                        hit = true;
                    }
                }
                hit
            }
        }
    }
}

/// OpenSSH pattern matching: `*` any run, `?` one character. Iterative with one
/// backtrack point, so it is linear-ish and cannot recurse deeply on hostile patterns.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9MrgURByAasEd+jIzn6WAWpdk/FyY8zl9OTuoqjDoM";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKHA5JkupRSGuTjnwxclLYGzBpa9DHgWyIsRViU6hssj";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn plain_bracketed_and_wildcard_entries() {
        let kh = KnownHosts::parse(&format!(
            "# comment\n[127.0.0.1]:2222 {KEY_A}\nweb*.example,!web9.example {KEY_B}\n"
        ))
        .unwrap();
        assert_eq!(kh.check("127.0.0.1", 2222, &key(KEY_A)), Verdict::Trusted);
        assert!(
            matches!(kh.check("127.0.0.1", 22, &key(KEY_A)), Verdict::Rejected(r) if r.contains("no known_hosts entry"))
        );
        assert!(
            matches!(kh.check("127.0.0.1", 2222, &key(KEY_B)), Verdict::Rejected(r) if r.contains("line 2"))
        );
        assert_eq!(kh.check("web1.example", 22, &key(KEY_B)), Verdict::Trusted);
        assert!(matches!(
            kh.check("web9.example", 22, &key(KEY_B)),
            Verdict::Rejected(_)
        ));
    }

    #[test]
    fn hashed_entries_match_the_name_as_written() {
        let salt = [7u8; 20];
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[10.0.0.5]:2200");
        let hash = mac.finalize().into_bytes();
        let line = format!(
            "|1|{}|{} {KEY_A}",
            BASE64.encode(&salt),
            BASE64.encode(&hash)
        );
        let kh = KnownHosts::parse(&line).unwrap();
        assert_eq!(kh.check("10.0.0.5", 2200, &key(KEY_A)), Verdict::Trusted);
        assert!(matches!(
            kh.check("10.0.0.5", 22, &key(KEY_A)),
            Verdict::Rejected(_)
        ));
    }

    #[test]
    fn revoked_and_cert_authority_lines() {
        let kh = KnownHosts::parse(&format!(
            "@revoked * {KEY_A}\n@cert-authority * {KEY_B}\nhost {KEY_A}\n"
        ))
        .unwrap();
        assert!(
            matches!(kh.check("host", 22, &key(KEY_A)), Verdict::Rejected(r) if r.contains("revoked"))
        );
        assert!(matches!(
            kh.check("host", 22, &key(KEY_B)),
            Verdict::Rejected(_)
        ));
    }

    #[test]
    fn garbage_is_an_error_with_a_line_number() {
        let e = KnownHosts::parse("host ssh-ed25519 !!!notbase64").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        assert!(KnownHosts::parse("host-only\n").is_err());
    }

    #[test]
    fn fingerprints() {
        let fp = fingerprint(&key(KEY_A));
        assert!(fp.starts_with("SHA256:"));
        assert_eq!(parse_fingerprint(&fp).unwrap(), fp);
        assert!(parse_fingerprint("MD5:aa:bb").is_err());
        assert!(parse_fingerprint("SHA256:short").is_err());
        let pin = HostKeyPolicy::Fingerprint(fp);
        assert_eq!(pin.check("h", 22, &key(KEY_A)), Verdict::Trusted);
        assert!(matches!(
            pin.check("h", 22, &key(KEY_B)),
            Verdict::Rejected(_)
        ));
    }

    #[test]
    fn glob_edges() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b", b"axxc"));
        assert!(glob(b"10.0.0.?", b"10.0.0.7"));
        assert!(!glob(b"10.0.0.?", b"10.0.0.17"));
    }
}
