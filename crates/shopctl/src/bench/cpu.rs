//! The shop's CPU time over the measured window, in all and by thread, from `/proc`.
//!
//! Only for a shop the bench started itself: its process is a child whose threads are all the
//! shop's (a shop given by `--url` may share its process with anything). The kernel counts each
//! thread's user and system time in clock ticks (`utime` and `stime` in `/proc/<pid>/stat` and
//! `/proc/<pid>/task/<tid>/stat`); two readings, at the start and the end of the window, give
//! what the window cost. Threads are grouped by name (`comm`) into the shop's components, so
//! that a change shows where it saved.
//!
//! The payment provider (psp-sim) runs in the same process but is not the shop: it stands for
//! a company of its own. Its thread (see [`crate::up::PROVIDER_THREAD_NAME`]) is counted apart,
//! and the shop's figure is the process's time less the provider's.

use std::collections::BTreeMap;
use std::time::Instant;

/// A thread's or process's name and CPU time so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    /// `comm`: the name, at most 15 bytes, which may hold spaces and parentheses.
    pub(crate) name: String,
    /// `utime + stime`, in clock ticks.
    pub(crate) ticks: u64,
}

/// Parses a `stat` line: `pid (comm) state ppid … utime stime …`.
///
/// `comm` is whatever the program named the thread, `)` and spaces included, so the fields are
/// counted from the *last* `)`; `utime` and `stime` are fields 14 and 15 of the line, the 12th
/// and 13th after `comm`.
pub(crate) fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_owned();
    let mut after = line.get(close + 1..)?.split_ascii_whitespace().skip(11);
    let utime: u64 = after.next()?.parse().ok()?;
    let stime: u64 = after.next()?.parse().ok()?;
    Some(Stat {
        name,
        ticks: utime + stime,
    })
}

/// The component of the payment provider's thread, which is not the shop's.
pub(crate) const PROVIDER: &str = "payment_provider";

/// The component a thread belongs to, from its name.
///
/// The names are the shop's own (`tokio-rt-worker`, `metrics-upkeep`, and each service's
/// database threads: `order-db-write`, `pay-db-read`, `inv-db-ckpt`, …, see
/// [`platform::db::thread_prefix`]), librdkafka's (`rdk:main`, `rdk:broker1`, and
/// `rdk:broker-1` for a client's internal broker thread), rdkafka's producer poller (`producer
/// polling`, cut to 15 bytes) and the embedded broker's (`rdk:mock`). A database thread's group
/// names its kind and its service (`db_writers:order-api`). A name the list does not know is
/// its own group, less trailing digits, so that a new kind of thread still shows up.
pub(crate) fn component(name: &str) -> String {
    if let Some(group) = database_component(name) {
        return group;
    }
    let known = if name == crate::up::PROVIDER_THREAD_NAME {
        PROVIDER
    } else if name.starts_with("tokio-") {
        "tokio_workers"
    } else if name == "rdk:mock" {
        "embedded_broker"
    } else if name.starts_with("rdk:") || name.starts_with("producer poll") {
        "kafka_clients"
    } else {
        ""
    };
    if known.is_empty() {
        name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_owned()
    } else {
        known.to_owned()
    }
}

/// The services whose database threads `shopctl up` runs.
const SERVICES: [&str; 3] = [
    order_api::Config::SERVICE,
    payment_svc::Config::SERVICE,
    inventory_svc::Config::SERVICE,
];

/// `db_writers:order-api` for `order-db-write` (or `order-db-write1`, one of several):
/// `<prefix>-db-<kind>[n]`, the kind grouped, the prefix told back into its service's name
/// (kept as it is for a prefix of no known service). `None` for any other thread.
fn database_component(name: &str) -> Option<String> {
    let (prefix, kind) = name.split_once("-db-")?;
    let group = match kind.trim_end_matches(|c: char| c.is_ascii_digit()) {
        "write" => "db_writers",
        "read" => "db_readers",
        "ckpt" => "db_checkpoints",
        _ => return None,
    };
    let service = SERVICES
        .into_iter()
        .find(|service| platform::db::thread_prefix(service) == prefix)
        .unwrap_or(prefix);
    Some(format!("{group}:{service}"))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_s() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// One reading of a process: its whole CPU time, and each live thread's.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    /// The process id, which is also its main thread's id.
    pid: u32,
    /// The process's `utime + stime`: its live threads' and those that have exited.
    process: u64,
    /// Each thread's name and ticks, by thread id.
    threads: BTreeMap<u32, Stat>,
}

