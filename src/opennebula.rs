//! The OpenNebula front door: the `fence_host.sh` contract of host_error.rb.
//!
//! host_error.rb runs `fence_host.sh` with the failed host's XML, strict base64, on stdin, and
//! recovers the host's VMs elsewhere only if it exits 0. So: exit 0 only on a success verdict
//! (power verified off); anything else — bad input, unknown host, a guard, a failed or
//! interrupted fence — exits non-zero and the VMs stay where they are. stdout and stderr go to
//! host_error.log, so the verdict is one line.

use crate::cli::{Deadlines, Global};
use crate::error::CommandError;
use crate::exit;
use crate::setup::{self, Signals};
use fencegate_core::Request;
use fencegate_core::config::OpenNebulaFields;
// Text from the document (a tag name, a parser message quoting it) is printed unquoted
// through the one escaping function every human output uses.
use fencegate_core::proof::printable;
use quick_xml::events::Event as XmlEvent;
use std::io::Read;

/// The most stdin read (a host XML with a large template is a few hundred KiB).
const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// Host states in which fencing makes sense: ERROR (3) and the legacy MONITORING_ERROR (5).
const ERROR_STATES: &[u32] = &[3, 5];

/// What the hook tells us about the failed host. ID, NAME and STATE are required: OpenNebula
/// always sends them, and a document without one would drop a cross-check or the ERROR test.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// `/HOST/ID`, assigned by oned.
    pub id: u64,
    /// `/HOST/NAME`.
    pub name: String,
    /// `/HOST/STATE`.
    pub state: u32,
    /// `/HOST/TEMPLATE/FENCEGATE_HOST`: names the inventory host; must agree with the rest.
    pub mapped: Option<String>,
}

/// Run the door: read stdin, fence, print the verdict line, return the exit code.
pub async fn fence_host(
    global: &Global,
    deadlines: &Deadlines,
    any_state: bool,
) -> Result<u8, CommandError> {
    let info = read_stdin()?;
    if !ERROR_STATES.contains(&info.state) && !any_state {
        println!(
            "fencegate: host {} (ID {}) is in state {}, not ERROR: not fencing it (nothing was powered off)",
            shown(&info.name),
            info.id,
            info.state
        );
        return Ok(exit::REFUSED);
    }
    let registry = setup::registry();
    let inventory = setup::inventory(global, &registry, true)?
        .ok_or_else(|| CommandError::config("no inventory"))?;
    let host = inventory
        .host_for_opennebula(OpenNebulaFields {
            id: info.id,
            name: &info.name,
            mapped: info.mapped.as_deref(),
        })
        .map_err(|e| CommandError::input(format!("refused: {e}; nothing was powered off")))?;
    let host = setup::with_host_deadlines(host, deadlines)?;
    let engine = setup::engine(global, Some(&inventory), Signals::StopOperations).await?;
    let request = Request {
        requester: setup::requester(None, "opennebula host_error hook"),
        reason: format!(
            "OpenNebula host {} (ID {}) in state {}",
            shown(&info.name),
            info.id,
            info.state
        ),
        force: false,
        door: fencegate_core::proof::Door::Opennebula,
    };
    let proof = engine
        .fence(host, request)
        .await
        .map_err(|e| CommandError::internal(format!("{e}; the host is NOT reported fenced")))?;
    if global.json {
        crate::output::print_json(&proof);
    } else {
        println!("{}", proof.one_line());
    }
    Ok(exit::for_proof(&proof))
}

/// Read and decode what the hook sent on stdin, bounded by [`MAX_INPUT`].
fn read_stdin() -> Result<HostInfo, CommandError> {
    let mut raw = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut raw)
        .map_err(|e| CommandError::input(format!("stdin: cannot read: {e}")))?;
    if raw.len() as u64 > MAX_INPUT {
        return Err(CommandError::input(
            "stdin: more than 16 MiB; expected base64 host XML",
        ));
    }
    parse_input(&raw)
        .map_err(|e| CommandError::input(format!("stdin: {e}; nothing was powered off")))
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

/// The deepest element nesting accepted. OpenNebula's host document nests about six levels
/// (`/HOST/HOST_SHARE/NUMA_NODES/NODE/CORE`, template vectors); far deeper is not a host
/// document, and a bound keeps a hostile one from costing more than its size.
const MAX_DEPTH: usize = 64;

