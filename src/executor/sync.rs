//! Where the hosts of a batch meet, in plays whose hosts read each other.
//!
//! Hosts run a play's tasks on their own (each as fast as it can). Two kinds of task need what
//! the other hosts did before them, as Ansible's linear strategy gives it:
//! - a `run_once` task runs on the first host of the batch that is still in the play, once
//!   every host has finished the tasks before it; the others take its registered result and
//!   the facts it set (and its failure: a failed `run_once` task fails the whole batch);
//! - in a play that reads `hostvars`, a task after one that registers or sets a variable
//!   waits until every host has finished the tasks before it, and then sees through
//!   `hostvars` what each host registered or set so far in the play.
//!
//! [`TaskSync`] is that meeting point: hosts say which task they are at ([`TaskSync::at`]),
//! publish the variables they set, wait for the others ([`TaskSync::wait_all`]), and the
//! host that runs a `run_once` task posts its result for the others ([`TaskSync::post_once`]).
//! Progress only goes forward and a host that leaves the play counts as past every task, so
//! the host furthest behind never waits: no deadlock, whatever the mix of waits.

use crate::template::{LiveHostVars, Vars};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the host that ran a `run_once` task leaves for the other hosts of the batch.
#[derive(Debug, Clone, Default)]
pub struct OnceResult {
    /// The registered result and the facts the task set.
    pub vars: Vars,
    /// Check mode: names whose value is a guess (see `HostRun::uncertain`).
    pub uncertain: Vec<String>,
    /// The task failed (not ignored) or the host was lost in it.
    pub failed: bool,
}

#[derive(Default)]
struct State {
    /// Index of the task each host is at; `usize::MAX` once it left the play.
    progress: HashMap<String, usize>,
    /// How many hosts are at each index of `progress`: the first key is the host furthest
    /// behind, so a wait is one lookup, not a scan of the batch at every wake-up.
    levels: std::collections::BTreeMap<usize, usize>,
    /// Each host's registered and set variables, as of its last [`TaskSync::at`].
    vars: HashMap<String, Arc<Vars>>,
    /// `run_once` tasks: who runs it (chosen once), and what it left.
    runners: HashMap<usize, Option<String>>,
    once: HashMap<usize, OnceResult>,
    /// What hosts registered or set as of a task index (built once, by the first host past
    /// the wait; only the latest is kept: every host has passed the earlier ones).
    live: Option<(usize, LiveHostVars)>,
    /// Facts given to hosts by tasks delegated to them (`delegate_facts`), any host.
    given: HashMap<String, Vars>,
}

pub struct TaskSync {
    /// The batch's hosts in inventory order (the first live one runs `run_once` tasks).
    order: Vec<String>,
    state: Mutex<State>,
    tick: tokio::sync::watch::Sender<u64>,
}

pub const LEFT: usize = usize::MAX;

impl TaskSync {
    pub fn new(hosts: &[String]) -> Self {
        let mut state = State { progress: hosts.iter().map(|h| (h.clone(), 0)).collect(), ..Default::default() };
        if !hosts.is_empty() {
            state.levels.insert(0, state.progress.len());
        }
        TaskSync { order: hosts.to_vec(), state: Mutex::new(state), tick: tokio::sync::watch::channel(0).0 }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        self.tick.send_modify(|t| *t += 1);
    }

    /// `host` is at task `index` (or has left the play: [`LEFT`]); `vars`, when given, are
    /// its registered and set variables now.
    pub fn at(&self, host: &str, index: usize, vars: Option<Arc<Vars>>) {
        {
            let mut s = self.state();
            if let Some(p) = s.progress.get_mut(host) {
                let old = *p;
                if index > old {
                    *p = index;
                    if let Some(c) = s.levels.get_mut(&old) {
                        *c -= 1;
                        if *c == 0 {
                            s.levels.remove(&old);
                        }
                    }
                    *s.levels.entry(index).or_default() += 1;
                }
            }
            if let Some(v) = vars {
                s.vars.insert(host.to_string(), v);
            }
        }
        self.wake();
    }

    /// Wait until every host of the batch is at task `index` or past it.
    pub async fn wait_all(&self, index: usize) {
        self.wait_for(|s| s.levels.keys().next().is_none_or(|&behind| behind >= index)).await;
    }

