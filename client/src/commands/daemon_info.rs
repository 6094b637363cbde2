//! `status` and `ping`.

use std::time::Instant;

use appforge_shared::protocol::{Reply, Request};
use serde_json::json;

use super::accounts::unexpected;
use super::Ctx;
use crate::error::ClientError;
use crate::output::emit;

/// `appforge status`
pub async fn status(ctx: &mut Ctx) -> Result<(), ClientError> {
    let reply = ctx.conn.request(None, Request::Status, |_| {}).await?;
    let Reply::Status(s) = reply else {
        return Err(unexpected(&reply));
    };
    emit(
        ctx.json,
        json!({
            "version": s.version, "pid": s.pid, "uptime_s": s.uptime_s,
            "socket": s.socket, "data_dir": s.data_dir, "database": s.database,
            "users": s.users, "projects": s.projects, "connections": s.connections,
            "web_url": s.web_url, "web_off": s.web_off,
            "protections": s.protections.iter()
                .map(|p| json!({"name": p.name, "on": p.on}))
                .collect::<Vec<_>>(),
            "host": s.host.as_ref()
                .map(|h| json!({"name": h.name, "held": h.held, "detail": h.detail})),
        }),
        || {
            let protections: String = s
                .protections
                .iter()
                .map(|p| format!("\n    [{}] {}", if p.on { "on " } else { "OFF" }, p.name))
                .collect();
            // Whether it supervises its apps: fenced, it leaves them alone.
            let host = s
                .host
                .as_ref()
                .map(|h| format!("\n  host:        {}: {}", h.name, h.detail))
                .unwrap_or_default();
            let text = format!(
                "appforged {}\n  pid:         {}\n  uptime:      {} s\n  socket:      {}\n  \
                 data dir:    {}\n  database:    {}\n  users:       {}\n  projects:    {}\n  \
                 connections: {}\n  dashboard:   {}\n  app protections:{}",
                s.version,
                s.pid,
                s.uptime_s,
                s.socket,
                s.data_dir,
                s.database,
                s.users,
                s.projects,
                s.connections,
                match (&s.web_url, &s.web_off) {
                    (Some(url), _) => url.clone(),
                    (None, Some(why)) => format!("off: {why}"),
                    (None, None) => "off".into(),
                },
                protections
            );
            text + &host
        },
    );
    Ok(())
}

/// `appforge ping`
pub async fn ping(ctx: &mut Ctx) -> Result<(), ClientError> {
    let started = Instant::now();
    let reply = ctx.conn.request(None, Request::Ping, |_| {}).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let Reply::Pong(w) = reply else {
        return Err(unexpected(&reply));
    };
    emit(
        ctx.json,
        json!({"daemon_version": w.daemon_version, "protocol": w.protocol, "elapsed_ms": elapsed_ms}),
        || {
            format!(
                "pong from appforged {} (protocol {}) in {elapsed_ms:.2} ms",
                w.daemon_version, w.protocol
            )
        },
    );
    Ok(())
}

/// `appforge metrics`: Prometheus text, or `{"metrics": TEXT}` with `--json`.
pub async fn metrics(ctx: &mut Ctx) -> Result<(), ClientError> {
    let reply = ctx.conn.request(None, Request::Metrics, |_| {}).await?;
    let Reply::Metrics(text) = reply else {
        return Err(unexpected(&reply));
    };
    if ctx.json {
        println!("{}", json!({ "metrics": text }));
    } else {
        print!("{text}");
    }
    Ok(())
}
