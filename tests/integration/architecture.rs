//! The module floors of docs/architecture.md ("Floors"), checked against the code: every
//! `crate::module` a source file names is on the file's own floor or below, and two modules of
//! one floor never name each other both ways. Comments are not read (they may point anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules of `src/` by floor, from the ground up.
const FLOORS: &[&[&str]] = &[
    &["domain", "observability", "clock", "site", "seal"],
    &["config"],
    &["db", "stripe", "telemetry"],
    &["projection", "revenue"],
    &["webhooks"],
    &["state"],
    &["accounts", "auth", "billing", "lists"],
    &["sync"],
    &["api"],
    &["components"],
    &["pages"],
    &["app"],
    &["server"],
    &["cli"],
];

fn floor(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names as `crate::name`, outside comments.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
    }
    out
}

#[test]
fn modules_import_only_their_own_floor_or_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    let mut unknown = BTreeSet::new();
    // (importer, imported) between different modules of one floor.
    let mut sideways: BTreeMap<(String, String), String> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = floor(&module) else {
            unknown.insert(module);
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for named in named_modules(&text) {
            if named == module {
                continue;
            }
            match floor(&named) {
                None => {
                    unknown.insert(named);
                }
                Some(theirs) if theirs > own => upward.push(format!(
                    "{} ({module}, floor {own}) names {named} (floor {theirs})",
                    relative.display()
                )),
                Some(theirs) if theirs == own => {
                    sideways.insert((module.clone(), named), relative.display().to_string());
                }
                Some(_) => {}
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from FLOORS (add them, and to docs/architecture.md): {unknown:?}"
    );
    assert!(upward.is_empty(), "imports that run upward:\n{}", upward.join("\n"));
    let circles: Vec<String> = sideways
        .iter()
        .filter(|((a, b), _)| a < b && sideways.contains_key(&(b.clone(), a.clone())))
        .map(|((a, b), file)| format!("{a} <-> {b} (e.g. {file})"))
        .collect();
    assert!(
        circles.is_empty(),
        "modules of one floor that import each other: {circles:?}"
    );
}

#[test]
fn the_checker_sees_imports_and_skips_comments() {
    let text =
        "use crate::db::Db;\n// crate::cli::main\nlet x = crate::domain::money::format(1, \"usd\"); // crate::server\n";
    assert_eq!(
        named_modules(text),
        BTreeSet::from(["db".to_string(), "domain".to_string()])
    );
}
