//! The OpenNebula front door: the `fence_host.sh` contract of host_error.rb.
//!
//! host_error.rb runs `fence_host.sh` with the failed host's XML, strict base64, on stdin, and
//! recovers the host's VMs elsewhere only if it exits 0. So: exit 0 only on a success verdict
//! (power verified off); anything else — bad input, unknown host, a guard, a failed or
//! interrupted fence — exits non-zero and the VMs stay where they are. stdout and stderr go to
//! host_error.log, so the verdict is one line.

use crate::cli::{Deadlines, Global};
use crate::exit;
use crate::setup::{self, SetupError};
use fencegate_core::Request;
use quick_xml::events::Event as XmlEvent;
use std::io::Read;

/// The most stdin read (a host XML with a large template is a few hundred KiB).
const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// Host states in which fencing makes sense: ERROR (3) and the legacy MONITORING_ERROR (5).
const ERROR_STATES: &[u32] = &[3, 5];

/// What the hook tells us about the failed host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// `/HOST/ID`.
    pub id: Option<u64>,
    /// `/HOST/NAME`.
    pub name: String,
    /// `/HOST/STATE`.
    pub state: Option<u32>,
    /// `/HOST/TEMPLATE/FENCEGATE_HOST`: an explicit mapping to an inventory host.
    pub mapped: Option<String>,
}

/// Run the door: read stdin, fence, print the verdict line, return the exit code.
pub async fn fence_host(
    global: &Global,
    deadlines: &Deadlines,
    any_state: bool,
) -> Result<u8, SetupError> {
    let mut raw = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut raw)
        .map_err(|e| SetupError::usage(format!("stdin: cannot read: {e}")))?;
    if raw.len() as u64 > MAX_INPUT {
        return Err(SetupError::usage(
            "stdin: more than 16 MiB; expected base64 host XML",
        ));
    }
    let info = parse_input(&raw)
        .map_err(|e| SetupError::usage(format!("stdin: {e}; nothing was powered off")))?;
    if let Some(state) = info.state
        && !ERROR_STATES.contains(&state)
        && !any_state
    {
        println!(
            "fencegate: host {} (ID {}) is in state {state}, not ERROR: not fencing it (nothing was powered off)",
            info.name,
            info.id.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
        );
        return Ok(exit::REFUSED);
    }
    let registry = setup::registry();
    let inventory = setup::inventory(global, &registry, true)?
        .ok_or_else(|| SetupError::usage("no inventory"))?;
    let host = match &info.mapped {
        Some(m) => inventory.host(m),
        None => inventory.host_for_opennebula(info.id, &info.name),
    }
    .map_err(|e| SetupError::usage(format!("{e}; nothing was powered off")))?;
    let policy = setup::with_deadlines(&host.policy, deadlines)?;
    let host = std::sync::Arc::new(fencegate_core::Host {
        name: host.name.clone(),
        aliases: host.aliases.clone(),
        opennebula_id: host.opennebula_id,
        levels: host.levels.clone(),
        policy,
    });
    let engine = setup::engine(global, Some(&inventory)).await?;
    crate::commands::stop_on_signals(&engine);
    let request = Request {
        requester: setup::requester(None, "opennebula host_error hook"),
        reason: format!(
            "OpenNebula host {} (ID {}) in ERROR",
            info.name,
            info.id.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
        ),
        force: false,
    };
    let proof = engine
        .fence(host, request)
        .await
        .map_err(|e| SetupError::internal(format!("{e}; the host is NOT reported fenced")))?;
    if global.json {
        crate::output::print_json(&proof);
    } else {
        println!("{}", proof.one_line());
    }
    Ok(exit::for_proof(&proof))
}

/// Decode stdin: exactly one strict base64 word (surrounding whitespace tolerated) holding
/// a `<HOST>` document.
pub fn parse_input(raw: &[u8]) -> Result<HostInfo, String> {
    let text =
        std::str::from_utf8(raw).map_err(|_| "input is not text (expected base64)".to_owned())?;
    let words: Vec<&str> = text.split_whitespace().collect();
    let word = match words.as_slice() {
        [] => {
            return Err(
                "empty input (expected the base64 host XML that host_error.rb sends)".into(),
            );
        }
        [w] => *w,
        more => {
            return Err(format!(
                "expected one base64 word, got {} words (is this wired as the hook itself? it belongs in fence_host.sh)",
                more.len()
            ));
        }
    };
    let xml = base64_decode(word)?;
    parse_host_xml(&xml)
}

