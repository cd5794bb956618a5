//! The inventory: one TOML file of devices, hosts (levels of devices) and policy.
//!
//! Every error names the file, the line and the key, because the person reading it is an
//! operator at 3 a.m. with a host in ERROR. Structural errors refuse the whole file; a device
//! that cannot be built (a missing secret, a bad option) only disables the hosts that use it,
//! so one broken BMC entry cannot stop the fencing of every other host.

use crate::policy::Policy;
use crate::registry::Registry;
use crate::secrets::{SecretRef, is_secret_role};
use crate::topology::{Device, Host};
use fencegate_driver::DeviceSpec;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// A configuration problem, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file concerned.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key concerned (`devices.bmc1.cipher`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The loaded inventory.
#[derive(Debug)]
pub struct Inventory {
    /// Where it was read from.
    pub path: PathBuf,
    /// The journal directory named by the file, if any.
    pub state_dir: Option<PathBuf>,
    /// Policy defaults (each host's effective policy is in its [`Host`]).
    pub policy: Policy,
    /// Devices by name, or why each could not be built.
    pub devices: BTreeMap<String, Result<Arc<Device>, ConfigError>>,
    /// Hosts by name, or why each is unusable.
    pub hosts: BTreeMap<String, Result<Arc<Host>, ConfigError>>,
}

/// Why a host could not be found or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No host by that name, alias or ID.
    #[error("no host named {0:?} in {1}")]
    Unknown(String, String),
    /// The host exists but its configuration is broken.
    #[error("host {0:?} cannot be used: {1}")]
    Broken(String, ConfigError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<String>,
    policy: Option<Spanned<toml::Table>>,
    #[serde(default)]
    devices: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    hosts: BTreeMap<String, Spanned<RawHost>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    levels: Vec<Vec<String>>,
    #[serde(default)]
    aliases: Vec<String>,
    opennebula_id: Option<u64>,
    policy: Option<toml::Table>,
}

/// Keys of a device table that are not driver options.
const DEVICE_KEYS: &[&str] = &["driver", "address", "user", "path"];

