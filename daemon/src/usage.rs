//! The last hour of each running app's CPU and memory, one sample a minute,
//! for the dashboard's charts. Kept in memory only: a restart of the daemon
//! starts the charts afresh.

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
            let (Some(pid), Some(uptime_s), Some(average)) =
                (app.pid, app.uptime_s, app.cpu_percent)
            else {
                // Not running now: no point on the chart, and the next
                // process starts its own count.
                entry.last = None;
                continue;
            };
            // `ps` gives the average over the process's life; the CPU
            // seconds used so far follow from it.
            let used = average / 100.0 * uptime_s as f64;
            let cpu_percent = match entry.last {
                Some((last_pid, last_used, last_at)) if last_pid == pid && now > last_at => {
                    ((used - last_used) / (now - last_at) as f64 * 100.0).max(0.0)
                }
                _ => average,
            };
            entry.last = Some((pid, used, now));
            if entry.samples.len() == KEPT {
                entry.samples.pop_front();
            }
            entry.samples.push_back(UsageSample {
                at_unix_s: now,
                cpu_percent,
                rss_bytes: app.rss_bytes.unwrap_or(0),
            });
        }
    }

    /// The owner's series, by project id.
    pub fn of(&self, owner_id: i64) -> Vec<UsageSeries> {
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
        list.sort_by_key(|s| s.project_id);
        list
    }
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
        }
    }

    #[test]
    fn cpu_is_measured_between_samples_and_an_hour_is_kept() {
        let log = UsageLog::default();
        // 10 s of CPU in the first 100 s, then 30 s more in the next 60.
        log.record(&[(1, app(7, Some(42), 100, 10.0, 5))], 1000);
        log.record(&[(1, app(7, Some(42), 160, 25.0, 6))], 1060);
        let series = log.of(1);
        let cpu: Vec<f64> = series[0].samples.iter().map(|s| s.cpu_percent).collect();
        assert_eq!(cpu.len(), 2);
        assert!(
            (cpu[0] - 10.0).abs() < 1e-9 && (cpu[1] - 50.0).abs() < 1e-9,
            "{cpu:?}"
        );
        assert!(log.of(2).is_empty(), "another owner sees nothing");
        for minute in 0..100 {
            log.record(
                &[(1, app(7, Some(42), 200 + minute * 60, 1.0, 1))],
                2000 + minute * 60,
            );
        }
        assert_eq!(log.of(1)[0].samples.len(), KEPT);
        log.record(&[], 9999);
        assert!(log.of(1).is_empty(), "a removed app is forgotten");
    }
}