    async fn wait_for(&self, ready: impl Fn(&State) -> bool) {
        let mut rx = self.tick.subscribe();
        loop {
            if ready(&self.state()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Who runs the `run_once` task `index`: the first host of the batch still in the play
    /// when every host has reached it (call after [`TaskSync::wait_all`]). The same answer for
    /// every host, however late it asks.
    pub fn runner(&self, index: usize) -> Option<String> {
        let mut s = self.state();
        if let Some(r) = s.runners.get(&index) {
            return r.clone();
        }
        let r = self.order.iter().find(|h| s.progress.get(*h).is_some_and(|&p| p != LEFT)).cloned();
        s.runners.insert(index, r.clone());
        r
    }

    /// A task delegated to `host` with `delegate_facts` set these facts on it: `hostvars`
    /// shows them after the next meeting point.
    pub fn give(&self, host: &str, facts: &Vars) {
        super::delegate::merge_facts(self.state().given.entry(host.to_string()).or_default(), facts);
    }

    pub fn post_once(&self, index: usize, result: OnceResult) {
        self.state().once.insert(index, result);
        self.wake();
    }

    /// What the runner of `run_once` task `index` left; a failure if it left the play
    /// without finishing the task.
    pub async fn wait_once(&self, index: usize, runner: &str) -> OnceResult {
        self.wait_for(|s| s.once.contains_key(&index) || s.progress.get(runner).is_none_or(|&p| p == LEFT)).await;
        let s = self.state();
        s.once.get(&index).cloned().unwrap_or_else(|| OnceResult { failed: true, ..Default::default() })
    }

    /// What each host of the batch registered or set before task `index`, for `hostvars`
    /// (call after [`TaskSync::wait_all`]): shared, not copied per host (a copy of the play's
    /// `hostvars` per meeting cost 250 MiB at 1000 inventory hosts).
    pub fn live_at(&self, index: usize) -> LiveHostVars {
        let mut s = self.state();
        if let Some((i, live)) = &s.live {
            if *i == index {
                return live.clone();
            }
        }
        let mut vars = s.vars.clone();
        for (host, facts) in &s.given {
            let mut v = vars.get(host).map(|v| (**v).clone()).unwrap_or_default();
            super::delegate::merge_facts(&mut v, facts);
            vars.insert(host.clone(), Arc::new(v));
        }
        let live: LiveHostVars = Arc::new(vars);
        s.live = Some((index, live.clone()));
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    #[tokio::test]
    async fn waits_for_every_host_and_not_for_hosts_that_left() {
        let sync = Arc::new(TaskSync::new(&hosts(3)));
        sync.at("h1", 2, None);
        let waiter = tokio::spawn({
            let sync = sync.clone();
            async move { sync.wait_all(2).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "h2 and h3 are behind");
        sync.at("h2", 5, None);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "h3 is behind");
        sync.at("h3", LEFT, None);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("h3 left the play: no more waiting").unwrap();
    }

    #[tokio::test]
    async fn the_first_live_host_runs_once_and_the_others_get_its_result() {
        let sync = Arc::new(TaskSync::new(&hosts(3)));
        sync.at("h1", LEFT, None); // failed earlier
        sync.at("h2", 4, None);
        sync.at("h3", 4, None);
        sync.wait_all(4).await;
        assert_eq!(sync.runner(4).as_deref(), Some("h2"));
        // h2 moves on; h3 asks late and still gets the same runner.
        sync.at("h2", 5, None);
        assert_eq!(sync.runner(4).as_deref(), Some("h2"));
        let waiting = tokio::spawn({
            let sync = sync.clone();
            async move { sync.wait_once(4, "h2").await }
        });
        let mut vars = Vars::new();
        vars.insert("r".into(), json!({"rc": 0}));
        sync.post_once(4, OnceResult { vars, ..Default::default() });
        let got = tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap();
        assert!(!got.failed);
        assert_eq!(got.vars["r"]["rc"], 0);
    }

    #[tokio::test]
    async fn a_runner_that_leaves_without_a_result_is_a_failure() {
        let sync = TaskSync::new(&hosts(2));
        sync.at("h1", LEFT, None);
        assert!(sync.wait_once(0, "h1").await.failed);
    }

    #[test]
    fn hostvars_see_what_hosts_set_before_the_task() {
        let sync = TaskSync::new(&hosts(2));
        let mut v = Vars::new();
        v.insert("token".into(), json!("abc"));
        sync.at("h1", 3, Some(Arc::new(v)));
        let at3 = sync.live_at(3);
        assert_eq!(at3["h1"]["token"], "abc");
        assert!(!at3.contains_key("h2"));
        assert!(Arc::ptr_eq(&at3, &sync.live_at(3)), "built once per meeting");
        // Rendered: hostvars[h] sees the live values over the inventory's.
        let mut g = Vars::new();
        g.insert("hostvars".into(), json!({"h1": {"a": 1, "token": "old"}, "h2": {"a": 2}}));
        let t = crate::template::Templar::new().with_globals(Arc::new(g)).with_live(at3);
        let out = t.render_str("{{ hostvars['h1'].token }} {{ hostvars['h1'].a }} {{ hostvars['h2'].token | default('none') }}", &Vars::new()).unwrap();
        assert_eq!(out, "abc 1 none");
    }
}
