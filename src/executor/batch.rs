//! A play's hosts in batches (`serial`) and when a batch's failures end the run
//! (`any_errors_fatal`, `max_fail_percentage`, every host of the batch lost), as in Ansible.

use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One batch size as `serial` gives it: a number of hosts or a share of the play's hosts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchSize {
    Hosts(usize),
    Percent(f64),
}

impl BatchSize {
    /// `5`, `"5"`, `"30%"` (already rendered if it was a template).
    pub fn parse(v: &Value) -> Result<BatchSize, String> {
        let bad = || format!("serial: expected a number of hosts or a percentage like \"30%\", got {v}");
        match v {
            Value::Number(n) => n.as_u64().map(|n| BatchSize::Hosts(n as usize)).ok_or_else(bad),
            Value::String(s) => {
                let s = s.trim();
                match s.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().ok().filter(|p| *p >= 0.0).map(BatchSize::Percent).ok_or_else(bad),
                    None => s.parse::<usize>().map(BatchSize::Hosts).map_err(|_| bad()),
                }
            }
            _ => Err(bad()),
        }
    }

    /// Hosts per batch out of `total` (a share rounds down, but is at least 1); 0 means all.
    fn hosts(self, total: usize) -> usize {
        match self {
            BatchSize::Hosts(n) => n,
            BatchSize::Percent(p) => ((p / 100.0 * total as f64) as usize).max(1),
        }
    }
}

/// Split a play's hosts into batches: each size in turn, the last one repeated until every
/// host has a batch (Ansible's `serial`). No sizes, or a size of 0, means one batch.
pub fn batches(hosts: &[String], sizes: &[BatchSize]) -> Vec<Vec<String>> {
    let total = hosts.len();
    let mut out = Vec::new();
    let mut rest = hosts;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes.get(i).map_or(0, |s| s.hosts(total));
        if n == 0 || n >= rest.len() {
            out.push(rest.to_vec());
            break;
        }
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
        if i + 1 < sizes.len() {
            i += 1;
        }
    }
    out
}

/// Failures in one batch of a play, shared by its hosts.
#[derive(Debug)]
pub struct Batch {
    size: usize,
    max_fail_percentage: Option<f64>,
    lost: AtomicUsize,
    stop: AtomicBool,
    /// `meta: end_batch` / `end_play` ran at this task index (`usize::MAX`: not ended): no
    /// host of the batch runs it or a later task, but no host fails.
    ended_at: AtomicUsize,
    /// `meta: end_play`: the play's later batches don't run either.
    play_ended: AtomicBool,
    /// Hosts that failed or became unreachable in this batch, as they stopped.
    gone: std::sync::Mutex<Vec<String>>,
}

impl Batch {
    pub fn new(size: usize, max_fail_percentage: Option<f64>) -> Batch {
        Batch { size, max_fail_percentage, lost: AtomicUsize::new(0), stop: AtomicBool::new(false), ended_at: AtomicUsize::new(usize::MAX), play_ended: AtomicBool::new(false), gone: Default::default() }
    }

    /// `host` stopped in this batch, failed or unreachable (it leaves `ansible_play_hosts`).
    pub fn gone(&self, host: &str) {
        self.gone.lock().unwrap_or_else(|e| e.into_inner()).push(host.to_string());
    }