impl Inventory {
    /// Read and check the inventory at `path`, building drivers from `registry`.
    pub fn load(path: &Path, registry: &Registry) -> Result<Inventory, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path, registry)
    }

    /// Check and build an inventory from its text (`path` is used for messages and for
    /// relative secret files).
    pub fn parse(text: &str, path: &Path, registry: &Registry) -> Result<Inventory, ConfigError> {
        let loc = Locator { text, file: path };
        let digest = crate::identity::digest(text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| loc.toml_error(&e))?;
        let base = path.parent().map(Path::to_owned);

        let policy = match &raw.policy {
            Some(table) => overlay_policy(&Policy::default(), table.get_ref())
                .map_err(|(key, msg)| loc.at(table.span(), &format!("policy.{key}"), &key, msg))?,
            None => Policy::default(),
        };

        let mut devices = BTreeMap::new();
        for (name, table) in &raw.devices {
            let built = build_device(name, table.get_ref(), base.as_deref(), registry).map_err(
                |(key, msg)| loc.at(table.span(), &format!("devices.{name}.{key}"), &key, msg),
            );
            devices.insert(name.clone(), built);
        }

        let mut hosts = BTreeMap::new();
        for (name, host) in &raw.hosts {
            let span = host.span();
            let raw_host = host.get_ref();
            if raw_host.levels.is_empty() || raw_host.levels.iter().any(Vec::is_empty) {
                return Err(loc.at(
                    span,
                    &format!("hosts.{name}.levels"),
                    "levels",
                    "every host needs at least one level, and no level may be empty".into(),
                ));
            }
            let policy = match &raw_host.policy {
                Some(table) => overlay_policy(&policy, table).map_err(|(key, msg)| {
                    loc.at(
                        span.clone(),
                        &format!("hosts.{name}.policy.{key}"),
                        &key,
                        msg,
                    )
                })?,
                None => policy.clone(),
            };
            let mut levels = Vec::new();
            let mut broken = None;
            for level in &raw_host.levels {
                let mut resolved = Vec::new();
                for dev in level {
                    match devices.get(dev) {
                        None => {
                            return Err(loc.at(
                                span.clone(),
                                &format!("hosts.{name}.levels"),
                                "levels",
                                format!("device {dev:?} is not defined under [devices]"),
                            ));
                        }
                        Some(Ok(d)) => resolved.push(Arc::clone(d)),
                        Some(Err(e)) => {
                            broken.get_or_insert_with(|| e.clone());
                        }
                    }
                }
                levels.push(resolved);
            }
            let entry = match broken {
                Some(e) => Err(e),
                None => Ok(Arc::new(Host {
                    name: name.clone(),
                    aliases: raw_host.aliases.clone(),
                    opennebula_id: raw_host.opennebula_id,
                    levels,
                    policy,
                    inventory: Some(digest.clone()),
                })),
            };
            hosts.insert(name.clone(), entry);
        }

        // One name, alias or OpenNebula ID must lead to one host: otherwise a front door
        // cannot know which box a request is about.
        let mut claimed: BTreeMap<String, &str> = BTreeMap::new();
        let mut ids: BTreeMap<u64, &str> = BTreeMap::new();
        for (name, host) in &raw.hosts {
            let raw_host = host.get_ref();
            let names = std::iter::once(name).chain(raw_host.aliases.iter());
            for n in names {
                if let Some(other) = claimed.insert(n.clone(), name)
                    && other != name
                {
                    return Err(loc.at(
                        host.span(),
                        &format!("hosts.{name}.aliases"),
                        "aliases",
                        format!(
                            "{n:?} already names host {other:?}: one name must lead to one host"
                        ),
                    ));
                }
            }
            if let Some(id) = raw_host.opennebula_id
                && let Some(other) = ids.insert(id, name)
            {
                return Err(loc.at(
                    host.span(),
                    &format!("hosts.{name}.opennebula_id"),
                    "opennebula_id",
                    format!("OpenNebula host ID {id} is already mapped to host {other:?}: one ID must lead to one host"),
                ));
            }
        }

        Ok(Inventory {
            path: path.to_owned(),
            state_dir: raw.state_dir.map(|s| match &base {
                Some(b) if Path::new(&s).is_relative() => b.join(s),
                _ => PathBuf::from(s),
            }),
            policy,
            devices,
            hosts,
        })
    }

    /// Every device or host that cannot be used, for `fencegate check`.
    pub fn problems(&self) -> Vec<&ConfigError> {
        let mut out: Vec<&ConfigError> = self
            .devices
            .values()
            .filter_map(|d| d.as_ref().err())
            .collect();
        for e in self.hosts.values().filter_map(|h| h.as_ref().err()) {
            if !out.contains(&e) {
                out.push(e);
            }
        }
        out
    }

    /// Find a host by name or alias.
    pub fn host(&self, name: &str) -> Result<Arc<Host>, LookupError> {
        if let Some(entry) = self.hosts.get(name) {
            return entry
                .clone()
                .map_err(|e| LookupError::Broken(name.to_owned(), e));
        }
        for entry in self.hosts.values() {
            if let Ok(h) = entry
                && h.answers_to(name)
            {
                return Ok(Arc::clone(h));
            }
        }
        Err(LookupError::Unknown(
            name.to_owned(),
            self.path.display().to_string(),
        ))
    }

    /// Find the host an OpenNebula host document is about, with the inventory as the
    /// authority. Each field that can name a host is resolved on its own — `/HOST/ID` through
    /// `opennebula_id`, `/HOST/NAME` through names and aliases, the template's
    /// `FENCEGATE_HOST` (when present and not empty) through names and aliases — and the
    /// answer is the one host they all agree on. Anyone who can edit a host template, or the
    /// host's own monitoring probes that merge into it, must not be able to point the fence
    /// at another machine while the failed one keeps running; so a disagreement refuses.
    ///
    /// The rule, in full:
    /// - every field that resolves must resolve to the same host, and at least one must;
    /// - a `FENCEGATE_HOST` that names no inventory host refuses (an explicit mapping that
    ///   points nowhere is a mistake to surface, not a field to skip);
    /// - a field matching several hosts, or a host whose entry is broken, refuses;
    /// - the chosen host's `opennebula_id`, when set, must equal `/HOST/ID`: an ID that no
    ///   host claims does not combine with the NAME of a host the inventory gives another
    ///   ID;
    /// - when the chosen host has no `opennebula_id` (an inventory without IDs), an ID no
    ///   host claims is accepted — unless some host entry is broken: its `opennebula_id`
    ///   cannot be read, so it might be the one claiming this ID, and the door refuses
    ///   rather than guess.
    pub fn host_for_opennebula(
        &self,
        fields: OpenNebulaFields<'_>,
    ) -> Result<Arc<Host>, OpenNebulaMismatch> {
        let by_id: Vec<&Arc<Host>> = self
            .hosts
            .values()
            .filter_map(|entry| entry.as_ref().ok())
            .filter(|h| h.opennebula_id == Some(fields.id))
            .collect();
        let by_name = |name: &str| -> Result<Vec<&Arc<Host>>, String> {
            if let Some(Err(e)) = self.hosts.get(name) {
                return Err(format!("host {name:?}, whose entry is broken: {e}"));
            }
            Ok(self
                .hosts
                .values()
                .filter_map(|entry| entry.as_ref().ok())
                .filter(|h| h.answers_to(name))
                .collect())
        };
        // Each field as sent, and the host it resolved to (None: no host).
        let mut resolved: Vec<(String, Option<Arc<Host>>)> = Vec::new();
        let mut lines: Vec<String> = Vec::new();
        let mut problem: Option<String> = None;
        let mut note = |field: String, hits: Result<Vec<&Arc<Host>>, String>, what: &str| {
            let hit = match hits {
                Err(broken) => {
                    lines.push(format!("{field} -> {broken}"));
                    problem
                        .get_or_insert_with(|| format!("{field} names a host that cannot be used"));
                    None
                }
                Ok(hits) => match hits.as_slice() {
                    [] => {
                        lines.push(format!("{field} -> no host {what}"));
                        None
                    }
                    [h] => {
                        lines.push(format!("{field} -> host {:?}", h.name));
                        Some(Arc::clone(h))
                    }
                    many => {
                        let names: Vec<String> =
                            many.iter().map(|h| format!("{:?}", h.name)).collect();
                        lines.push(format!("{field} -> hosts {}", names.join(", ")));
                        problem.get_or_insert_with(|| {
                            format!("{field} matches several inventory hosts")
                        });
                        None
                    }
                },
            };
            (field, hit)
        };
        let id_field = format!("ID {}", fields.id);
        let id_hit = note(
            id_field,
            Ok(by_id),
            &format!("has opennebula_id = {}", fields.id),
        );
        let name_field = format!("NAME {:?}", fields.name);
        let name_hit = note(
            name_field,
            by_name(fields.name),
            &format!("is named or aliased {:?}", fields.name),
        );
        let mapped_hit = fields.mapped.map(|m| {
            note(
                format!("FENCEGATE_HOST {m:?}"),
                by_name(m),
                &format!("is named or aliased {m:?}"),
            )
        });
        if let Some((field, None)) = &mapped_hit
            && problem.is_none()
        {
            problem = Some(format!("{field} names no inventory host"));
        }
        let id_claimed = id_hit.1.is_some();
        resolved.push(id_hit);
        resolved.push(name_hit);
        resolved.extend(mapped_hit);
        let refuse = |problem: String, lines: &[String]| OpenNebulaMismatch {
            problem,
            resolved: lines.to_vec(),
        };
        if let Some(p) = problem {
            return Err(refuse(p, &lines));
        }
        let mut chosen: Option<Arc<Host>> = None;
        for (_, hit) in &resolved {
            match (hit, &chosen) {
                (Some(h), None) => chosen = Some(Arc::clone(h)),
                (Some(h), Some(c)) if h.name != c.name => {
                    return Err(refuse(
                        "the host document's fields disagree about which inventory host it is"
                            .into(),
                        &lines,
                    ));
                }
                _ => {}
            }
        }
        let host = chosen.ok_or_else(|| {
            refuse(
                format!(
                    "no host in {} matches the host document",
                    self.path.display()
                ),
                &lines,
            )
        })?;
        match host.opennebula_id {
            Some(own) if own != fields.id => {
                lines.push(format!("host {:?} has opennebula_id = {own}", host.name));
                Err(refuse(
                    format!(
                        "the document's ID {} is not host {:?}'s OpenNebula ID",
                        fields.id, host.name
                    ),
                    &lines,
                ))
            }
            None if !id_claimed => {
                let broken: Vec<String> = self
                    .hosts
                    .iter()
                    .filter(|(_, entry)| entry.is_err())
                    .map(|(name, _)| format!("{name:?}"))
                    .collect();
                if broken.is_empty() {
                    Ok(host)
                } else {
                    lines.push(format!(
                        "broken host entries, whose IDs cannot be read: {}",
                        broken.join(", ")
                    ));
                    Err(refuse(
                        format!(
                            "no usable host claims ID {} and a broken entry might; set opennebula_id = {} on host {:?} or fix the broken entries",
                            fields.id, fields.id, host.name
                        ),
                        &lines,
                    ))
                }
            }
            _ => Ok(host),
        }
    }
}

