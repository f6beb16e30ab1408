//! The self-contained binary: `stead` copied alone into an empty directory and started there
//! (no `web/dist` anywhere near it, no `STEAD_CONSOLE_DIR`) serves the console it was built
//! with, precompressed and cacheable, and the API.
//!
//! The binary is `$STEAD_DIST_BIN` when set (CI points it at the static release binary that
//! `cargo xtask dist` writes), else the debug `stead` the other tests run, which embeds the
//! console the same way.

use std::io::Read as _;
use std::path::PathBuf;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use stead_api_types::Me;

use crate::harness::{Backend, Options, TestServer, stead_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_alone_in_an_empty_directory_serves_the_console_and_the_api() {
    let source = std::env::var_os("STEAD_DIST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(stead_bin);
    if std::env::var_os("STEAD_DIST_BIN").is_some() {
        assert!(
            is_static(&std::fs::read(&source).unwrap()),
            "{} asks for a dynamic loader: `cargo xtask dist` builds a static binary",
            source.display()
        );
    }
    let alone = tempfile::tempdir().unwrap();
    let bin = alone.path().join("stead");
    std::fs::copy(&source, &bin).unwrap();
    assert_eq!(std::fs::read_dir(alone.path()).unwrap().count(), 1);
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options {
            bin: Some(bin),
            cwd: Some(alone.path().to_path_buf()),
            ..Options::default()
        },
    )
    .await;
    assert!(
        server
            .log_text()
            .lines()
            .any(|l| l.contains("serving the console") && l.contains("embedded")),
        "the server does not say it serves its embedded console:\n{}",
        server.log_text()
    );
    let http = reqwest::Client::new();
    let get = |path: &str, encoding: Option<&str>, etag: Option<&str>| {
        let mut request = http.get(format!("{}{path}", server.base));
        if let Some(encoding) = encoding {
            request = request.header(header::ACCEPT_ENCODING, encoding);
        }
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            (status, headers, response.bytes().await.unwrap().to_vec())
        }
    };

    // The page, never cached without asking.
    let (status, headers, body) = get("/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        value(&headers, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(value(&headers, header::CACHE_CONTROL), "no-cache");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<title>Stead</title>"), "{html}");
    let js = hashed_url(&html, "/pkg/stead_web.js?v=");
    let wasm = hashed_url(&html, "/pkg/stead_web_bg.wasm?v=");

    for (url, content_type) in [
        (&js, "text/javascript; charset=utf-8"),
        (&wasm, "application/wasm"),
    ] {
        // Raw: the file whose hash the URL carries, cacheable forever.
        let (status, headers, raw) = get(url, None, None).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        assert_eq!(value(&headers, header::CONTENT_TYPE), content_type, "{url}");
        assert!(headers.get(header::CONTENT_ENCODING).is_none(), "{url}");
        assert_eq!(
            value(&headers, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{url}"
        );
        assert_eq!(value(&headers, header::VARY), "Accept-Encoding");
        let v = url.rsplit_once("?v=").unwrap().1;
        assert_eq!(
            hex(&Sha256::digest(&raw)[..8]),
            v,
            "{url}: the bytes do not match the URL's hash"
        );
        let etag = value(&headers, header::ETAG);

        // The same URL without its hash (or with another one) is revalidated each time.
        let bare = url.split_once('?').unwrap().0;
        let (_, headers, _) = get(bare, None, None).await;
        assert_eq!(value(&headers, header::CACHE_CONTROL), "no-cache", "{bare}");
        let (_, headers, _) = get(&format!("{bare}?v=0123456789abcdef"), None, None).await;
        assert_eq!(value(&headers, header::CACHE_CONTROL), "no-cache", "{bare}");

        // gzip when that is all the browser takes; brotli when it takes both.
        let (status, headers, gz) = get(url, Some("gzip"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value(&headers, header::CONTENT_ENCODING), "gzip", "{url}");
        assert_eq!(value(&headers, header::CONTENT_TYPE), content_type, "{url}");
        assert!(
            gz.len() < raw.len(),
            "{url}: gzip {} of {}",
            gz.len(),
            raw.len()
        );
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert!(unzipped == raw, "{url}: the gzip variant is not the file");
        let gz_etag = value(&headers, header::ETAG);
        assert_ne!(gz_etag, etag, "each encoding has its own validator");

        let (status, headers, br) = get(url, Some("gzip, deflate, br"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value(&headers, header::CONTENT_ENCODING), "br", "{url}");
        let mut unbrotlied = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut unbrotlied)
            .unwrap();
        assert!(
            unbrotlied == raw,
            "{url}: the brotli variant is not the file"
        );
        let (_, headers, _) = get(url, Some("br;q=0, gzip"), None).await;
        assert_eq!(value(&headers, header::CONTENT_ENCODING), "gzip", "{url}");

        // The validator answers 304 without a body, for the representation it names.
        let (status, headers, body) = get(url, None, Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{url}");
        assert!(body.is_empty());
        assert_eq!(value(&headers, header::ETAG), etag);
        let (status, _, _) = get(url, Some("gzip"), Some(&gz_etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{url}");
        let (status, _, _) = get(url, None, Some(&gz_etag)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{url}: the gzip validator is not the raw file's"
        );
    }

    // A client-side route is the page; API-like paths are JSON 404s, not the page.
    let (status, headers, body) = get("/devices/some-id", Some("gzip"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value(&headers, header::CACHE_CONTROL), "no-cache");
    assert_eq!(value(&headers, header::CONTENT_ENCODING), "gzip");
    let mut page = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut page)
        .unwrap();
    assert_eq!(page, html);
    for path in ["/api/v1/no-such-route", "/api/other"] {
        let (status, headers, body) = get(path, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(value(&headers, header::CONTENT_TYPE).starts_with("application/json"));
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["code"], "route_not_found", "{path}");
    }
    let (status, _, body) = get("/pkg/stead_web_bg.wasm.gz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        html,
        "a variant is chosen by Accept-Encoding, never served by its own name"
    );

    // And the API: the platform admin logs in and reads itself.
    let admin = server.admin().await;
    let me: Me = admin.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(me.email, server.admin_email);
}

fn value(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The URL in the page that starts with `prefix`, up to its closing quote.
fn hashed_url(html: &str, prefix: &str) -> String {
    let start = html
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix}… in the page:\n{html}"));
    let rest = &html[start..];
    let end = rest.find('"').unwrap();
    let url = rest[..end].to_owned();
    assert_eq!(url.len(), prefix.len() + 16, "{url}: 16 hex digits of hash");
    url
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An ELF executable without a `PT_INTERP` program header needs no dynamic loader.
fn is_static(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF executable");
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).all(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) != PT_INTERP
    })
}