    /// The hosts [`Self::gone`] so far.
    pub fn gone_hosts(&self) -> Vec<String> {
        self.gone.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A host of the batch failed or became unreachable; `fatal` when the failing task has
    /// `any_errors_fatal`. The batch stops (its other hosts run no further task, and the run
    /// ends after it) when that is fatal or the failures pass `max_fail_percentage`.
    pub fn host_lost(&self, fatal: bool) {
        let lost = self.lost.fetch_add(1, Ordering::AcqRel) + 1;
        let too_many = self.max_fail_percentage.is_some_and(|max| lost as f64 * 100.0 / self.size.max(1) as f64 > max);
        if fatal || too_many {
            self.stop.store(true, Ordering::Release);
        }
    }

    /// `meta: end_batch` (or `end_play`, which also skips the play's later batches) at task
    /// `index`: the batch ends there for every host without failing any. As in Ansible's
    /// linear strategy, where every host has done the tasks before it, hosts still behind run
    /// their tasks up to `index`.
    pub fn end(&self, play: bool, index: usize) {
        self.play_ended.fetch_or(play, Ordering::AcqRel);
        self.ended_at.fetch_min(index, Ordering::AcqRel);
    }

    /// A failure stops the batch (`any_errors_fatal`, `max_fail_percentage`): hosts finish the
    /// task they are in and run no other.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Whether a host of the batch may not run task `index`: the batch is stopping, or it
    /// ended at that task or before.
    pub fn stops_before(&self, index: usize) -> bool {
        self.stopping() || self.ended_at.load(Ordering::Acquire) <= index
    }

    /// `meta: end_play` ran: the play's later batches don't run.
    pub fn play_ended(&self) -> bool {
        self.play_ended.load(Ordering::Acquire)
    }

    /// After the batch: does the run end here? (Stopped, or no host of the batch is left.)
    pub fn ends_run(&self) -> bool {
        self.stop.load(Ordering::Acquire) || (self.size > 0 && self.lost.load(Ordering::Acquire) >= self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    fn sizes(b: &[Vec<String>]) -> Vec<usize> {
        b.iter().map(Vec::len).collect()
    }

    #[test]
    fn serial_sizes_as_ansible_counts_them() {
        assert_eq!(sizes(&batches(&hosts(5), &[])), [5]);
        assert_eq!(sizes(&batches(&hosts(5), &[BatchSize::Hosts(0)])), [5]);
        assert_eq!(sizes(&batches(&hosts(5), &[BatchSize::Hosts(2)])), [2, 2, 1]);
        assert_eq!(sizes(&batches(&hosts(5), &[BatchSize::Hosts(9)])), [5]);
        // a list: each size once, the last one repeated
        assert_eq!(sizes(&batches(&hosts(10), &[BatchSize::Hosts(1), BatchSize::Hosts(3)])), [1, 3, 3, 3]);
        // shares of all the play's hosts, rounded down but at least one host
        assert_eq!(sizes(&batches(&hosts(10), &[BatchSize::Percent(30.0)])), [3, 3, 3, 1]);
        assert_eq!(sizes(&batches(&hosts(3), &[BatchSize::Percent(10.0)])), [1, 1, 1]);
        assert_eq!(sizes(&batches(&hosts(10), &[BatchSize::Hosts(1), BatchSize::Percent(50.0)])), [1, 5, 4]);
        assert!(batches(&[], &[BatchSize::Hosts(1)]).is_empty());
        // hosts keep their order
        assert_eq!(batches(&hosts(3), &[BatchSize::Hosts(2)]), vec![vec!["h1".to_string(), "h2".into()], vec!["h3".into()]]);
    }

    #[test]
    fn serial_values_parse_like_ansible() {
        assert_eq!(BatchSize::parse(&json!(2)), Ok(BatchSize::Hosts(2)));
        assert_eq!(BatchSize::parse(&json!("3")), Ok(BatchSize::Hosts(3)));
        assert_eq!(BatchSize::parse(&json!("25%")), Ok(BatchSize::Percent(25.0)));
        assert!(BatchSize::parse(&json!("a few")).unwrap_err().contains("serial"));
        assert!(BatchSize::parse(&json!(-1)).is_err());
        assert!(BatchSize::parse(&json!(true)).is_err());
    }

    #[test]
    fn a_batch_ends_the_run_when_all_its_hosts_are_lost() {
        let b = Batch::new(2, None);
        b.host_lost(false);
        assert!(!b.stopping() && !b.ends_run());
        b.host_lost(false);
        assert!(!b.stopping() && b.ends_run());
    }

    #[test]
    fn any_errors_fatal_stops_at_the_first_failure() {
        let b = Batch::new(3, None);
        b.host_lost(true);
        assert!(b.stopping() && b.ends_run());
    }

    #[test]
    fn end_batch_and_end_play_stop_without_ending_the_run() {
        let b = Batch::new(2, Some(0.0));
        b.end(false, 5);
        assert!(!b.stopping() && !b.play_ended() && !b.ends_run());
        // Hosts behind run the tasks before the one that ended the batch.
        assert!(!b.stops_before(4) && b.stops_before(5) && b.stops_before(6));
        b.end(false, 3);
        assert!(!b.stops_before(2) && b.stops_before(3), "the earliest end counts");
        b.end(false, 9);
        assert!(b.stops_before(3));
        let b = Batch::new(2, None);
        b.end(true, 0);
        assert!(b.stops_before(0) && b.play_ended() && !b.ends_run());
    }

    #[test]
    fn max_fail_percentage_is_exceeded_not_reached() {
        // 4 hosts, 25%: one failure is 25% (not more), two are 50%
        let b = Batch::new(4, Some(25.0));
        b.host_lost(false);
        assert!(!b.stopping());
        b.host_lost(false);
        assert!(b.stopping() && b.ends_run());
        // 0%: any failure
        let b = Batch::new(10, Some(0.0));
        b.host_lost(false);
        assert!(b.stopping());
    }
}