/// The fields of an OpenNebula host document that can name an inventory host, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenNebulaFields<'a> {
    /// `/HOST/ID`: assigned by oned, matched against `opennebula_id`.
    pub id: u64,
    /// `/HOST/NAME`: matched against host names and aliases.
    pub name: &'a str,
    /// `/HOST/TEMPLATE/FENCEGATE_HOST`: matched against names and aliases. Editable by
    /// whoever edits the host template, so it can only confirm, never override.
    pub mapped: Option<&'a str>,
}

/// Why an OpenNebula host document does not lead to exactly one inventory host: the problem
/// and what each field resolved to, so the operator sees which fields disagree. Field values
/// are shown with `{:?}`, which escapes control characters: the message goes to a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} ({})", .resolved.join("; "))]
pub struct OpenNebulaMismatch {
    /// What is wrong, in one clause.
    pub problem: String,
    /// Each field as sent and what it resolved to, e.g. `NAME "kvm01" -> host "kvm01"`.
    pub resolved: Vec<String>,
}

/// Build one device: split its table into spec fields, options and secret references.
fn build_device(
    name: &str,
    table: &toml::Table,
    base: Option<&Path>,
    registry: &Registry,
) -> Result<Arc<Device>, (String, String)> {
    let text_of = |key: &str| -> Result<Option<String>, (String, String)> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err((
                key.into(),
                format!("must be a string, not {}", other.type_str()),
            )),
        }
    };
    let driver = text_of("driver")?.ok_or(("driver".to_owned(), "is required".to_owned()))?;
    let address = text_of("address")?.ok_or(("address".to_owned(), "is required".to_owned()))?;
    let address = program_address(&driver, address, base);
    let mut spec = DeviceSpec {
        name: name.to_owned(),
        driver,
        address,
        user: text_of("user")?,
        path: text_of("path")?,
        ..DeviceSpec::default()
    };
    for (key, value) in table {
        if DEVICE_KEYS.contains(&key.as_str()) {
            continue;
        }
        let text = option_text(value).ok_or((
            key.clone(),
            format!(
                "must be a string, number, boolean or list, not {}",
                value.type_str()
            ),
        ))?;
        match SecretRef::from_key(key, &text) {
            Some((role, reference)) => {
                if spec.secrets.contains_key(&role) {
                    return Err((
                        key.clone(),
                        format!("the {role} is given twice (file and env)"),
                    ));
                }
                let secret = reference.resolve(base).map_err(|m| (key.clone(), m))?;
                spec.secrets.insert(role, secret);
            }
            None if is_secret_role(key) => {
                return Err((
                    key.clone(),
                    format!(
                        "secrets are not written in the configuration: use `{key}_file` or `{key}_env`"
                    ),
                ));
            }
            None => {
                spec.options.insert(key.clone(), text);
            }
        }
    }
    let device = Device::from_spec(spec, registry)
        .map_err(|e| (e.key.unwrap_or_else(|| "driver".into()), e.message))?;
    Ok(Arc::new(device))
}

