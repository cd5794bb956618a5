//! Loading a plugin library once, checking its table before trusting a single field, and
//! keeping it loaded for the life of the process.
//!
//! Libraries are cached by canonical path and never unloaded: a thread abandoned at a
//! deadline may still be running inside one, and `dlclose` under it would be a crash. The
//! cost is that a plugin replaced on disk is only picked up by a new process.

use crate::ffi;
use fencegate_driver::Channel;
use fencegate_plugin_sdk::abi::{
    ABI_MAJOR, ABI_MINOR, CallFn, ConfigureFn, DestroyFn, ENTRY_SYMBOL, HelloFn, MAGIC,
    PluginHeader, PluginTable, TABLE_SIZE_V1_0,
};
use fencegate_plugin_sdk::wire::{Hello, Message};
use std::collections::HashMap;
use std::ffi::c_char;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The longest name or version string accepted from a table, in bytes. Reading stops there,
/// so a string missing its NUL costs an error instead of a walk through memory.
const MAX_TABLE_STRING: usize = 256;

/// Why a plugin library was refused. Every variant is checked before the plugin receives a
/// device or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadProblem {
    /// The path does not name a readable file.
    Missing(String),
    /// The dynamic loader refused the file (not a shared library, wrong architecture,
    /// missing dependency).
    NotALibrary(String),
    /// The library does not export the entry symbol.
    NoEntrySymbol,
    /// The entry function returned a null table.
    NullTable,
    /// The table pointer is not aligned for its fields.
    Misaligned,
    /// The table does not start with the magic number.
    WrongMagic(u64),
    /// The plugin was built for another ABI major.
    AbiMajor(u32),
    /// `struct_size` is smaller than the fields this host must read.
    TooShort(u64),
    /// A required pointer in the table is null.
    NullField(&'static str),
    /// The name or version string is not valid, NUL-terminated UTF-8.
    BadString(&'static str, String),
    /// The plugin's `hello` answer was missing or malformed.
    BadHello(String),
    /// Loading did not finish in the time allowed (a plugin stuck in its initializers).
    TimedOut(std::time::Duration),
    /// Someone other than root or fencegate's user could replace the library (it, or a
    /// directory on its way, is writable by others or owned by another user): loading it
    /// would run their code as fencegate's user. Says what and the fix.
    Untrusted(String),
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadProblem::Missing(why) => write!(f, "no such plugin file ({why})"),
            LoadProblem::NotALibrary(why) => write!(f, "not a loadable shared library: {why}"),
            LoadProblem::NoEntrySymbol => write!(
                f,
                "no entry symbol `{ENTRY_SYMBOL}` (not a fencegate plugin, or built for another ABI major)"
            ),
            LoadProblem::NullTable => write!(f, "`{ENTRY_SYMBOL}` returned a null table"),
            LoadProblem::Misaligned => write!(f, "`{ENTRY_SYMBOL}` returned a misaligned table"),
            LoadProblem::WrongMagic(found) => write!(
                f,
                "wrong magic {found:#018x} in the plugin table (expected {MAGIC:#018x})"
            ),
            LoadProblem::AbiMajor(found) => write!(
                f,
                "plugin ABI major version {found}, fencegate speaks {ABI_MAJOR}.{ABI_MINOR} \
                 (the major versions must match)"
            ),
            LoadProblem::TooShort(size) => write!(
                f,
                "plugin table is {size} bytes, ABI {ABI_MAJOR}.0 needs at least {TABLE_SIZE_V1_0}"
            ),
            LoadProblem::NullField(field) => write!(f, "plugin table field `{field}` is null"),
            LoadProblem::BadString(field, why) => write!(f, "plugin {field} {why}"),
            LoadProblem::BadHello(why) => write!(f, "plugin hello: {why}"),
            LoadProblem::TimedOut(after) => {
                write!(f, "loading did not finish within {} ms", after.as_millis())
            }
            LoadProblem::Untrusted(why) => f.write_str(why),
        }
    }
}

