//! `stead-e2e webhook-sink`: a fast webhook receiver for the benchmarks (the tests use the
//! Python reference receiver, which verifies as faithfully but not as fast). Every request's
//! Standard Webhooks signature is checked with the `standardwebhooks` crate; `GET /stats`
//! answers what arrived. It listens on loopback only.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use clap::Parser;

#[derive(Debug, Parser)]
pub struct Args {
    /// Port on 127.0.0.1 (0: any; the chosen one is printed as `ready PORT`).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The endpoint's `whsec_…` secret.
    #[arg(long)]
    secret: String,
    /// Time each answer waits (a slow receiver).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    verified: AtomicU64,
    ids: std::sync::Mutex<HashSet<String>>,
}

struct Sink {
    hook: standardwebhooks::Webhook,
    delay: Duration,
    stats: Stats,
}

async fn hook(sink: web::Data<Arc<Sink>>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    sink.stats.requests.fetch_add(1, Ordering::Relaxed);
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        if let Some(v) = req
            .headers()
            .get(name)
            .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            headers.insert(name, v);
        }
    }
    if sink.hook.verify(&body, &headers).is_ok() {
        sink.stats.verified.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok())
            && let Ok(mut ids) = sink.stats.ids.lock()
        {
            ids.insert(id.to_owned());
        }
    }
    if !sink.delay.is_zero() {
        tokio::time::sleep(sink.delay).await;
    }
    HttpResponse::NoContent().finish()
}

async fn stats(sink: web::Data<Arc<Sink>>) -> HttpResponse {
    let unique = sink.stats.ids.lock().map(|ids| ids.len()).unwrap_or(0);
    HttpResponse::Ok().json(serde_json::json!({
        "requests": sink.stats.requests.load(Ordering::Relaxed),
        "verified": sink.stats.verified.load(Ordering::Relaxed),
        "unique": unique,
    }))
}

pub async fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let sink = Arc::new(Sink {
        hook: standardwebhooks::Webhook::new(&args.secret)
            .map_err(|e| anyhow::anyhow!("--secret: {e}"))?,
        delay: Duration::from_millis(args.delay_ms),
        stats: Stats::default(),
    });
    let data = web::Data::new(sink);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/stats", web::get().to(stats))
            .default_service(web::post().to(hook))
    })
    .workers(1)
    .backlog(4096)
    .max_connections(100_000)
    .bind(("127.0.0.1", args.port))?;
    let port = server.addrs().first().map(|a| a.port()).unwrap_or(0);
    println!("ready {port}");
    server.run().await?;
    Ok(std::process::ExitCode::SUCCESS)
}
