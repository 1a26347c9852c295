//! Who is signed in, and what they may do: the checks run on the server (`server`); the types
//! they share with the browser (roles, the current admin) are in `domain::admins`.

#[cfg(feature = "ssr")]
pub mod server;

/// Only same-origin paths may follow a login, never another site. `next` is read as a browser
/// reads a URL (WHATWG parsing: tabs and newlines dropped, backslashes as slashes, dot segments
/// resolved), so `/\t/evil.example`, `/\\evil.example` and `/.//evil.example` are seen for what
/// they become; what is returned is that parsed path, which no browser reads as another host.
pub fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/";
    let Some(next) = next.filter(|n| n.starts_with('/') && n.len() <= 2048) else {
        return HOME.to_string();
    };
    let Ok(base) = url::Url::parse("https://tally.invalid/") else {
        return HOME.to_string();
    };
    let Ok(url) = base.join(next) else {
        return HOME.to_string();
    };
    if url.origin() != base.origin() {
        return HOME.to_string();
    }
    let mut out = url.path().to_string();
    // A path that starts with two slashes (from `/.//host`) would read as a host in Location.
    if out.starts_with("//") || out.starts_with("/\\") {
        return HOME.to_string();
    }
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = url.fragment() {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/customers?x=1")), "/customers?x=1");
        assert_eq!(safe_next(Some("/customers/cus_1#refunds")), "/customers/cus_1#refunds");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\tevil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "/.//evil.example",
            "/./\\evil.example",
            "/%09/evil.example/../",
            " //evil.example",
            "https://evil.example",
            "https:evil.example",
            "evil",
            "",
        ] {
            let out = safe_next(Some(bad));
            // Whatever comes back is a path on this site as a browser reads it.
            let base = url::Url::parse("https://tally.invalid/").unwrap();
            let landed = base.join(&out).unwrap();
            assert_eq!(landed.host_str(), Some("tally.invalid"), "{bad:?} -> {out:?}");
            assert!(
                !out.starts_with("//") && !out.contains('\t') && !out.contains('\n'),
                "{bad:?} -> {out:?}"
            );
        }
        // Encoded slashes are a path, not a host.
        assert_eq!(safe_next(Some("/%2F%2Fevil.example")), "/%2F%2Fevil.example");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