/// The longest ID, NAME, STATE or FENCEGATE_HOST accepted, in bytes: host names are at most
/// 255 bytes, and every message that echoes a field stays short for host_error.log.
const MAX_FIELD: usize = 255;

/// The fields read from the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Id,
    Name,
    State,
    Mapped,
}

impl Field {
    fn path(self) -> &'static str {
        match self {
            Field::Id => "/HOST/ID",
            Field::Name => "/HOST/NAME",
            Field::State => "/HOST/STATE",
            Field::Mapped => "/HOST/TEMPLATE/FENCEGATE_HOST",
        }
    }
}

/// Where the reader stands in the document. Everything the reader knows about the open
/// elements is this fixed-size value — a depth and which of the few interesting places we
/// are in — so every event costs the same at any depth: no path is kept or rebuilt, and
/// reading is linear in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    /// Open elements.
    depth: usize,
    /// Refuse to open more than this many.
    max_depth: usize,
    /// The `<HOST>` root has been opened (and, at depth 0, closed).
    seen_root: bool,
    /// The element open at depth 2 is `/HOST/TEMPLATE`.
    in_template: bool,
    /// The innermost open element is this field (fields hold only text).
    field: Option<Field>,
}

impl Cursor {
    fn new(max_depth: usize) -> Cursor {
        Cursor {
            depth: 0,
            max_depth,
            seen_root: false,
            in_template: false,
            field: None,
        }
    }

    /// A start tag (or the start of an empty element): which field it opens, if any.
    fn open(&mut self, name: &str) -> Result<Option<Field>, String> {
        let shown = printable(name);
        if let Some(field) = self.field {
            return Err(format!(
                "the text of {} is split by a child element <{shown}>",
                field.path()
            ));
        }
        if self.depth == 0 && self.seen_root {
            return Err(if name == "HOST" {
                "a second <HOST> follows the first: one host per document".into()
            } else {
                format!("an element <{shown}> follows after </HOST>: one host per document")
            });
        }
        if self.depth == 0 && name != "HOST" {
            return Err(format!("expected a <HOST> document, found <{shown}>"));
        }
        if self.depth > 0 && name == "HOST" {
            return Err("a second <HOST> inside the first: one host per document".into());
        }
        if self.depth >= self.max_depth {
            return Err(format!(
                "host XML is nested deeper than {} elements",
                self.max_depth
            ));
        }
        self.depth += 1;
        self.seen_root = true;
        self.field = match (self.depth, name) {
            (2, "ID") => Some(Field::Id),
            (2, "NAME") => Some(Field::Name),
            (2, "STATE") => Some(Field::State),
            (3, "FENCEGATE_HOST") if self.in_template => Some(Field::Mapped),
            _ => None,
        };
        if self.depth == 2 {
            self.in_template = name == "TEMPLATE";
        }
        Ok(self.field)
    }

    /// An end tag (quick-xml has checked that it matches): which field it closes, if any.
    fn close(&mut self) -> Result<Option<Field>, String> {
        if self.depth == 0 {
            return Err("an end tag without a start tag".into());
        }
        if self.depth == 2 {
            self.in_template = false;
        }
        self.depth -= 1;
        Ok(self.field.take())
    }

    /// Text, CDATA or a reference: whether it belongs to a field's value.
    fn text(&self, blank: bool) -> Result<bool, String> {
        if self.depth == 0 && !blank {
            return Err(if self.seen_root {
                "text follows after </HOST>".into()
            } else {
                "text before <HOST>".into()
            });
        }
        Ok(self.field.is_some())
    }

    /// A comment or processing instruction: harmless, except inside a field, where it would
    /// split the field's text into pieces that different readers join differently.
    fn markup(&self, what: &str) -> Result<(), String> {
        match self.field {
            Some(field) => Err(format!("the text of {} is split by {what}", field.path())),
            None => Ok(()),
        }
    }
}

/// Read ID, NAME, STATE and TEMPLATE/FENCEGATE_HOST from a `<HOST>` document, refusing any
/// document that could be read two ways: a second host, a field given twice or split by
/// markup, a missing or non-numeric ID or STATE.
pub fn parse_host_xml(xml: &[u8]) -> Result<HostInfo, String> {
    parse_host_xml_within(xml, MAX_DEPTH)
}