impl Reading {
    /// Reads `/proc/<pid>/stat` and every `/proc/<pid>/task/*/stat`; `None` where `/proc` has
    /// no such process (not Linux, or it is gone).
    pub(crate) fn of(pid: u32) -> Option<Self> {
        let process = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
        let mut threads = BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let Ok(task) = task else { continue };
            let Some(tid) = task.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            // A thread may exit between the listing and the read: skip it.
            if let Some(stat) = std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|line| parse_stat(&line))
            {
                threads.insert(tid, stat);
            }
        }
        Some(Self {
            pid,
            process: process.ticks,
            threads,
        })
    }
}

/// CPU time spent between two readings, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spent {
    /// The whole process, the provider included.
    pub(crate) total_ms: f64,
    /// The payment provider's thread ([`PROVIDER`]).
    pub(crate) provider_ms: f64,
    /// The shop's, by [`component`], the main thread as `main`: the threads alive at the end (a
    /// thread that exited within the window counts in `total_ms` only).
    pub(crate) by_component: BTreeMap<String, f64>,
}

/// [`Spent`] per saga, in ms rounded to µs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PerSaga {
    /// The shop's: the process's less the provider's.
    pub(crate) shop: f64,
    /// The payment provider's.
    pub(crate) provider: f64,
    /// The shop's by component.
    pub(crate) by_component: BTreeMap<String, f64>,
}

impl Spent {
    /// From `start` to `end`, with `ticks_per_s` clock ticks a second.
    pub(crate) fn between(start: &Reading, end: &Reading, ticks_per_s: f64) -> Self {
        let ms = |ticks: u64| ticks as f64 * 1000.0 / ticks_per_s;
        let mut by_component = BTreeMap::new();
        for (tid, stat) in &end.threads {
            // A thread id reused by a newer thread has a different name; count it from zero.
            let before = start
                .threads
                .get(tid)
                .filter(|then| then.name == stat.name)
                .map_or(0, |then| then.ticks);
            // The main thread bears the executable's name, whatever that is.
            let group = if *tid == end.pid {
                "main".to_owned()
            } else {
                component(&stat.name)
            };
            *by_component.entry(group).or_insert(0.0) += ms(stat.ticks.saturating_sub(before));
        }
        let provider_ms = by_component.remove(PROVIDER).unwrap_or(0.0);
        Self {
            total_ms: ms(end.process.saturating_sub(start.process)),
            provider_ms,
            by_component,
        }
    }

    /// The whole process's per saga; `None` without sagas.
    pub(crate) fn total_per_saga(&self, sagas: u64) -> Option<f64> {
        (sagas > 0).then(|| per_saga_ms(self.total_ms, sagas))
    }

    /// Per saga; `None` without sagas.
    pub(crate) fn per_saga(&self, sagas: u64) -> Option<PerSaga> {
        let per = |ms: f64| per_saga_ms(ms, sagas);
        (sagas > 0).then(|| PerSaga {
            shop: per((self.total_ms - self.provider_ms).max(0.0)),
            provider: per(self.provider_ms),
            by_component: self
                .by_component
                .iter()
                .map(|(name, ms)| (name.clone(), per(*ms)))
                .collect(),
        })
    }
}

/// `ms` spread over `sagas` (more than none), rounded to µs.
fn per_saga_ms(ms: f64, sagas: u64) -> f64 {
    (ms / sagas as f64 * 1000.0).round() / 1000.0
}

/// Reads a process at two instants in the background: the start and the end of the window.
#[derive(Debug)]
pub(crate) struct CpuWindow {
    /// The readings, taken at the two instants.
    task: tokio::task::JoinHandle<Option<(Reading, Reading)>>,
}

