//! Load-time refusals: every mismatch is refused before the plugin sees a device, with an
//! error naming the path and what mismatched.

mod common;

use common::{misbehaving, spec};
use fencegate_driver::DriverFactory;
use fencegate_plugin::{LoadProblem, PluginFactory, load};
use std::path::Path;

/// Build through the factory and return the error text (it must name the path).
fn refusal(path: &Path) -> String {
    let e = PluginFactory
        .build(&spec(path, &[]))
        .err()
        .expect("the plugin must be refused");
    let text = e.to_string();
    assert_eq!(e.key.as_deref(), Some("address"), "{text}");
    assert!(
        text.contains(&path.file_name().unwrap().to_string_lossy().into_owned()),
        "the error must name the path: {text}"
    );
    text
}

#[test]
fn a_missing_file_is_refused() {
    let path = Path::new("/nonexistent/libnothing.so");
    assert!(matches!(
        load(path).unwrap_err().problem,
        LoadProblem::Missing(_)
    ));
    assert!(refusal(path).contains("no such plugin file"));
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libtext.so");
    std::fs::write(&path, "not an ELF file\n").unwrap();
    assert!(matches!(
        load(&path).unwrap_err().problem,
        LoadProblem::NotALibrary(_)
    ));
    assert!(refusal(&path).contains("not a loadable shared library"));
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    let p = misbehaving(&["-DNO_SYMBOL"]);
    assert_eq!(
        load(&p.path).unwrap_err().problem,
        LoadProblem::NoEntrySymbol
    );
    assert!(refusal(&p.path).contains("fencegate_plugin_entry_v1"));
}

#[test]
fn a_null_table_is_refused() {
    let p = misbehaving(&["-DNULL_TABLE"]);
    assert_eq!(load(&p.path).unwrap_err().problem, LoadProblem::NullTable);
    assert!(refusal(&p.path).contains("null table"));
}

#[test]
fn a_wrong_magic_is_refused() {
    let p = misbehaving(&["-DWRONG_MAGIC"]);
    assert_eq!(
        load(&p.path).unwrap_err().problem,
        LoadProblem::WrongMagic(0x0123_4567_89AB_CDEF)
    );
    assert!(refusal(&p.path).contains("wrong magic 0x0123456789abcdef"));
}

#[test]
fn another_abi_major_is_refused() {
    let p = misbehaving(&["-DWRONG_MAJOR"]);
    assert_eq!(load(&p.path).unwrap_err().problem, LoadProblem::AbiMajor(2));
    let text = refusal(&p.path);
    assert!(
        text.contains("ABI major version 2") && text.contains("speaks 1.0"),
        "{text}"
    );
}

#[test]
fn a_table_shorter_than_abi_1_0_is_refused() {
    let p = misbehaving(&["-DSHORT_TABLE"]);
    assert_eq!(
        load(&p.path).unwrap_err().problem,
        LoadProblem::TooShort(24)
    );
    assert!(refusal(&p.path).contains("table is 24 bytes"));
}

#[test]
fn a_name_that_is_not_utf8_is_refused() {
    let p = misbehaving(&["-DBAD_UTF8_NAME"]);
    assert!(matches!(
        load(&p.path).unwrap_err().problem,
        LoadProblem::BadString("name", _)
    ));
    assert!(refusal(&p.path).contains("name is not valid UTF-8"));
}

#[test]
fn a_null_function_is_refused() {
    let p = misbehaving(&["-DNULL_CALL"]);
    assert_eq!(
        load(&p.path).unwrap_err().problem,
        LoadProblem::NullField("call")
    );
    assert!(refusal(&p.path).contains("`call` is null"));
}

#[test]
fn a_newer_minor_with_appended_fields_loads() {
    let p = misbehaving(&["-DNEWER_MINOR"]);
    let loaded = load(&p.path).expect("a 1.1 table is compatible");
    assert_eq!(loaded.header.abi_minor, 1);
    assert!(loaded.header.struct_size > fencegate_plugin_sdk::abi::TABLE_SIZE_V1_0 as u64);
    // Loaded once per process: the same canonical path gives the same library.
    assert!(std::sync::Arc::ptr_eq(&loaded, &load(&p.path).unwrap()));
}

#[test]
fn an_empty_address_names_the_key() {
    let e = PluginFactory
        .build(&spec(Path::new(""), &[]))
        .err()
        .expect("refused");
    assert_eq!(e.key.as_deref(), Some("address"));
}

#[test]
fn a_library_others_could_replace_is_refused_before_it_is_loaded() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let p = common::state_file_plugin();
    let dir = p.path.parent().unwrap().to_owned();
    chmod(&p.path, 0o775);
    match load(&p.path).unwrap_err().problem {
        LoadProblem::Untrusted(why) => assert!(
            why.contains("group- or world-writable")
                && why.contains(&format!("chmod go-w {}", p.path.display())),
            "{why}"
        ),
        other => panic!("refused for another reason: {other}"),
    }
    assert!(refusal(&p.path).contains("group- or world-writable"));
    chmod(&p.path, 0o755);
    chmod(&dir, 0o777);
    let text = refusal(&p.path);
    assert!(
        text.contains(&format!("the directory {}", dir.display())) && text.contains("sticky"),
        "{text}"
    );
    chmod(&dir, 0o755);
    assert!(
        load(&p.path).is_ok(),
        "the same library, once only root can replace it"
    );
}