/// A plugin library fencegate refused, naming the path and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {}: {problem}", path.display())]
pub struct LoadError {
    /// The path as configured (or canonical, once known).
    pub path: PathBuf,
    /// What was wrong.
    pub problem: LoadProblem,
}

/// The checked table of a loaded plugin, copied out of the library.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    pub(crate) configure: ConfigureFn,
    pub(crate) call: CallFn,
    pub(crate) destroy: DestroyFn,
}

/// A loaded, checked plugin library. Never dropped (see the module docs), so its function
/// pointers stay valid for the life of the process.
#[derive(Debug)]
pub struct LoadedPlugin {
    /// The canonical path it was loaded from.
    pub path: PathBuf,
    /// The plugin's name from its table.
    pub name: String,
    /// The plugin's version from its table.
    pub version: String,
    /// The ABI header exactly as the plugin declared it.
    pub header: PluginHeader,
    /// What the plugin said about itself in `hello`.
    pub hello: Hello,
    pub(crate) table: Table,
    /// Kept only to hold the library mapped; never closed.
    _library: libloading::Library,
}

fn cache() -> &'static Mutex<HashMap<PathBuf, Arc<LoadedPlugin>>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<LoadedPlugin>>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Load (or find already loaded) the plugin at `path`. Blocking (the dynamic loader reads
/// the file and runs the library's initializers): call it from a blocking thread.
///
/// A relative path is taken relative to the current directory, as given (the inventory
/// resolves a relative `address` against its own directory first): the path is made
/// canonical before the dynamic loader sees it, so the loader's search path never applies.
/// A library that anyone but root or fencegate's user could replace is refused before it
/// is opened, checked again on every load ([`fencegate_driver::trusted`]).
pub fn load(path: &Path) -> Result<Arc<LoadedPlugin>, LoadError> {
    let refuse = |path: &Path, problem| LoadError {
        path: path.to_owned(),
        problem,
    };
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| refuse(path, LoadProblem::Missing(e.to_string())))?;
    if !canonical.is_file() {
        return Err(refuse(
            path,
            LoadProblem::Missing("not a regular file".into()),
        ));
    }
    fencegate_driver::trusted(path).map_err(|why| refuse(path, LoadProblem::Untrusted(why)))?;
    // Held across the load so that two devices naming one library load it once.
    let mut cache = cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&canonical) {
        return Ok(found.clone());
    }
    let loaded = open(&canonical).map_err(|problem| refuse(&canonical, problem))?;
    let loaded = Arc::new(loaded);
    cache.insert(canonical, loaded.clone());
    tracing::info!(
        path = %loaded.path.display(),
        plugin = %loaded.name,
        version = %loaded.version,
        abi_minor = loaded.header.abi_minor,
        "loaded plugin library"
    );
    Ok(loaded)
}

