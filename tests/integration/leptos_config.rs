//! cargo-leptos builds with the settings in Cargo.toml; the server finds the bundle with those in
//! Leptos.toml. If they disagree, pages render but never hydrate, so this test keeps them in step.

use std::path::Path;

use tally::site::SiteFile;

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

#[test]
fn cargo_metadata_and_leptos_toml_agree() {
    let cargo: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let meta = &cargo["package"]["metadata"]["leptos"];
    let site = SiteFile::parse(&read("Leptos.toml")).unwrap();
    assert_eq!(
        meta["output-name"].as_str(),
        Some(site.output_name.as_str()),
        "output-name differs"
    );
    assert_eq!(
        meta["site-pkg-dir"].as_str(),
        Some(site.site_pkg_dir.as_str()),
        "site-pkg-dir differs"
    );
    assert_eq!(
        meta["site-root"].as_str(),
        Some(site.site_root.as_str()),
        "site-root differs"
    );
    // The compile-time name leptos uses for the wasm file (see .cargo/config.toml).
    let cargo_config: toml::Table = toml::from_str(&read(".cargo/config.toml")).unwrap();
    assert_eq!(
        cargo_config["env"]["LEPTOS_OUTPUT_NAME"].as_str(),
        Some(site.output_name.as_str())
    );
}

#[test]
fn the_files_cargo_leptos_needs_exist() {
    let cargo: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let meta = &cargo["package"]["metadata"]["leptos"];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for key in ["style-file", "assets-dir", "end2end-dir"] {
        let path = meta[key].as_str().unwrap_or_else(|| panic!("{key} missing"));
        assert!(root.join(path).exists(), "{key} = {path} does not exist");
    }
    // The stylesheet link the pages carry points where cargo-leptos writes the CSS.
    let output = meta["output-name"].as_str().unwrap();
    let pkg = meta["site-pkg-dir"].as_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let site = tally::site::options(
        tally::site::SiteFile {
            output_name: output.into(),
            site_root: empty.path().to_string_lossy().into_owned(),
            site_pkg_dir: pkg.into(),
            env: None,
        },
        |_| None,
    );
    assert_eq!(tally::site::stylesheet_href(&site), format!("/{pkg}/{output}.css"));
    // cargo-leptos writes the hash file relative to the server binary (target/<profile>/); the
    // server reads it in the site directory: the two must be the same file.
    let hash_file = meta["hash-file-name"].as_str().expect("hash-file-name");
    let site_root = meta["site-root"].as_str().unwrap();
    let written = Path::new("target/release").join(hash_file);
    let normalised: std::path::PathBuf = written.components().fold(std::path::PathBuf::new(), |mut p, c| {
        match c {
            std::path::Component::ParentDir => {
                p.pop();
            }
            other => p.push(other),
        }
        p
    });
    assert_eq!(normalised, Path::new(site_root).join(tally::site::HASH_FILE));
    assert_eq!(meta["hash-files"].as_bool(), Some(true));
}
