//! Serves `/metrics` over HTTP while a run goes on.

use super::Metrics;
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// A running `/metrics` endpoint. Dropping it stops the server.
pub struct MetricsServer {
    addr: SocketAddr,
    scrapes: Arc<AtomicU64>,
    scraped: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `metrics`.
    pub async fn start(addr: SocketAddr, metrics: Metrics) -> anyhow::Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics endpoint to {addr}"))?;
        let addr = listener.local_addr()?;
        let scrapes = Arc::new(AtomicU64::new(0));
        let scraped = Arc::new(Notify::new());
        let (count, notify) = (scrapes.clone(), scraped.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (metrics, count, notify) = (metrics.clone(), count.clone(), notify.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let response = if request.uri().path() == "/metrics" {
                            let body = metrics.render();
                            count.fetch_add(1, Ordering::Relaxed);
                            notify.notify_waiters();
                            Response::builder()
                                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                                .body(Full::new(Bytes::from(body)))
                        } else {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from_static(
                                    b"kernel-host serves /metrics\n",
                                )))
                        };
                        async move { response }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = connection.await {
                        tracing::debug!("metrics connection ended: {e}");
                    }
                });
            }
        });
        Ok(MetricsServer {
            addr,
            scrapes,
            scraped,
            task,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scrapes served so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// Keeps serving until a scrape beyond the first `seen` arrives (pass
    /// [`MetricsServer::scrapes`] taken when the run ended) or `limit`
    /// passes, so a Prometheus server gets the final values of a short
    /// batch run. Returns whether such a scrape came.
    pub async fn hold_for_final_scrape(&self, seen: u64, limit: Duration) -> bool {
        let wait = async {
            loop {
                // Register for the wake-up before checking, so a scrape
                // between the check and the wait is not missed.
                let notified = self.scraped.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.scrapes() > seen {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