/// Strict RFC 4648 base64 (standard alphabet, padding required), as Ruby's strict_encode64.
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err(format!(
            "not base64: length {} is not a multiple of 4",
            b.len()
        ));
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, chunk) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(format!("not base64: misplaced padding near byte {}", i * 4));
        }
        let mut n = 0u32;
        for (j, &c) in chunk.iter().enumerate() {
            let v = if j >= 4 - pad {
                0
            } else {
                value(c)
                    .ok_or_else(|| format!("not base64: invalid character at byte {}", i * 4 + j))?
            };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

/// Read ID, NAME, STATE and TEMPLATE/FENCEGATE_HOST from a `<HOST>` document.
pub fn parse_host_xml(xml: &[u8]) -> Result<HostInfo, String> {
    let text = std::str::from_utf8(xml).map_err(|_| "host XML is not UTF-8".to_owned())?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut info = HostInfo::default();
    let mut name = None;
    // Text of the element being read, gathered across text, CDATA and entity events.
    let mut value = String::new();
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("host XML is malformed near byte {at}: {e}"))?;
        match event {
            XmlEvent::Start(e) => {
                let tag = e.name().as_ref().to_owned();
                if path.is_empty() && tag != "HOST" {
                    return Err(format!("expected a <HOST> document, found <{tag}>"));
                }
                path.push(tag);
                value.clear();
            }
            XmlEvent::End(_) => {
                take_value(&path, value.trim(), &mut info, &mut name)?;
                value.clear();
                path.pop();
            }
            XmlEvent::Empty(e) if path.is_empty() => {
                return Err(format!(
                    "expected a <HOST> document, found an empty <{}/>",
                    e.name().as_ref()
                ));
            }
            XmlEvent::Text(t) => value.push_str(&t.xml10_content()),
            XmlEvent::CData(t) => value.push_str(&t.xml10_content()),
            XmlEvent::GeneralRef(r) => {
                let name = r.xml10_content();
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| {
                            format!("host XML uses an unknown entity &{name}; near byte {at}")
                        })?
                        .to_owned(),
                    Err(e) => {
                        return Err(format!(
                            "host XML has a bad character reference near byte {at}: {e}"
                        ));
                    }
                };
                value.push_str(&resolved);
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(format!("host XML ends inside <{}>", path.join("><")));
    }
    info.name = name.ok_or("host XML has no /HOST/NAME")?;
    if info.name.is_empty() {
        return Err("host XML has an empty /HOST/NAME".into());
    }
    Ok(info)
}

fn take_value(
    path: &[String],
    text: &str,
    info: &mut HostInfo,
    name: &mut Option<String>,
) -> Result<(), String> {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["HOST", "ID"] => {
            info.id = Some(
                text.parse()
                    .map_err(|_| format!("/HOST/ID {text:?} is not a number"))?,
            );
        }
        ["HOST", "NAME"] => *name = Some(text.to_owned()),
        ["HOST", "STATE"] => {
            info.state = Some(
                text.parse()
                    .map_err(|_| format!("/HOST/STATE {text:?} is not a number"))?,
            );
        }
        ["HOST", "TEMPLATE", "FENCEGATE_HOST"] if !text.is_empty() => {
            info.mapped = Some(text.to_owned())
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("aGU=").unwrap(), b"he");
        assert_eq!(base64_decode("").unwrap(), b"");
        for bad in ["aGVsbG8", "aGV=bG8=", "aGVsbG8*", "a===", "aGVsbG8h===="] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_xml_fields() {
        let xml = br#"<HOST><ID>7</ID><NAME>node&#55;</NAME><STATE>3</STATE><TEMPLATE><FENCE_IP><![CDATA[10.0.0.7]]></FENCE_IP><FENCEGATE_HOST><![CDATA[rack1-n7]]></FENCEGATE_HOST></TEMPLATE><VMS><ID>12</ID></VMS></HOST>"#;
        let info = parse_host_xml(xml).unwrap();
        assert_eq!(
            info,
            HostInfo {
                id: Some(7),
                name: "node7".into(),
                state: Some(3),
                mapped: Some("rack1-n7".into())
            }
        );
    }

    #[test]
    fn malformed_xml_is_named() {
        assert!(
            parse_host_xml(b"<HOST><ID>1</ID><NAME>x</NAME>")
                .unwrap_err()
                .contains("ends inside")
        );
        assert!(
            parse_host_xml(b"<VM><NAME>x</NAME></VM>")
                .unwrap_err()
                .contains("<HOST>")
        );
        assert!(
            parse_host_xml(b"<HOST><ID>x</ID><NAME>n</NAME></HOST>")
                .unwrap_err()
                .contains("/HOST/ID")
        );
        assert!(
            parse_host_xml(b"<HOST><ID>1</ID></HOST>")
                .unwrap_err()
                .contains("NAME")
        );
        assert!(parse_host_xml(b"<HOST><NAME>a</NAME></HOSTX>").is_err());
    }
}
