//! The browser console: the built files of `web/` at `/`, and `index.html` for every other
//! non-API GET path so that client-side routes survive a reload.
//!
//! The console is compiled into the binary (`web/dist` at build time, see `server/build.rs`), so
//! a `stead` copied alone anywhere serves it. `STEAD_CONSOLE_DIR` serves a directory from disk
//! instead, for console development. Either way each answer carries an ETag from the content
//! hash (`If-None-Match` answers 304); a URL whose `?v=` is that hash (the asset URLs
//! `xtask/src/console.rs` writes into `index.html`) may be cached forever, everything else is
//! revalidated. The embedded build also carries `.br`/`.gz` variants of the compressible files,
//! written by the console build, answered when the browser accepts them.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

/// `web/dist` as it was when this binary was compiled; empty when it was not built.
#[derive(rust_embed::Embed)]
#[folder = "../web/dist"]
#[allow_missing = true]
struct Embedded;

/// Where the console's files come from.
#[derive(Debug, Clone)]
pub enum Console {
    /// Compiled into the binary.
    Embedded,
    /// Read from disk at each request (`STEAD_CONSOLE_DIR`), without precompressed variants:
    /// a developer editing files by hand would otherwise get a stale `.gz`.
    Dir(Arc<Path>),
}

impl Console {
    /// The configured directory, else the embedded build, else none (the binary was built before
    /// the console was).
    pub fn pick(dir: Option<PathBuf>) -> Option<Console> {
        match dir {
            Some(dir) => Some(Console::Dir(dir.into())),
            None => Embedded::get(INDEX).map(|_| Console::Embedded),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Console::Embedded => "embedded".into(),
            Console::Dir(dir) => dir.display().to_string(),
        }
    }

    /// The file at `path` (relative, `/`-separated), in the best encoding `accept` allows.
    async fn get(&self, path: &str, accept: &AcceptEncoding) -> Option<Asset> {
        match self {
            Console::Embedded => {
                let raw = Embedded::get(path)?;
                let hash = short_hash(&raw.metadata.sha256_hash());
                for encoding in [Encoding::Brotli, Encoding::Gzip] {
                    if accept.allows(encoding)
                        && let Some(variant) =
                            Embedded::get(&format!("{path}.{}", encoding.extension()))
                    {
                        return Some(Asset {
                            body: variant.data,
                            hash,
                            encoding: Some(encoding),
                        });
                    }
                }
                Some(Asset {
                    body: raw.data,
                    hash,
                    encoding: None,
                })
            }
            Console::Dir(dir) => {
                let file = safe_join(dir, path)?;
                let body = web::block(move || std::fs::read(file)).await.ok()?.ok()?;
                let hash = short_hash(&Sha256::digest(&body).into());
                Some(Asset {
                    body: Cow::Owned(body),
                    hash,
                    encoding: None,
                })
            }
        }
    }
}

const INDEX: &str = "index.html";

pub fn routes(cfg: &mut web::ServiceConfig, console: Option<Console>) {
    let Some(console) = console else { return };
    cfg.app_data(web::Data::new(console)).service(
        web::resource("/{path:.*}")
            .route(web::get().to(serve))
            .route(web::head().to(serve))
            .default_service(web::to(super::not_found)),
    );
}

async fn serve(req: HttpRequest, console: web::Data<Console>) -> HttpResponse {
    let api_like = ["/api/", "/healthz", "/readyz", "/metrics"]
        .iter()
        .any(|p| req.path().starts_with(p));
    if api_like {
        return super::not_found(req).await;
    }
    let accept = AcceptEncoding::parse(&req);
    let path = req.path().trim_start_matches('/');
    let path = if path.is_empty() { INDEX } else { path };
    // The precompressed variants are chosen through Accept-Encoding, never asked for by name.
    let variant_name = path.ends_with(".gz") || path.ends_with(".br");
    let found = if variant_name {
        None
    } else {
        console.get(path, &accept).await.map(|a| (path, a))
    };
    let (path, asset) = match found {
        Some(found) => found,
        // A client-side route (or a missing file): the app, which shows its own "not found".
        None => match console.get(INDEX, &accept).await {
            Some(index) => (INDEX, index),
            None => return super::not_found(req).await,
        },
    };
    asset.respond(&req, path)
}

