//! The browser console: the built files of `web/` at `/`, and `index.html` for every other
//! non-API path so that client-side routes survive a reload.

use std::path::PathBuf;

use actix_web::{HttpRequest, web};

pub fn routes(cfg: &mut web::ServiceConfig, dir: Option<PathBuf>) {
    let Some(dir) = dir else { return };
    let index = dir.join("index.html");
    cfg.service(
        actix_files::Files::new("/", dir)
            .index_file("index.html")
            .default_handler(web::to(move |req: HttpRequest| {
                let index = index.clone();
                async move { spa_fallback(req, index).await }
            })),
    );
}

async fn spa_fallback(
    req: HttpRequest,
    index: PathBuf,
) -> Result<actix_web::HttpResponse, actix_web::Error> {
    let api_like = ["/api/", "/healthz", "/readyz", "/metrics"]
        .iter()
        .any(|p| req.path().starts_with(p));
    if api_like || req.method() != actix_web::http::Method::GET {
        return Ok(super::not_found(req).await);
    }
    Ok(actix_files::NamedFile::open(index)?
        .use_last_modified(true)
        .into_response(&req))
}
