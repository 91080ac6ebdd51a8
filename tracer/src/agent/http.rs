//! The agent's HTTP endpoints, on a tokio runtime of their own thread:
//! /metrics, /debug/pprof/mutex, /debug/pprof/profile, /report.json,
//! /healthz. Every answer but a CPU profile's is built from what the
//! tracing loop last published, so a scrape never waits for the kernel; a
//! CPU profile is taken when asked for, on a blocking thread, for the
//! seconds the request says (as Go's net/http/pprof does).

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, server::conn::http1};
use hyper_util::rt::TokioIo;

use super::Shared;

/// The loop publishes at least this often while it runs; /healthz fails
/// when it has not.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Serves on `listener` until the process exits.
pub fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("agent-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        log::error!("serving HTTP: {e}");
                        return;
                    }
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let shared = Arc::clone(&shared);
                            async move {
                                let r = if req.uri().path() == "/debug/pprof/profile"
                                    && req.method() == hyper::Method::GET
                                {
                                    cpu_profile(shared, req.uri().query()).await
                                } else {
                                    respond(&shared, &req)
                                };
                                Ok::<_, Infallible>(r)
                            }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        })?;
    Ok(())
}

fn reply(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, kind)
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", body)
}

/// The answer to one request.
fn respond(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".into(),
        );
    }
    let Ok(p) = shared.state.lock() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the agent's state is poisoned\n".into(),
        );
    };
    match req.uri().path() {
        "/metrics" => {
            let om = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            let body = p.metrics.render(&p.live, om);
            let kind = if om {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                "text/plain; version=0.0.4; charset=utf-8"
            };
            reply(StatusCode::OK, kind, body)
        }
        // delta_mutex: the path Pyroscope and Alloy scrape by default for a
        // mutex profile of one interval; each window already is one.
        "/debug/pprof/mutex" | "/debug/pprof/delta_mutex" => match &p.pprof {
            Some(b) => reply(
                StatusCode::OK,
                "application/octet-stream",
                Bytes::from(b.to_vec()),
            ),
            None => text(StatusCode::SERVICE_UNAVAILABLE, p.not_yet()),
        },
        "/debug/pprof/profile" => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "a CPU profile is taken by a GET (it lasts ?seconds=N)\n".into(),
        ),
        "/report.json" => match &p.report_json {
            Some(j) => reply(
                StatusCode::OK,
                "application/json",
                Bytes::from(j.to_string()),
            ),
            None => text(StatusCode::SERVICE_UNAVAILABLE, p.not_yet()),
        },
        "/healthz" => {
            if let Some(e) = &p.failed {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("tracing failed: {e}\n"),
                )
            } else if !p.tracing {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "starting: the programs are being loaded\n".into(),
                )
            } else if p.heartbeat.elapsed() > HEARTBEAT {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the tracing loop has not turned for {:.0} s\n",
                        p.heartbeat.elapsed().as_secs_f64()
                    ),
                )
            } else {
                text(StatusCode::OK, "ok\n".into())
            }
        }
        "/" => text(
            StatusCode::OK,
            "tracer agent: /metrics /debug/pprof/mutex (also as delta_mutex) /debug/pprof/profile?seconds=N /report.json /healthz\n".into(),
        ),
        other => text(
            StatusCode::NOT_FOUND,
            format!(
                "no endpoint {other}: /metrics, /debug/pprof/mutex, /debug/pprof/profile, /report.json, /healthz\n"
            ),
        ),
    }
}

/// `/debug/pprof/profile?seconds=N`: samples the processes traced now for
/// N seconds (30 unless asked) on a blocking thread, then answers with the
/// gzip'd pprof CPU profile. One at a time; the others are told when to
/// come back.
async fn cpu_profile(shared: Arc<Shared>, query: Option<&str>) -> Response<Full<Bytes>> {
    let seconds = match super::cpu::seconds(query) {
        Ok(s) => s,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let pids = match shared.state.lock() {
        Ok(p) if p.failed.is_some() => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "tracing failed: see /healthz\n".into(),
            );
        }
        Ok(p) => p.targets.clone(),
        Err(_) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the agent's state is poisoned\n".into(),
            );
        }
    };
    if pids.is_empty() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no process is traced now: nothing to profile\n".into(),
        );
    }
    let job = tokio::task::spawn_blocking(move || {
        let Some(_taking) = shared.cpu.try_take() else {
            return Err(None);
        };
        let stop = crate::cmd::contention::stop_flag().map_err(|e| Some(format!("{e:#}")))?;
        shared
            .cpu
            .take(&pids, seconds, &stop)
            .map_err(|e| Some(crate::exit::message(&e)))
    });
    match job.await {
        Ok(Ok(pb)) => reply(StatusCode::OK, "application/octet-stream", pb),
        Ok(Err(None)) => {
            let mut r = text(
                StatusCode::TOO_MANY_REQUESTS,
                "a CPU profile is being taken already: one at a time\n".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            r
        }
        Ok(Err(Some(e))) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the CPU profile failed: {e}\n"),
        ),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the CPU profile failed: {e}\n"),
        ),
    }
}
