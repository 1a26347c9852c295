//! Runtime site settings (`Leptos.toml`): where the compiled browser bundle and assets live.
//!
//! cargo-leptos reads its *build* settings from `[package.metadata.leptos]` in Cargo.toml; the
//! server reads these *runtime* settings at start. `LEPTOS_*` variables override the file, which is
//! how `cargo leptos serve` and the tests point the server at their own site directory.

use std::path::Path;

use leptos::config::{Env, LeptosOptions};
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SiteFile {
    pub output_name: String,
    pub site_root: String,
    pub site_pkg_dir: String,
    #[serde(default)]
    pub env: Option<String>,
}

impl SiteFile {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }
}

/// Loads `path` (normally `Leptos.toml`) and applies `LEPTOS_*` overrides.
pub fn load(path: &Path, lookup: impl Fn(&str) -> Option<String>) -> Result<LeptosOptions, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot be read ({e})", path.display()))?;
    let file = SiteFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(options(file, lookup))
}

/// The settings to use when there is no file (tests, or a binary run from elsewhere with `LEPTOS_*`).
///
/// The bundle's file names carry a hash of their content when the site directory has a
/// `hash.txt` (cargo-leptos's `hash-files`, written there by `hash-file-name`): the pages then
/// link the hashed names, which are cached for good. Leptos looks for the file next to the
/// executable unless given an absolute path; the site directory is what travels with the bundle.
pub fn options(file: SiteFile, lookup: impl Fn(&str) -> Option<String>) -> LeptosOptions {
    let pick = |var: &str, from_file: String| lookup(var).filter(|v| !v.is_empty()).unwrap_or(from_file);
    let env = pick("LEPTOS_ENV", file.env.unwrap_or_else(|| "DEV".into()));
    let site_root = pick("LEPTOS_SITE_ROOT", file.site_root);
    let hash_file = std::path::absolute(Path::new(&site_root).join(HASH_FILE))
        .ok()
        .filter(|path| path.is_file());
    LeptosOptions::builder()
        .output_name(pick("LEPTOS_OUTPUT_NAME", file.output_name))
        .site_root(site_root)
        .site_pkg_dir(pick("LEPTOS_SITE_PKG_DIR", file.site_pkg_dir))
        .hash_files(hash_file.is_some())
        .hash_file(
            hash_file
                .map(|path| path.to_string_lossy().into_owned())
                .unwrap_or_else(|| HASH_FILE.to_string())
                .into(),
        )
        .env(
            if env.eq_ignore_ascii_case("prod") || env.eq_ignore_ascii_case("production") {
                Env::PROD
            } else {
                Env::DEV
            },
        )
        .build()
}

/// Where cargo-leptos records the content hashes, in the site directory.
pub const HASH_FILE: &str = "hash.txt";

/// The stylesheet's URL: `/pkg/tally.<hash>.css` when the bundle is hashed, else `/pkg/tally.css`.
/// Read at each render, as Leptos reads the script names, so a rebuilt site is linked at once.
pub fn stylesheet_href(options: &LeptosOptions) -> String {
    let hash = options
        .hash_files
        .then(|| std::fs::read_to_string(&*options.hash_file).ok())
        .flatten()
        .and_then(|text| hash_of(&text, "css"));
    match hash {
        Some(hash) => format!("/{}/{}.{hash}.css", options.site_pkg_dir, options.output_name),
        None => format!("/{}/{}.css", options.site_pkg_dir, options.output_name),
    }
}

/// The hash recorded for `kind` (`js`, `wasm`, `css`) in a hash file's `kind: hash` lines.
fn hash_of(text: &str, kind: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(k, _)| k.trim() == kind)
        .map(|(_, hash)| hash.trim().to_string())
        .filter(|hash| {
            !hash.is_empty()
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether a bundle file's name carries a content hash (`tally.<hash>.js`, `.wasm`, `.css`, and
/// their `.br`/`.gz` forms): such a file never changes, so browsers may keep it for good.
pub fn is_hashed(file_name: &str) -> bool {
    let base = file_name
        .strip_suffix(".br")
        .or_else(|| file_name.strip_suffix(".gz"))
        .unwrap_or(file_name);
    let mut parts = base.rsplit('.');
    let (Some(_ext), Some(hash), Some(_name)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    // cargo-leptos: MD5 in unpadded base64url, 22 characters.
    hash.len() >= 16
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_the_file() {
        let file =
            SiteFile::parse("output-name = \"tally\"\nsite-root = \"target/site\"\nsite-pkg-dir = \"pkg\"\n").unwrap();
        let opts = options(file, |v| (v == "LEPTOS_SITE_ROOT").then(|| "/srv/site".to_string()));
        assert_eq!(&*opts.site_root, "/srv/site");
        assert_eq!(&*opts.output_name, "tally");
        assert_eq!(&*opts.site_pkg_dir, "pkg");
    }

    #[test]
    fn hashed_names_and_the_stylesheet() {
        assert!(is_hashed("tally.Xb3kR9_q-LmN0pQrStUvWx.wasm"));
        assert!(is_hashed("tally.Xb3kR9_q-LmN0pQrStUvWx.js.br"));
        assert!(is_hashed("tally.Xb3kR9_q-LmN0pQrStUvWx.css.gz"));
        assert!(!is_hashed("tally.wasm"));
        assert!(!is_hashed("tally_bg.wasm.br"));
        assert!(!is_hashed("favicon.svg"));
        assert!(!is_hashed("tally.short.js"));

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_string_lossy().into_owned();
        let file = || SiteFile {
            output_name: "tally".into(),
            site_root: root.clone(),
            site_pkg_dir: "pkg".into(),
            env: None,
        };
        let plain = options(file(), |_| None);
        assert!(!plain.hash_files);
        assert_eq!(stylesheet_href(&plain), "/pkg/tally.css");
        std::fs::write(
            dir.path().join(HASH_FILE),
            "js: jsHASHjsHASHjsHASHjs\nwasm: wasmHASHwasmHASHwasmHA\ncss: cssHASHcssHASHcssHASHc\n",
        )
        .unwrap();
        let hashed = options(file(), |_| None);
        assert!(hashed.hash_files);
        assert!(Path::new(&*hashed.hash_file).is_absolute(), "{}", hashed.hash_file);
        assert_eq!(stylesheet_href(&hashed), "/pkg/tally.cssHASHcssHASHcssHASHc.css");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = SiteFile::parse("output-name = \"t\"\nsite-root = \"r\"\nsite-pkg-dir = \"p\"\nsite-rot = \"x\"\n")
            .unwrap_err();
        assert!(e.contains("site-rot"), "{e}");
    }
}