/// [`parse_host_xml`] with the depth bound as a parameter (tests lift it to show the
/// reader's cost does not grow with depth).
fn parse_host_xml_within(xml: &[u8], max_depth: usize) -> Result<HostInfo, String> {
    let text = std::str::from_utf8(xml).map_err(|_| "host XML is not UTF-8".to_owned())?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut cursor = Cursor::new(max_depth);
    // Each field's raw text once seen, and the text of the field being read, gathered across
    // text, CDATA and reference events.
    let mut seen: [Option<String>; 4] = Default::default();
    let mut value = String::new();
    let slot = |f: Field| match f {
        Field::Id => 0,
        Field::Name => 1,
        Field::State => 2,
        Field::Mapped => 3,
    };
    let mut finish = |field: Option<Field>, value: &mut String| -> Result<(), String> {
        if let Some(f) = field {
            let slot = &mut seen[slot(f)];
            if slot.is_some() {
                return Err(format!("{} appears twice", f.path()));
            }
            *slot = Some(std::mem::take(value));
        }
        Ok(())
    };
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            format!(
                "host XML is malformed near byte {at}: {}",
                printable(&e.to_string())
            )
        })?;
        let piece = match event {
            XmlEvent::Start(e) => {
                cursor.open(e.name().as_ref())?;
                value.clear();
                continue;
            }
            XmlEvent::Empty(e) => {
                cursor.open(e.name().as_ref())?;
                value.clear();
                let field = cursor.close()?;
                finish(field, &mut value)?;
                continue;
            }
            XmlEvent::End(_) => {
                let field = cursor.close()?;
                finish(field, &mut value)?;
                continue;
            }
            XmlEvent::Text(t) => {
                let t = t.xml10_content();
                let blank = t.trim().is_empty();
                if !cursor.text(blank)? {
                    continue;
                }
                t.into_owned()
            }
            XmlEvent::CData(t) => {
                if !cursor.text(false)? {
                    continue;
                }
                t.xml10_content().into_owned()
            }
            XmlEvent::GeneralRef(r) => {
                if !cursor.text(false)? {
                    continue;
                }
                let name = r.xml10_content();
                match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| {
                            format!(
                                "host XML uses an unknown entity &{}; near byte {at}",
                                printable(&name)
                            )
                        })?
                        .to_owned(),
                    Err(e) => {
                        return Err(format!(
                            "host XML has a bad character reference near byte {at}: {}",
                            printable(&e.to_string())
                        ));
                    }
                }
            }
            XmlEvent::Comment(_) => {
                cursor.markup("a comment")?;
                continue;
            }
            XmlEvent::PI(_) => {
                cursor.markup("a processing instruction")?;
                continue;
            }
            XmlEvent::Decl(_) if cursor.depth == 0 && !cursor.seen_root => continue,
            XmlEvent::Decl(_) => return Err("a misplaced XML declaration".into()),
            XmlEvent::DocType(_) => {
                return Err("host XML has a DOCTYPE; OpenNebula sends none".into());
            }
            XmlEvent::Eof => break,
        };
        value.push_str(&piece);
        // Bound the text gathered before trimming too (indentation is allowed around it).
        if value.len() > 2 * MAX_FIELD {
            let field = cursor.field.map_or("a field", Field::path);
            return Err(format!("{field} is longer than {MAX_FIELD} bytes"));
        }
    }
    if cursor.depth > 0 {
        return Err(format!(
            "host XML ends inside <HOST> ({} elements still open)",
            cursor.depth
        ));
    }
    if !cursor.seen_root {
        return Err("host XML has no <HOST> element".into());
    }
    let [id, name, state, mapped] = seen.map(|v| v.map(|v| v.trim().to_owned()));
    let required = |v: Option<String>, f: Field| -> Result<String, String> {
        let v = v.ok_or_else(|| format!("host XML has no {}", f.path()))?;
        if v.is_empty() {
            return Err(format!("{} is empty", f.path()));
        }
        if v.len() > MAX_FIELD {
            return Err(format!("{} is longer than {MAX_FIELD} bytes", f.path()));
        }
        Ok(v)
    };
    let number = |v: String, f: Field| -> Result<u64, String> {
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{} {} is not a number", f.path(), shown(&v)));
        }
        v.parse()
            .map_err(|_| format!("{} {} is out of range", f.path(), shown(&v)))
    };
    let id = number(required(id, Field::Id)?, Field::Id)?;
    let name = required(name, Field::Name)?;
    let state = number(required(state, Field::State)?, Field::State)?;
    let state = u32::try_from(state)
        .map_err(|_| format!("{} {state} is out of range", Field::State.path()))?;
    let mapped = match mapped {
        // An emptied attribute is how a template mapping is removed: no mapping.
        Some(m) if m.is_empty() => None,
        Some(m) => Some(required(Some(m), Field::Mapped)?),
        None => None,
    };
    Ok(HostInfo {
        id,
        name,
        state,
        mapped,
    })
}