fn open(path: &Path) -> Result<LoadedPlugin, LoadProblem> {
    // SAFETY: loading a library runs its initializers, which is the trust an operator
    // extends by configuring a plugin: it runs in-process by design. The path is canonical.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| LoadProblem::NotALibrary(e.to_string()))?;
    type Entry = unsafe extern "C" fn() -> *const PluginTable;
    // SAFETY: `Entry` is the signature the ABI defines for this symbol name; a library that
    // exports the name with another signature breaks the ABI, which no check can detect.
    let entry: Entry = unsafe { library.get::<Entry>(ENTRY_SYMBOL.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|_| LoadProblem::NoEntrySymbol)?;
    // SAFETY: as above; the entry function takes no arguments and only returns a pointer.
    let raw = unsafe { entry() };
    let (header, table, name, version) = check_table(raw)?;
    let hello = read_hello(table.0)?;
    Ok(LoadedPlugin {
        path: path.to_owned(),
        name,
        version,
        header,
        hello,
        table: table.1,
        _library: library,
    })
}

/// Check a table pointer field by field, reading nothing its size does not promise.
fn check_table(
    raw: *const PluginTable,
) -> Result<(PluginHeader, (HelloFn, Table), String, String), LoadProblem> {
    if raw.is_null() {
        return Err(LoadProblem::NullTable);
    }
    if !raw.cast::<PluginHeader>().is_aligned() || !raw.is_aligned() {
        return Err(LoadProblem::Misaligned);
    }
    // SAFETY: non-null and aligned; the ABI guarantees every table, of any version, starts
    // with a header, and the entry function returned it as a static of the loaded library.
    let header = unsafe { raw.cast::<PluginHeader>().read() };
    if header.magic != MAGIC {
        return Err(LoadProblem::WrongMagic(header.magic));
    }
    if header.abi_major != ABI_MAJOR {
        return Err(LoadProblem::AbiMajor(header.abi_major));
    }
    if header.struct_size < TABLE_SIZE_V1_0 as u64 {
        return Err(LoadProblem::TooShort(header.struct_size));
    }
    // SAFETY: for each read below, `struct_size` says the plugin's table holds at least
    // all 1.0 fields, at the offsets `PluginTable` declares, in the aligned static the entry
    // function returned. Each field is read through a raw place, never through a reference
    // to the whole struct, so no byte beyond the fields 1.0 defines is ever read, whatever
    // size later minors give `PluginTable`.
    let (name, version, hello, configure, call, destroy) = unsafe {
        (
            (&raw const (*raw).name).read(),
            (&raw const (*raw).version).read(),
            (&raw const (*raw).hello).read(),
            (&raw const (*raw).configure).read(),
            (&raw const (*raw).call).read(),
            (&raw const (*raw).destroy).read(),
        )
    };
    let name = table_string("name", name)?;
    let version = table_string("version", version)?;
    let hello = hello.ok_or(LoadProblem::NullField("hello"))?;
    let checked = Table {
        configure: configure.ok_or(LoadProblem::NullField("configure"))?,
        call: call.ok_or(LoadProblem::NullField("call"))?,
        destroy: destroy.ok_or(LoadProblem::NullField("destroy"))?,
    };
    Ok((header, (hello, checked), name, version))
}

/// A NUL-terminated UTF-8 string from the table, reading at most [`MAX_TABLE_STRING`] bytes.
fn table_string(field: &'static str, ptr: *const c_char) -> Result<String, LoadProblem> {
    if ptr.is_null() {
        return Err(LoadProblem::NullField(field));
    }
    let mut bytes = Vec::new();
    for i in 0..=MAX_TABLE_STRING {
        // SAFETY: the ABI requires a NUL-terminated string here; we read byte by byte and stop
        // at the NUL, so no byte past the terminator is read. A string without one within
        // the limit is refused below instead of being followed further.
        let byte = unsafe { ptr.add(i).cast::<u8>().read() };
        if byte == 0 {
            return String::from_utf8(bytes)
                .map_err(|_| LoadProblem::BadString(field, "is not valid UTF-8".into()));
        }
        bytes.push(byte);
    }
    Err(LoadProblem::BadString(
        field,
        format!("is longer than {MAX_TABLE_STRING} bytes or not NUL-terminated"),
    ))
}

fn read_hello(hello: HelloFn) -> Result<Hello, LoadProblem> {
    let bytes = ffi::hello(hello).map_err(LoadProblem::BadHello)?;
    match serde_json::from_slice::<Message>(&bytes) {
        Ok(Message::Hello(h)) if h.channel() == Channel::Isolation && h.reads_power_state => {
            Err(LoadProblem::BadHello(
                "declares an isolation channel that reads power state (what an isolation \
                 channel reads is never a power reading)"
                    .into(),
            ))
        }
        Ok(Message::Hello(h)) => Ok(h),
        Ok(_) => Err(LoadProblem::BadHello("expected a `hello` message".into())),
        Err(e) => Err(LoadProblem::BadHello(format!("malformed message: {e}"))),
    }
}