impl CpuWindow {
    /// Reads `pid` at `from` and at `until`.
    pub(crate) fn start(pid: u32, from: Instant, until: Instant) -> Self {
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            let start = Reading::of(pid)?;
            tokio::time::sleep_until(until.into()).await;
            Some((start, Reading::of(pid)?))
        });
        Self { task }
    }

    /// What the window cost; `None` where a reading failed.
    pub(crate) async fn finish(self) -> Option<Spent> {
        let (start, end) = self.task.await.ok()??;
        Some(Spent::between(&start, &end, ticks_per_s()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line of `/proc/<pid>/task/<tid>/stat`, its name given.
    fn line(name: &str, utime: u64, stime: u64) -> String {
        format!(
            "4242 ({name}) S 1 4242 4242 0 -1 4194368 1520 0 0 0 {utime} {stime} 0 0 20 0 \
             19 0 123456 2000000000 9000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 \
             0 0 0 0 0"
        )
    }

    #[test]
    fn reads_utime_and_stime() {
        let stat = parse_stat(&line("tokio-rt-worker", 150, 25));
        assert_eq!(
            stat,
            Some(Stat {
                name: "tokio-rt-worker".into(),
                ticks: 175
            })
        );
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_is_read_to_its_last_parenthesis() {
        let stat = parse_stat(&line("a) (b) 1 2 3", 7, 3));
        assert_eq!(
            stat,
            Some(Stat {
                name: "a) (b) 1 2 3".into(),
                ticks: 10
            })
        );
    }

    #[test]
    fn a_cut_line_is_not_a_stat() {
        assert_eq!(parse_stat("4242 (order-db-write) S 1 4242"), None);
        assert_eq!(parse_stat("no parentheses 1 2 3"), None);
    }

    #[test]
    fn threads_fall_into_components_by_name() {
        for (name, group) in [
            ("tokio-rt-worker", "tokio_workers"),
            ("order-db-write", "db_writers:order-api"),
            ("pay-db-read", "db_readers:payment-svc"),
            ("inv-db-ckpt", "db_checkpoints:inventory-svc"),
            ("order-db-write3", "db_writers:order-api"),
            ("other-db-read1", "db_readers:other"),
            ("rdk:mock", "embedded_broker"),
            ("rdk:broker1", "kafka_clients"),
            ("rdk:broker-1", "kafka_clients"),
            ("rdk:main", "kafka_clients"),
            ("producer pollin", "kafka_clients"),
            ("metrics-upkeep", "metrics-upkeep"),
            ("psp-sim", "payment_provider"),
            ("worker-12", "worker"),
            ("shopctl", "shopctl"),
        ] {
            assert_eq!(component(name), group, "{name}");
        }
    }

    #[test]
    fn the_window_counts_what_each_thread_spent_within_it() {
        let stat = |name: &str, ticks| Stat {
            name: name.into(),
            ticks,
        };
        let start = Reading {
            pid: 1,
            process: 1_000,
            threads: BTreeMap::from([
                (1, stat("shopctl", 10)),
                (2, stat("tokio-rt-worker", 200)),
                (6, stat("tokio-rt-worker", 300)),
                (3, stat("order-db-write", 100)),
                (4, stat("rdk:main", 50)),
                (7, stat("psp-sim", 100)),
            ]),
        };
        let end = Reading {
            pid: 1,
            process: 1_900,
            threads: BTreeMap::from([
                (1, stat("shopctl", 11)),
                (2, stat("tokio-rt-worker", 250)),
                (6, stat("tokio-rt-worker", 400)),
                (3, stat("order-db-write", 300)),
                // Thread 4 exited; its id went to a new thread, counted from zero.
                (4, stat("pay-db-read", 20)),
                (5, stat("rdk:broker1", 30)),
                (7, stat("psp-sim", 400)),
            ]),
        };
        let spent = Spent::between(&start, &end, 100.0);
        assert_eq!(spent.total_ms, 9_000.0);
        // The provider is not the shop: apart, and not among the shop's components.
        assert_eq!(spent.provider_ms, 3_000.0);
        assert_eq!(
            spent.by_component,
            BTreeMap::from([
                ("tokio_workers".into(), 1_500.0),
                ("db_writers:order-api".into(), 2_000.0),
                ("db_readers:payment-svc".into(), 200.0),
                ("kafka_clients".into(), 300.0),
                ("main".into(), 10.0),
            ])
        );
        let per = spent.per_saga(3_000).expect("sagas ended");
        assert_eq!(per.shop, 2.0);
        assert_eq!(per.provider, 1.0);
        assert_eq!(per.by_component["db_writers:order-api"], 0.667);
        assert_eq!(spent.per_saga(0), None);
        // The whole process, provider and all (the bench's own figure).
        assert_eq!(spent.total_per_saga(3_000), Some(3.0));
        assert_eq!(spent.total_per_saga(0), None);
    }

    #[test]
    fn reads_its_own_process() {
        let reading = Reading::of(std::process::id());
        let reading = reading.expect("this process is in /proc");
        assert!(!reading.threads.is_empty());
    }
}
