//! The last hour of each running app's CPU and memory, one sample a minute,
//! for the dashboard's charts, which also get a reading of the moment they
//! ask (so an app started a few seconds ago has a point too). Kept in memory
//! only: a restart of the daemon starts the charts afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appforge_shared::protocol::{ProcessInfo, UsageSample, UsageSeries};

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Samples kept per app: an hour's worth.
const KEPT: usize = 60;

/// One app's samples and what the next one is measured against.
struct Series {
    owner_id: i64,
    name: String,
    samples: VecDeque<UsageSample>,
    /// The process, and the CPU seconds it had used, at the last sample.
    last: Option<(u32, f64, u64)>,
}

/// Every supervised app's recent use.
#[derive(Default)]
pub struct UsageLog {
    series: Mutex<HashMap<i64, Series>>,
}

impl UsageLog {
    /// Records one sample of each app in `apps` (owner, `ps` line), at `now`
    /// (seconds since the epoch). Apps no longer listed are forgotten.
    pub fn record(&self, apps: &[(i64, ProcessInfo)], now: u64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.retain(|id, _| apps.iter().any(|(_, app)| app.project_id == *id));
        for (owner_id, app) in apps {
            let entry = series.entry(app.project_id).or_insert_with(|| Series {
                owner_id: *owner_id,
                name: app.name.clone(),
                samples: VecDeque::with_capacity(KEPT),
                last: None,
            });
            entry.name.clone_from(&app.name);
            let Some((sample, last)) = point(entry.last, app, now) else {
                // Not running now: no point on the chart, and the next
                // process starts its own count.
                entry.last = None;
                continue;
            };
            entry.last = Some(last);
            if entry.samples.len() == KEPT {
                entry.samples.pop_front();
            }
            entry.samples.push_back(sample);
        }
    }

    /// The owner's series, by project id, each ending with a reading of
    /// `now` from `running` (the owner's `ps` lines), which is not kept.
    pub fn of(&self, owner_id: i64, running: &[ProcessInfo], now: u64) -> Vec<UsageSeries> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<UsageSeries> = series
            .iter()
            .filter(|(_, s)| s.owner_id == owner_id)
            .map(|(id, s)| UsageSeries {
                project_id: *id,
                name: s.name.clone(),
                samples: s.samples.iter().copied().collect(),
            })
            .collect();
        for app in running {
            let kept = series.get(&app.project_id);
            let Some((sample, _)) = point(kept.and_then(|s| s.last), app, now) else {
                continue;
            };
            match list.iter_mut().find(|s| s.project_id == app.project_id) {
                // A minute's sample taken this very second is reading enough.
                Some(s) if s.samples.last().is_some_and(|l| l.at_unix_s >= now) => {}
                Some(s) => s.samples.push(sample),
                None => list.push(UsageSeries {
                    project_id: app.project_id,
                    name: app.name.clone(),
                    samples: vec![sample],
                }),
            }
        }
        list.sort_by_key(|s| s.project_id);
        list
    }
}

/// One reading of `app` at `now`, given what was last kept of its process
/// (pid, CPU seconds used, when); `None` when it has no process. Also what
/// to keep for the next.
fn point(
    last: Option<(u32, f64, u64)>,
    app: &ProcessInfo,
    now: u64,
) -> Option<(UsageSample, (u32, f64, u64))> {
    let (Some(pid), Some(uptime_s), Some(average)) = (app.pid, app.uptime_s, app.cpu_percent)
    else {
        return None;
    };
    // `ps` gives the average over the process's life; the CPU seconds used
    // so far follow from it.
    let used = average / 100.0 * uptime_s as f64;
    let cpu_percent = match last {
        Some((last_pid, last_used, last_at)) if last_pid == pid && now > last_at => {
            ((used - last_used) / (now - last_at) as f64 * 100.0).max(0.0)
        }
        _ => average,
    };
    let sample = UsageSample {
        at_unix_s: now,
        cpu_percent,
        rss_bytes: app.rss_bytes.unwrap_or(0),
    };
    Some((sample, (pid, used, now)))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: i64, pid: Option<u32>, uptime_s: u64, cpu: f64, rss: u64) -> ProcessInfo {
        ProcessInfo {
            project_id: id,
            name: format!("app{id}"),
            version: None,
            newer_version: None,
            check_status: None,
            hint: None,
            status: "running".into(),
            pid,
            port: Some(8100),
            url: None,
            restarts: 0,
            uptime_s: Some(uptime_s),
            cpu_percent: Some(cpu),
            rss_bytes: Some(rss),
            last_exit: None,
            host: "here".into(),
            missing_settings: Vec::new(),
            target: None,
        }
    }

    #[test]
    fn cpu_is_measured_between_samples_and_an_hour_is_kept() {
        let log = UsageLog::default();
        // 10 s of CPU in the first 100 s, then 30 s more in the next 60.
        log.record(&[(1, app(7, Some(42), 100, 10.0, 5))], 1000);
        log.record(&[(1, app(7, Some(42), 160, 25.0, 6))], 1060);
        let series = log.of(1, &[], 1060);
        let cpu: Vec<f64> = series[0].samples.iter().map(|s| s.cpu_percent).collect();
        assert_eq!(cpu.len(), 2);
        assert!(
            (cpu[0] - 10.0).abs() < 1e-9 && (cpu[1] - 50.0).abs() < 1e-9,
            "{cpu:?}"
        );
        assert!(
            log.of(2, &[], 1060).is_empty(),
            "another owner sees nothing"
        );
        for minute in 0..100 {
            log.record(
                &[(1, app(7, Some(42), 200 + minute * 60, 1.0, 1))],
                2000 + minute * 60,
            );
        }
        assert_eq!(log.of(1, &[], 9000)[0].samples.len(), KEPT);
        log.record(&[], 9999);
        assert!(
            log.of(1, &[], 9999).is_empty(),
            "a removed app is forgotten"
        );
    }

    #[test]
    fn a_reading_of_the_moment_ends_each_series_and_is_not_kept() {
        let log = UsageLog::default();
        // Started seconds ago: no minute's sample yet, but a point.
        let fresh = app(9, Some(50), 5, 20.0, 7);
        let series = log.of(1, std::slice::from_ref(&fresh), 1005);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].samples.len(), 1);
        assert_eq!(series[0].samples[0].rss_bytes, 7);
        // After a kept sample, the reading is measured from it.
        log.record(&[(1, app(9, Some(50), 60, 10.0, 7))], 1060);
        let later = app(9, Some(50), 90, 20.0, 8);
        let series = log.of(1, std::slice::from_ref(&later), 1090);
        let cpu: Vec<f64> = series[0].samples.iter().map(|s| s.cpu_percent).collect();
        // 6 s by 1060, 18 s by 1090: 12 s in 30 s.
        assert!((cpu[1] - 40.0).abs() < 1e-9, "{cpu:?}");
        // Nothing of it was kept, and a sample of this second is not doubled.
        assert_eq!(log.of(1, &[], 1090)[0].samples.len(), 1);
        assert_eq!(
            log.of(1, std::slice::from_ref(&later), 1060)[0]
                .samples
                .len(),
            1
        );
    }
}