/// Drivers whose `address` names a file fencegate runs or loads (a driver program, a plugin
/// library, a fence agent given by path rather than by bare name).
const PROGRAM_DRIVERS: &[&str] = &["external", "plugin", "fence-agent"];

/// The `address` of a program-running driver with a relative path made relative to the
/// inventory's directory, as secret files are: the file run as root must not depend on the
/// directory fencegate happened to be started from (a service, a hook, an operator's
/// shell each start elsewhere, and a user's writable directory could hold a same-named
/// file). A fence agent named bare (`fence_ipmilan`, no `/`) is looked up by its driver in
/// the system's agent directories, and every other address is left as written.
fn program_address(driver: &str, address: String, base: Option<&Path>) -> String {
    let trimmed = address.trim();
    let is_path = PROGRAM_DRIVERS.contains(&driver)
        && (driver != "fence-agent" || trimmed.contains('/'))
        && !trimmed.is_empty();
    match base {
        Some(base) if is_path && Path::new(trimmed).is_relative() => {
            base.join(trimmed).to_string_lossy().into_owned()
        }
        _ => address,
    }
}

fn option_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(option_text)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

/// Apply a table of overrides to a policy, one key at a time so an error names its key.
fn overlay_policy(base: &Policy, overrides: &toml::Table) -> Result<Policy, (String, String)> {
    let mut merged = toml::Table::try_from(base).map_err(|e| (String::new(), e.to_string()))?;
    for (key, value) in overrides {
        if !merged.contains_key(key) {
            let known: Vec<&str> = merged.keys().map(String::as_str).collect();
            return Err((
                key.clone(),
                format!("unknown policy key (known: {})", known.join(", ")),
            ));
        }
        let mut probe = merged.clone();
        probe.insert(key.clone(), value.clone());
        Policy::deserialize(probe).map_err(|e| (key.clone(), e.message().to_owned()))?;
        merged.insert(key.clone(), value.clone());
    }
    let policy =
        Policy::deserialize(merged).map_err(|e| (String::new(), e.message().to_owned()))?;
    policy.validate().map_err(|m| (String::new(), m))?;
    Ok(policy)
}