/// One file as it will be sent.
struct Asset {
    body: Cow<'static, [u8]>,
    /// The first 16 hex digits of the SHA-256 of the raw file: the `?v=` of its hashed URL.
    hash: String,
    encoding: Option<Encoding>,
}

impl Asset {
    fn respond(self, req: &HttpRequest, path: &str) -> HttpResponse {
        // Each encoding is its own representation, so its own strong validator.
        let etag = match self.encoding {
            Some(encoding) => format!("\"{}-{}\"", self.hash, encoding.extension()),
            None => format!("\"{}\"", self.hash),
        };
        let hashed_url = req
            .query_string()
            .split('&')
            .any(|pair| pair.strip_prefix("v=") == Some(self.hash.as_str()));
        let cache = if hashed_url {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let not_modified = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| etag_matches(v, &etag));
        let mut response = if not_modified {
            HttpResponse::build(StatusCode::NOT_MODIFIED)
        } else {
            HttpResponse::Ok()
        };
        response
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache))
            .insert_header((header::VARY, "Accept-Encoding"));
        if not_modified {
            return response.finish();
        }
        response.insert_header((header::CONTENT_TYPE, content_type(path)));
        if let Some(encoding) = self.encoding {
            response.insert_header((
                header::CONTENT_ENCODING,
                HeaderValue::from_static(encoding.token()),
            ));
        }
        // For HEAD, actix sends the headers (Content-Length included) and drops the body.
        response.body(self.body)
    }
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/` is ignored.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The suffix the console build gives the file.
    fn extension(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gz",
        }
    }
}

/// The codings a request accepts: those listed with a non-zero quality (or `*`).
struct AcceptEncoding {
    br: bool,
    gzip: bool,
}

impl AcceptEncoding {
    fn parse(req: &HttpRequest) -> AcceptEncoding {
        AcceptEncoding::of(
            req.headers()
                .get_all(header::ACCEPT_ENCODING)
                .filter_map(|v| v.to_str().ok()),
        )
    }

    fn of<'a>(values: impl Iterator<Item = &'a str>) -> AcceptEncoding {
        let mut accept = AcceptEncoding {
            br: false,
            gzip: false,
        };
        for item in values.flat_map(|v| v.split(',')) {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            let ok = !refused;
            match coding.as_str() {
                "br" => accept.br = ok,
                "gzip" | "x-gzip" => accept.gzip = ok,
                "*" => {
                    accept.br |= ok;
                    accept.gzip |= ok;
                }
                _ => {}
            }
        }
        accept
    }

    fn allows(&self, encoding: Encoding) -> bool {
        match encoding {
            Encoding::Brotli => self.br,
            Encoding::Gzip => self.gzip,
        }
    }
}

fn short_hash(sha256: &[u8; 32]) -> String {
    hex::encode(&sha256[..8])
}

/// `path` under `dir`, refusing anything that would leave it.
fn safe_join(dir: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(relative))
}

/// The console's file types; `application/wasm` matters: browsers compile only that streaming.
fn content_type(path: &str) -> &'static str {
    let extension = path
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .unwrap_or_default();
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_in_lists() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abc-gz\"", "\"abc\""));
    }

    #[test]
    fn accept_encoding_honours_zero_quality_and_wildcards() {
        let of = |v: &str| AcceptEncoding::of(std::iter::once(v));
        let a = of("gzip, deflate, br");
        assert!(a.allows(Encoding::Brotli) && a.allows(Encoding::Gzip));
        let a = of("gzip;q=1.0, br;q=0");
        assert!(!a.allows(Encoding::Brotli) && a.allows(Encoding::Gzip));
        let a = of("*");
        assert!(a.allows(Encoding::Brotli) && a.allows(Encoding::Gzip));
        let a = of("identity");
        assert!(!a.allows(Encoding::Brotli) && !a.allows(Encoding::Gzip));
    }

    #[test]
    fn paths_cannot_leave_the_directory() {
        let dir = Path::new("/srv/console");
        assert_eq!(
            safe_join(dir, "pkg/a.js"),
            Some(PathBuf::from("/srv/console/pkg/a.js"))
        );
        assert_eq!(safe_join(dir, "../etc/passwd"), None);
        assert_eq!(safe_join(dir, "pkg/../../x"), None);
        assert_eq!(safe_join(dir, "/etc/passwd"), None);
    }
}