/// A field value as it may appear in a message: quoted, with control characters, line and
/// paragraph separators and bidirectional overrides escaped (Rust's `{:?}`), so a hostile
/// NAME cannot forge a line of host_error.log or hide text on a terminal.
pub fn shown(value: &str) -> String {
    format!("{value:?}")
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
        let xml = br#"<?xml version="1.0"?><HOST><ID>7</ID><NAME>node&#55;</NAME><STATE>3</STATE><TEMPLATE><FENCE_IP><![CDATA[10.0.0.7]]></FENCE_IP><FENCEGATE_HOST><![CDATA[rack1-n7]]></FENCEGATE_HOST></TEMPLATE><VMS><ID>12</ID><ID>13</ID></VMS><!-- done --></HOST>"#;
        let info = parse_host_xml(xml).unwrap();
        assert_eq!(
            info,
            HostInfo {
                id: 7,
                name: "node7".into(),
                state: 3,
                mapped: Some("rack1-n7".into())
            }
        );
        // Text, CDATA and references join into one value; indentation is trimmed; an emptied
        // mapping is no mapping; FENCEGATE_HOST outside the template is not a mapping.
        let xml = b"<HOST>\n <ID> 7 </ID>\n <NAME>kvm<![CDATA[-0]]>&#49;</NAME>\n <STATE>\n  3\n </STATE>\n <FENCEGATE_HOST>x</FENCEGATE_HOST><TEMPLATE><FENCEGATE_HOST/><X><FENCEGATE_HOST>y</FENCEGATE_HOST></X></TEMPLATE></HOST>\n";
        let info = parse_host_xml(xml).unwrap();
        assert_eq!(
            info,
            HostInfo {
                id: 7,
                name: "kvm-01".into(),
                state: 3,
                mapped: None
            }
        );
    }

    #[test]
    fn malformed_xml_is_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"<HOST><ID>1</ID><NAME>x</NAME>", "ends inside"),
            (b"<VM><NAME>x</NAME></VM>", "<HOST>"),
            (
                b"<HOST><ID>x</ID><NAME>n</NAME><STATE>3</STATE></HOST>",
                "/HOST/ID",
            ),
            (b"<HOST><ID>1</ID><STATE>3</STATE></HOST>", "no /HOST/NAME"),
            (
                b"<HOST><ID>1</ID><NAME> </NAME><STATE>3</STATE></HOST>",
                "/HOST/NAME is empty",
            ),
            (b"<HOST><NAME>a</NAME></HOSTX>", "malformed"),
            (b"", "no <HOST>"),
            (b"junk<HOST/>", "text before <HOST>"),
            (b"<!DOCTYPE HOST [<!ENTITY a 'b'>]><HOST/>", "DOCTYPE"),
            (
                b"<HOST><ID>1</ID><NAME>a</NAME><STATE>-3</STATE></HOST>",
                "not a number",
            ),
            (
                b"<HOST><ID>1</ID><NAME>a</NAME><STATE>99999999999</STATE></HOST>",
                "out of range",
            ),
            (
                b"<HOST><ID>1</ID><NAME>a&bogus;</NAME><STATE>3</STATE></HOST>",
                "unknown entity",
            ),
            (
                b"<HOST><ID>1</ID><NAME>a</NAME><STATE>3</STATE></HOST>tail",
                "text follows",
            ),
            (
                b"<HOST><ID>1</ID><NAME>a<?pi x?>b</NAME><STATE>3</STATE></HOST>",
                "processing instruction",
            ),
        ];
        for (xml, message) in cases {
            let err = parse_host_xml(xml).unwrap_err();
            assert!(
                err.contains(message),
                "{}: {err}",
                String::from_utf8_lossy(xml)
            );
        }
    }

    #[test]
    fn a_field_longer_than_a_host_name_is_refused() {
        let long = "a".repeat(MAX_FIELD + 1);
        let xml = format!("<HOST><ID>1</ID><NAME>{long}</NAME><STATE>3</STATE></HOST>");
        let err = parse_host_xml(xml.as_bytes()).unwrap_err();
        assert!(err.contains("longer than 255 bytes"), "{err}");
        assert!(!err.contains(&long));
        let huge = "a".repeat(1 << 20);
        let xml = format!("<HOST><ID>1</ID><NAME>{huge}</NAME><STATE>3</STATE></HOST>");
        assert!(parse_host_xml(xml.as_bytes()).unwrap_err().len() < 200);
    }

    #[test]
    fn messages_escape_control_characters() {
        let s = shown("kvm\n01\r\u{1b}[2K\u{85}\u{2028}\u{202e}");
        assert!(!s.chars().any(|c| c.is_control()), "{s}");
        assert!(!s.contains('\u{2028}') && !s.contains('\u{202e}'), "{s}");
        let err = parse_host_xml(b"<HOST><ID>1\n2</ID><NAME>a</NAME><STATE>3</STATE></HOST>")
            .unwrap_err();
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    /// Resolve an OpenNebula document's fields against an inventory whose hosts are
    /// `(name, aliases, opennebula_id)`; a host named `broken*` has a device that cannot be
    /// built. The answer is the chosen host's name or the refusal.
    fn lookup(
        hosts: &[(&str, &[&str], Option<u64>)],
        id: u64,
        name: &str,
        mapped: Option<&str>,
    ) -> Result<String, String> {
        let driver = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/plugins-example/scripted-driver/scripted-driver"
        );
        let mut toml = String::new();
        for (host, aliases, one_id) in hosts {
            let device = if host.starts_with("broken") {
                "driver = \"no-such-driver\"\naddress = \"x\"\n".to_owned()
            } else {
                format!("driver = \"external\"\naddress = \"{driver}\"\nstate_file = \"unused\"\n")
            };
            toml.push_str(&format!("[devices.{host}-bmc]\n{device}\n[hosts.{host}]\nlevels = [[\"{host}-bmc\"]]\naliases = {aliases:?}\n"));
            if let Some(i) = one_id {
                toml.push_str(&format!("opennebula_id = {i}\n"));
            }
        }
        let inventory = fencegate_core::Inventory::parse(
            &toml,
            std::path::Path::new("fencegate.toml"),
            &crate::setup::registry(),
        )
        .map_err(|e| format!("inventory refused: {e}"))?;
        inventory
            .host_for_opennebula(OpenNebulaFields { id, name, mapped })
            .map(|h| h.name.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_inventory_decides_which_host_a_document_is_about() {
        let ids: &[(&str, &[&str], Option<u64>)] = &[
            ("kvmA", &["kvm-a.example"], Some(3)),
            ("kvmB", &[], Some(4)),
        ];
        // Everything that resolves agrees.
        assert_eq!(lookup(ids, 3, "kvmA", None), Ok("kvmA".into()));
        assert_eq!(
            lookup(ids, 3, "kvm-a.example", Some("kvmA")),
            Ok("kvmA".into())
        );
        assert_eq!(lookup(ids, 3, "renamed-in-one", None), Ok("kvmA".into()));
        assert_eq!(
            lookup(ids, 3, "renamed", Some("kvm-a.example")),
            Ok("kvmA".into())
        );
        // Wrong box: the ID is kvmB's, the NAME kvmA's.
        let e = lookup(ids, 4, "kvmA", None).unwrap_err();
        assert!(e.contains("disagree"), "{e}");
        assert!(e.contains(r#"ID 4 -> host "kvmB""#), "{e}");
        assert!(e.contains(r#"NAME "kvmA" -> host "kvmA""#), "{e}");
        // Wrong box: the template points elsewhere.
        let e = lookup(ids, 3, "kvmA", Some("kvmB")).unwrap_err();
        assert!(e.contains(r#"FENCEGATE_HOST "kvmB" -> host "kvmB""#), "{e}");
        // An ID no host claims does not combine with the NAME of a host that has another.
        let e = lookup(ids, 9, "kvmA", None).unwrap_err();
        assert!(e.contains("ID 9 -> no host has opennebula_id = 9"), "{e}");
        assert!(e.contains(r#"host "kvmA" has opennebula_id = 3"#), "{e}");
        let e = lookup(ids, 9, "other", Some("kvmB")).unwrap_err();
        assert!(e.contains(r#"host "kvmB" has opennebula_id = 4"#), "{e}");
        // An explicit mapping that names nothing refuses, even when the rest agrees.
        let e = lookup(ids, 3, "kvmA", Some("kvmZ")).unwrap_err();
        assert!(
            e.contains(r#"FENCEGATE_HOST "kvmZ" names no inventory host"#),
            "{e}"
        );
        // Nothing resolves.
        let e = lookup(ids, 9, "kvmZ", None).unwrap_err();
        assert!(e.contains("no host in fencegate.toml matches"), "{e}");
        assert!(
            e.contains(r#"NAME "kvmZ" -> no host is named or aliased "kvmZ""#),
            "{e}"
        );
    }

    #[test]
    fn without_ids_the_names_decide_unless_a_broken_entry_might_claim_the_id() {
        let no_ids: &[(&str, &[&str], Option<u64>)] = &[("kvmA", &[], None), ("kvmB", &[], None)];
        assert_eq!(lookup(no_ids, 9, "kvmA", None), Ok("kvmA".into()));
        assert_eq!(lookup(no_ids, 9, "other", Some("kvmA")), Ok("kvmA".into()));
        assert!(lookup(no_ids, 9, "kvmA", Some("kvmB")).is_err());
        // Some hosts with IDs, the named one without: nothing contradicts the name.
        let mixed: &[(&str, &[&str], Option<u64>)] = &[("kvmA", &[], None), ("kvmB", &[], Some(4))];
        assert_eq!(lookup(mixed, 9, "kvmA", None), Ok("kvmA".into()));
        // A broken entry's opennebula_id cannot be read: it might be ID 9.
        let broken: &[(&str, &[&str], Option<u64>)] =
            &[("kvmA", &[], None), ("broken1", &[], Some(9))];
        let e = lookup(broken, 9, "kvmA", None).unwrap_err();
        assert!(e.contains(r#"set opennebula_id = 9 on host "kvmA""#), "{e}");
        assert!(
            e.contains(r#"broken host entries, whose IDs cannot be read: "broken1""#),
            "{e}"
        );
        // Naming the broken host itself refuses with its configuration error.
        let e = lookup(broken, 9, "broken1", None).unwrap_err();
        assert!(
            e.contains(r#"NAME "broken1" -> host "broken1", whose entry is broken"#),
            "{e}"
        );
        // A host with its own ID is unaffected by a broken neighbour.
        let pinned: &[(&str, &[&str], Option<u64>)] =
            &[("kvmA", &[], Some(3)), ("broken1", &[], None)];
        assert_eq!(lookup(pinned, 3, "kvmA", None), Ok("kvmA".into()));
    }

    #[test]
    fn a_field_matching_several_hosts_refuses() {
        // The inventory itself refuses one alias or one ID for two hosts, so the door never
        // has to guess between them.
        let shared_alias: &[(&str, &[&str], Option<u64>)] = &[
            ("kvmA", &["shared"], Some(3)),
            ("kvmB", &["shared"], Some(4)),
        ];
        let e = lookup(shared_alias, 7, "shared", None).unwrap_err();
        assert!(
            e.contains("inventory refused") && e.contains("already names host"),
            "{e}"
        );
        let shared_id: &[(&str, &[&str], Option<u64>)] =
            &[("kvmA", &[], Some(3)), ("kvmB", &[], Some(3))];
        let e = lookup(shared_id, 3, "kvmA", None).unwrap_err();
        assert!(e.contains("OpenNebula host ID 3 is already mapped"), "{e}");
    }

    #[test]
    fn a_refusal_escapes_what_it_echoes() {
        let hosts: &[(&str, &[&str], Option<u64>)] = &[("kvmA", &[], Some(3))];
        let e = lookup(
            hosts,
            9,
            "x\nfencegate: fence kvmA: power_verified_off\u{1b}[2K",
            None,
        )
        .unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(!e.chars().any(char::is_control), "{e}");
    }

    /// A document nesting `depth` elements inside the template.
    fn nested(depth: usize) -> String {
        format!(
            "<HOST><ID>1</ID><NAME>n</NAME><STATE>3</STATE><TEMPLATE>{}{}</TEMPLATE></HOST>",
            "<A>".repeat(depth),
            "</A>".repeat(depth)
        )
    }

    #[test]
    fn the_reader_state_does_not_grow_with_depth() {
        // The reader's whole knowledge of the open elements is a `Cursor`: a `Copy` value of
        // fixed size, so no event can cost more at depth 100,000 than at depth 3.
        fn is_copy<T: Copy>(_: &T) {}
        let mut cursor = Cursor::new(usize::MAX);
        is_copy(&cursor);
        cursor.open("HOST").unwrap();
        cursor.open("TEMPLATE").unwrap();
        let shallow = {
            let mut c = cursor;
            c.open("A").unwrap();
            c
        };
        for _ in 0..100_001 {
            assert_eq!(cursor.open("A").unwrap(), None);
        }
        // At depth 3 and at depth 100,003 the same events do the same thing, and the two
        // states differ only by the depth counter.
        for c in [shallow, cursor] {
            let mut c = c;
            let before = c;
            assert_eq!(c.open("FENCEGATE_HOST").unwrap(), None);
            assert_eq!(c.text(false), Ok(false));
            assert_eq!(c.close(), Ok(None));
            assert_eq!(c, before);
        }
        assert_eq!(
            Cursor {
                depth: shallow.depth,
                ..cursor
            },
            shallow
        );
    }

    #[test]
    fn deep_nesting_is_linear_and_bounded() {
        let xml = nested(200_000);
        let started = std::time::Instant::now();
        // With the bound lifted the whole document is read (the old reader took minutes:
        // it rebuilt the element path at every end tag)...
        let info = parse_host_xml_within(xml.as_bytes(), usize::MAX).unwrap();
        assert_eq!(info.name, "n");
        // ...and with the bound it is refused at the first element too deep.
        let err = parse_host_xml(xml.as_bytes()).unwrap_err();
        assert!(err.contains("nested deeper than 64"), "{err}");
        // Generous: this is a guard against quadratic time, not a benchmark.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(parse_host_xml(nested(MAX_DEPTH - 2).as_bytes()).is_ok());
        assert!(parse_host_xml(nested(MAX_DEPTH - 1).as_bytes()).is_err());
    }

    /// A small deterministic generator (xorshift64*) for the property tests below.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// Escaped as XML text.
    fn escaped(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    /// `text` written as XML content in one of the ways OpenNebula or a hand-edited document
    /// may write it: escaped, CDATA, split across text and CDATA, or character references.
    fn encode(rng: &mut Rng, text: &str) -> String {
        match rng.below(4) {
            0 => escaped(text),
            1 => format!("<![CDATA[{text}]]>"),
            2 => {
                let cut = rng.below(text.len() + 1);
                let cut = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap();
                format!("{}<![CDATA[{}]]>", escaped(&text[..cut]), &text[cut..])
            }
            _ => text.chars().map(|c| format!("&#{};", c as u32)).collect(),
        }
    }

    /// An element that is none of the fields, possibly nested, possibly holding VM IDs.
    fn noise(rng: &mut Rng, depth: usize) -> String {
        let tag = rng.pick(&["CLUSTER", "VMS", "HOST_SHARE", "ID_X", "NAMES", "PCI"]);
        match rng.below(if depth > 4 { 2 } else { 4 }) {
            0 => format!("<{tag}/>"),
            1 => format!("<{tag}>{}</{tag}>", encode(rng, "v < 1")),
            2 => format!("<{tag}><ID>{}</ID><!-- c --></{tag}>", rng.below(50)),
            _ => format!(
                "<{tag}>{}{}</{tag}>",
                noise(rng, depth + 1),
                noise(rng, depth + 1)
            ),
        }
    }

    /// A well-formed host document with shuffled children: the text and the fields it holds.
    fn document(rng: &mut Rng) -> (String, HostInfo) {
        let names = ["kvm01", "node 7", "rack1-n7.example", "kvm<&>\"'", "ünï"];
        let info = HostInfo {
            id: rng.next() % 100_000,
            name: rng.pick(&names).to_owned(),
            state: rng.below(9) as u32,
            mapped: (rng.below(2) == 0).then(|| rng.pick(&names).to_owned()),
        };
        let mut template = vec![noise(rng, 2), noise(rng, 2)];
        if let Some(m) = &info.mapped {
            template.insert(
                rng.below(3),
                format!("<FENCEGATE_HOST>{}</FENCEGATE_HOST>", encode(rng, m)),
            );
        }
        let mut children = [
            format!("<ID>{}</ID>", encode(rng, &info.id.to_string())),
            format!("<NAME>{}</NAME>", encode(rng, &info.name)),
            format!("<STATE>{}</STATE>", encode(rng, &info.state.to_string())),
            format!("<TEMPLATE>{}</TEMPLATE>", template.concat()),
            noise(rng, 1),
            noise(rng, 1),
        ];
        for i in (1..children.len()).rev() {
            children.swap(i, rng.below(i + 1));
        }
        (format!("<HOST>{}</HOST>", children.concat()), info)
    }

    #[test]
    fn property_well_formed_documents_read_exactly_their_fields() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            let (xml, want) = document(&mut rng);
            match parse_host_xml(xml.as_bytes()) {
                Ok(got) => assert_eq!(got, want, "case {case}: {xml}"),
                Err(e) => panic!("case {case}: {e}: {xml}"),
            }
        }
    }

    #[test]
    fn property_an_ambiguous_document_is_always_refused() {
        // Every way of making a valid document say two things must refuse, wherever the
        // second statement lands.
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..3000 {
            let (xml, _) = document(&mut rng);
            let body = &xml["<HOST>".len()..xml.len() - "</HOST>".len()];
            let forged = match rng.below(7) {
                0 => format!("<HOST>{body}<ID>9</ID></HOST>"),
                1 => format!("<HOST><NAME>other</NAME>{body}</HOST>"),
                2 => format!("<HOST>{body}<STATE>3</STATE></HOST>"),
                3 => format!(
                    "<HOST>{body}<TEMPLATE><FENCEGATE_HOST>a</FENCEGATE_HOST><FENCEGATE_HOST>b</FENCEGATE_HOST></TEMPLATE></HOST>"
                ),
                4 => format!("{xml}<HOST>{body}</HOST>"),
                5 => format!("<HOST>{body}<VMS><HOST>{body}</HOST></VMS></HOST>"),
                _ => xml.replacen("</NAME>", "<B/>x</NAME>", 1),
            };
            assert!(
                parse_host_xml(forged.as_bytes()).is_err(),
                "case {case}: {forged}"
            );
        }
    }

    #[test]
    fn property_arbitrary_bytes_never_panic_and_refuse_cleanly() {
        // Mutations of valid documents (byte flips, cuts, splices) and raw noise: the reader
        // answers Ok with the three required fields, or a one-line error, and never panics.
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for case in 0..5000 {
            let (xml, _) = document(&mut rng);
            let mut bytes = xml.into_bytes();
            for _ in 0..=rng.below(4) {
                let i = rng.below(bytes.len());
                match rng.below(4) {
                    0 => {
                        let specials = b"<>/&;![]-\n\0A3";
                        bytes[i] = specials[rng.below(specials.len())];
                    }
                    1 => bytes.truncate(i),
                    2 => {
                        let j = rng.below(bytes.len());
                        let piece = bytes[i.min(j)..i.max(j)].to_vec();
                        bytes.splice(i..i, piece);
                    }
                    _ => bytes[i] = rng.next() as u8,
                }
                if bytes.is_empty() {
                    break;
                }
            }
            match parse_host_xml(&bytes) {
                Ok(info) => {
                    assert!(!info.name.trim().is_empty(), "case {case}");
                    assert!(info.name.len() <= MAX_FIELD, "case {case}");
                }
                Err(e) => assert!(!e.chars().any(char::is_control), "case {case}: {e}"),
            }
        }
    }
}
