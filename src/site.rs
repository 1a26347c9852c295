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
pub fn options(file: SiteFile, lookup: impl Fn(&str) -> Option<String>) -> LeptosOptions {
    let pick = |var: &str, from_file: String| lookup(var).filter(|v| !v.is_empty()).unwrap_or(from_file);
    let env = pick("LEPTOS_ENV", file.env.unwrap_or_else(|| "DEV".into()));
    LeptosOptions::builder()
        .output_name(pick("LEPTOS_OUTPUT_NAME", file.output_name))
        .site_root(pick("LEPTOS_SITE_ROOT", file.site_root))
        .site_pkg_dir(pick("LEPTOS_SITE_PKG_DIR", file.site_pkg_dir))
        .env(
            if env.eq_ignore_ascii_case("prod") || env.eq_ignore_ascii_case("production") {
                Env::PROD
            } else {
                Env::DEV
            },
        )
        .build()
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
    fn unknown_keys_are_refused() {
        let e = SiteFile::parse("output-name = \"t\"\nsite-root = \"r\"\nsite-pkg-dir = \"p\"\nsite-rot = \"x\"\n")
            .unwrap_err();
        assert!(e.contains("site-rot"), "{e}");
    }
}
