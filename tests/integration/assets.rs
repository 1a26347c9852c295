//! What the browser downloads: the bundle under content-hashed names, precompressed (brotli or
//! gzip by Accept-Encoding) and cached for good; pages and JSON gzip-compressed.

use crate::common;

use std::io::Read;
use std::path::Path;

use common::{Backend, TestApp};

const JS: &str = "Js0hash0Js0hash0Js0has";
const WASM: &str = "Wasm0hash0Wasm0hash0Wa";
const CSS: &str = "Css0hash0Css0hash0Css0";

/// A site directory as `cargo leptos build --release --precompress` leaves it.
fn site(dir: &Path) {
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(dir.join("hash.txt"), format!("js: {JS}\nwasm: {WASM}\ncss: {CSS}\n")).unwrap();
    for (name, body) in [
        (
            format!("tally.{JS}.js"),
            "export default function init() {}\n".repeat(50),
        ),
        (format!("tally.{WASM}.wasm"), "\0asm".repeat(500)),
        (format!("tally.{CSS}.css"), "body { margin: 0 }\n".repeat(50)),
    ] {
        std::fs::write(pkg.join(&name), &body).unwrap();
        // Stand-ins for the compressed forms: what matters is which file is sent.
        std::fs::write(pkg.join(format!("{name}.br")), format!("brotli of {name}")).unwrap();
        std::fs::write(pkg.join(format!("{name}.gz")), format!("gzip of {name}")).unwrap();
    }
    std::fs::write(dir.join("favicon.svg"), "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
}

async fn fetch(app: &TestApp, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = common::browser().get(app.url(path));
    if let Some(accept) = accept {
        req = req.header("accept-encoding", accept);
    }
    req.send().await.unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip stream");
    text
}

both_backends!(
    the_bundle_is_hashed_precompressed_and_cached_and_pages_are_compressed,
    |backend: Backend| async move {
        let dir = tempfile::tempdir().unwrap();
        site(dir.path());
        let root = dir.path().to_string_lossy().into_owned();
        let app = TestApp::spawn_anonymous(backend, &[("LEPTOS_SITE_ROOT", root.as_str())]).await;

        // The page links the hashed names, and comes gzip-compressed.
        let res = fetch(&app, "/login", Some("gzip, deflate, br")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "content-encoding"), "gzip");
        assert!(header(&res, "vary").to_ascii_lowercase().contains("accept-encoding"));
        let html = gunzip(&res.bytes().await.unwrap());
        for name in [
            format!("/pkg/tally.{JS}.js"),
            format!("/pkg/tally.{WASM}.wasm"),
            format!("/pkg/tally.{CSS}.css"),
        ] {
            assert!(html.contains(&name), "{name} not linked: {html}");
        }
        // Without Accept-Encoding, plain.
        let res = fetch(&app, "/login", None).await;
        assert_eq!(header(&res, "content-encoding"), "");
        assert!(res.text().await.unwrap().contains(&format!("/pkg/tally.{CSS}.css")));

        // The bundle: brotli when accepted, else gzip, else the file; cached for good.
        for file in [
            format!("tally.{JS}.js"),
            format!("tally.{WASM}.wasm"),
            format!("tally.{CSS}.css"),
        ] {
            let path = format!("/pkg/{file}");
            let res = fetch(&app, &path, Some("gzip, deflate, br")).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(header(&res, "content-encoding"), "br", "{path}");
            assert_eq!(
                header(&res, "cache-control"),
                "public, max-age=31536000, immutable",
                "{path}"
            );
            assert!(
                header(&res, "vary").to_ascii_lowercase().contains("accept-encoding"),
                "{path}"
            );
            assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
            assert_eq!(res.text().await.unwrap(), format!("brotli of {file}"));
            let res = fetch(&app, &path, Some("gzip")).await;
            assert_eq!(header(&res, "content-encoding"), "gzip", "{path}");
            assert_eq!(res.text().await.unwrap(), format!("gzip of {file}"));
            let res = fetch(&app, &path, None).await;
            assert_eq!(header(&res, "content-encoding"), "", "{path}");
            assert_eq!(header(&res, "cache-control"), "public, max-age=31536000, immutable");
            let body = res.bytes().await.unwrap();
            assert_eq!(body, std::fs::read(dir.path().join("pkg").join(&file)).unwrap());
        }
        let res = fetch(&app, &format!("/pkg/tally.{WASM}.wasm"), None).await;
        assert_eq!(header(&res, "content-type"), "application/wasm");
        // A name without a hash may change: revalidated, never kept for good; a missing file is
        // a 404 that is not cached either.
        std::fs::write(dir.path().join("pkg").join("extra.js"), "x").unwrap();
        let res = fetch(&app, "/pkg/extra.js", Some("br")).await;
        assert_eq!(
            (res.status().as_u16(), header(&res, "cache-control")),
            (200, "no-cache".to_string())
        );
        let res = fetch(&app, "/pkg/tally.js", Some("br")).await;
        assert_eq!(res.status(), 404);
        assert!(!header(&res, "cache-control").contains("immutable"));

        // JSON answers are compressed too.
        let res = fetch(&app, "/api/v1/openapi.json", Some("gzip")).await;
        assert_eq!(header(&res, "content-encoding"), "gzip");
        let doc: serde_json::Value = serde_json::from_str(&gunzip(&res.bytes().await.unwrap())).unwrap();
        assert!(doc["paths"].is_object());
        app.server.shutdown().await.unwrap();
    }
);