/// Turns byte spans into file:line locations.
struct Locator<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Locator<'_> {
    fn line_at(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// The line of `key = …` in the table starting at `span`, or the table's first line.
    /// A `[table]` header's span covers only the header, so the search runs on to the next
    /// header line.
    fn line_of_key(&self, span: Range<usize>, key: &str) -> usize {
        let start = span.start.min(self.text.len());
        let mut offset = start;
        for (n, line) in self.text[start..].split_inclusive('\n').enumerate() {
            let t = line.trim_start();
            if n > 0 && offset >= span.end && t.starts_with('[') {
                break;
            }
            let t = t.strip_prefix('"').unwrap_or(t);
            if let Some(rest) = t.strip_prefix(key) {
                let rest = rest.strip_prefix('"').unwrap_or(rest);
                if rest.trim_start().starts_with('=') {
                    return self.line_at(offset);
                }
            }
            offset += line.len();
        }
        self.line_at(start)
    }

    fn at(&self, span: Range<usize>, dotted: &str, key: &str, message: String) -> ConfigError {
        let dotted = dotted.trim_end_matches('.');
        ConfigError {
            file: self.file.to_owned(),
            line: Some(self.line_of_key(span, key)),
            key: Some(dotted.to_owned()),
            message,
        }
    }

    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let (line, snippet) = match e.span() {
            Some(span) => {
                let line = self.line_at(span.start);
                let text = self.text.lines().nth(line - 1).unwrap_or("").trim();
                (Some(line), text.to_owned())
            }
            None => (None, String::new()),
        };
        let message = if snippet.is_empty() {
            e.message().to_owned()
        } else {
            format!("{} (in `{snippet}`)", e.message())
        };
        ConfigError {
            file: self.file.to_owned(),
            line,
            key: None,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, ConfigError> {
        Inventory::parse(text, Path::new("test.toml"), &Registry::new())
    }

    #[test]
    fn relative_program_paths_resolve_against_the_inventory_not_the_working_directory() {
        let base = Some(Path::new("/etc/fencegate"));
        let resolved =
            |driver: &str, address: &str| program_address(driver, address.to_owned(), base);
        assert_eq!(
            resolved("external", "drivers/pdu"),
            "/etc/fencegate/drivers/pdu"
        );
        assert_eq!(
            resolved("external", "pdu-driver"),
            "/etc/fencegate/pdu-driver"
        );
        assert_eq!(
            resolved("plugin", "./libacme.so"),
            "/etc/fencegate/./libacme.so"
        );
        assert_eq!(
            resolved("fence-agent", "agents/fence_x"),
            "/etc/fencegate/agents/fence_x"
        );
        // Left as written: a bare agent name (looked up in the agent directories), an
        // absolute path, and the addresses of drivers that run nothing.
        assert_eq!(resolved("fence-agent", "fence_ipmilan"), "fence_ipmilan");
        assert_eq!(resolved("external", "/opt/d/pdu"), "/opt/d/pdu");
        assert_eq!(resolved("ipmi", "bmc1.example"), "bmc1.example");
        assert_eq!(resolved("external", " "), " ");
        assert_eq!(
            program_address("external", "d".into(), None),
            "d",
            "no inventory file, no base"
        );
    }

    #[test]
    fn a_device_gets_the_resolved_program_path() {
        struct Echo;
        impl fencegate_driver::DriverFactory for Echo {
            fn name(&self) -> &'static str {
                "external"
            }
            fn summary(&self) -> &'static str {
                "refuses, naming the address it was given"
            }
            fn build(
                &self,
                spec: &DeviceSpec,
            ) -> Result<Arc<dyn fencegate_driver::PowerDriver>, fencegate_driver::SpecError>
            {
                Err(fencegate_driver::SpecError::for_key(
                    "address",
                    format!("got {}", spec.address),
                ))
            }
        }
        let mut registry = Registry::new();
        registry.register(Arc::new(Echo));
        let inventory = Inventory::parse(
            "[devices.d]\ndriver = \"external\"\naddress = \"bin/drv\"\n",
            Path::new("/srv/fg/fencegate.toml"),
            &registry,
        )
        .unwrap();
        let e = inventory.devices["d"].as_ref().unwrap_err();
        assert!(e.message.contains("got /srv/fg/bin/drv"), "{e}");
    }

    const DEVICES: &str = "[devices.a]\ndriver = \"x\"\naddress = \"1\"\n[devices.b]\ndriver = \"x\"\naddress = \"2\"\n";

    #[test]
    fn one_name_or_id_leads_to_one_host() {
        let ok = parse(&format!(
            "{DEVICES}[hosts.h1]\nlevels = [[\"a\"]]\nopennebula_id = 3\naliases = [\"h1.example\"]\n[hosts.h2]\nlevels = [[\"b\"]]\nopennebula_id = 4\n"
        ));
        assert!(ok.is_ok(), "{:?}", ok.err());
        let alias = parse(&format!(
            "{DEVICES}[hosts.h1]\nlevels = [[\"a\"]]\n[hosts.h2]\nlevels = [[\"b\"]]\naliases = [\"h1\"]\n"
        ))
        .unwrap_err();
        assert!(alias.to_string().contains("already names host"), "{alias}");
        let id = parse(&format!(
            "{DEVICES}[hosts.h1]\nlevels = [[\"a\"]]\nopennebula_id = 3\n[hosts.h2]\nlevels = [[\"b\"]]\nopennebula_id = 3\n"
        ))
        .unwrap_err();
        assert!(id.to_string().contains("OpenNebula host ID 3"), "{id}");
        assert!(
            id.to_string().contains("test.toml:"),
            "names the file and line: {id}"
        );
    }
}
