//! Runs plays on hosts. Per play: every host connects (once per run) and gathers facts
//! concurrently; then each host walks the task list on its own (no host waits for another),
//! emitting events the reporter orders. See `host.rs` for the per-host loop.

mod batch;
mod delegate;
pub(crate) mod facts;
mod host;
pub mod probe;
mod schedule;
mod sync;

use crate::connection::{self, ConnectionSpec, HostKeyChecking, Transport, TransportKind};
use crate::inventory::Inventory;
use crate::playbook::{Playbook, TagFilter};
use crate::report::{Event, HostStats, Reporter, SlotKey, Status, TaskResult};
use crate::template::{Templar, Vars};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Everything a run needs besides the playbook and inventory.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
    pub limit: Option<String>,
    pub tags: TagFilter,
    /// `--roles a,b`: only tasks (and handlers) of these roles.
    pub roles: Option<Vec<String>>,
    pub extra_vars: Vars,
    pub transport: TransportKind,
    pub host_key_checking: HostKeyChecking,
    pub connect_timeout: Duration,
    pub verbosity: u8,
    /// `--user` (overridden by `ansible_user`).
    pub user: Option<String>,
    pub private_key: Option<PathBuf>,
    /// `--become`.
    pub r#become: bool,
    /// `--overlap-plays`: plays on disjoint hosts that don't read each other run at the same
    /// time (see [`schedule`]); otherwise each play starts when the one before has ended.
    pub overlap_plays: bool,
    /// `--start-at-task`: the (play, task) indexes the run starts at; earlier plays and the
    /// play's earlier tasks don't run.
    pub start_at: Option<(usize, usize)>,
    /// `--ask-become-pass`: the sudo password for hosts whose variables give none.
    pub become_password: Option<String>,
}

impl RunOptions {
    /// Does `--start-at-task` leave task `index` of play `play` out?
    pub fn before_start(&self, play: usize, index: usize) -> bool {
        self.start_at.is_some_and(|(p, t)| play < p || (play == p && index < t))
    }

    /// Does `--tags`/`--skip-tags`/`--roles` let `task` run?
    pub fn selects(&self, task: &crate::playbook::Task) -> bool {
        if task.implicit {
            return true;
        }
        if !self.tags.selects(&task.tags) {
            return false;
        }
        match &self.roles {
            None => true,
            Some(roles) => task.role.as_ref().is_some_and(|r| roles.iter().any(|x| x == &r.name)),
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            check: false,
            diff: false,
            forks: 50,
            limit: None,
            tags: TagFilter::default(),
            roles: None,
            extra_vars: Vars::new(),
            transport: TransportKind::OpenSsh,
            host_key_checking: HostKeyChecking::Strict,
            connect_timeout: Duration::from_secs(10),
            verbosity: 0,
            user: None,
            private_key: None,
            r#become: false,
            overlap_plays: false,
            start_at: None,
            become_password: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
}

/// Outcome of a whole run.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub stats: BTreeMap<String, HostStats>,
}

impl RunSummary {
    /// Ansible's exit codes: 0 ok, 2 a host failed, 4 a host unreachable.
    pub fn exit_code(&self) -> i32 {
        if self.stats.values().any(|s| s.failed > 0) {
            2
        } else if self.stats.values().any(|s| s.unreachable > 0) {
            4
        } else {
            0
        }
    }
}

/// Shared sink for events: counts stats, forwards to the reporter. Plays may run at the same
/// time (see [`schedule`]); their events reach the reporter play by play, as if they had run
/// one after another: a later play's events are held until every earlier play is done.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Mutex<EventsInner>>,
}

struct EventsInner {
    reporter: Box<dyn Reporter>,
    stats: BTreeMap<String, HostStats>,
    /// The play whose events go straight to the reporter.
    live: usize,
    held: BTreeMap<usize, Vec<Event>>,
    done: std::collections::BTreeSet<usize>,
}

fn event_play(e: &Event) -> Option<usize> {
    match e {
        Event::PlayStart { play, .. }
        | Event::Task { play, .. }
        | Event::Result { play, .. }
        | Event::Passed { play, .. }
        | Event::HostDone { play, .. }
        | Event::Retry { play, .. }
        | Event::NoMoreHosts { play } => Some(*play),
        Event::Warning { .. } | Event::Recap { .. } => None,
    }
}

impl Events {
    pub fn new(r: Box<dyn Reporter>) -> Self {
        Events { inner: Arc::new(Mutex::new(EventsInner { reporter: r, stats: BTreeMap::new(), live: 0, held: BTreeMap::new(), done: Default::default() })) }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, EventsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn emit(&self, e: Event) {
        let mut g = self.lock();
        if let Event::Result { result, .. } = &e {
            g.stats.entry(result.host.clone()).or_default().count(result);
        }
        match event_play(&e) {
            Some(p) if p > g.live => g.held.entry(p).or_default().push(e),
            _ => g.reporter.event(e),
        }
    }
    /// Play `play` has emitted all its events: release the next plays' held events.
    fn play_done(&self, play: usize) {
        let mut g = self.lock();
        g.done.insert(play);
        while g.done.contains(&g.live) {
            g.live += 1;
            let live = g.live;
            for e in g.held.remove(&live).unwrap_or_default() {
                g.reporter.event(e);
            }
        }
    }
    /// Count a result in the recap without displaying it (loop summaries).
    pub fn emit_count_only(&self, r: TaskResult) {
        self.lock().stats.entry(r.host.clone()).or_default().count(&r);
    }
    /// Count SSH round trips made to a host.
    pub fn round_trip(&self, host: &str) {
        self.lock().stats.entry(host.to_string()).or_default().round_trips += 1;
    }
    fn touch(&self, host: &str) {
        self.lock().stats.entry(host.to_string()).or_default();
    }
    fn stats(&self) -> BTreeMap<String, HostStats> {
        self.lock().stats.clone()
    }
    fn finish(&self) {
        let mut g = self.lock();
        // Anything still held (a play that never reported done) is printed now, in order.
        for (_, events) in std::mem::take(&mut g.held) {
            for e in events {
                g.reporter.event(e);
            }
        }
        g.reporter.finish();
    }
}

/// State of one host that survives across plays.
#[derive(Default)]
struct HostRecord {
    conn: Option<Arc<dyn Transport>>,
    login_user: String,
    /// The `remote_user` keyword `conn` was opened with (`None`: the inventory's or the
    /// run's user).
    keyword_user: Option<String>,
    /// Connections of earlier plays that logged in as another user (`remote_user`), kept for
    /// later plays: (keyword user, connection, login user).
    parked: Vec<(Option<String>, Arc<dyn Transport>, String)>,
    /// Shared with [`Published::facts`]: one copy per host.
    facts: Option<Arc<Vars>>,
    /// set_fact and registered variables.
    host_vars: Vars,
    /// How many `delegate_facts` gifts to this host `host_vars` holds already.
    given_seen: usize,
    failed: bool,
    unreachable: bool,
}

/// Connection spec of a host from its (rendered) inventory variables. The login user is, as
/// in Ansible: the host's `ansible_user`, else the `remote_user` keyword of the task or play
/// (`remote_user`), else `--user` / ansible.cfg's `remote_user`, else ssh's own choice.
fn connection_spec(host: &str, vars: &Vars, templar: &Templar, opts: &RunOptions, remote_user: Option<&str>) -> Result<ConnectionSpec, String> {
    let get = |k: &str| -> Result<Option<Value>, String> {
        match vars.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => templar.render_value(v, vars).map(Some).map_err(|e| format!("{k}: {e}")),
        }
    };
    let s = |v: Option<Value>| v.map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    let address = s(get("ansible_host")?).or(s(get("ansible_ssh_host")?)).unwrap_or_else(|| host.to_string());
    let port = match get("ansible_port")?.or(get("ansible_ssh_port")?) {
        None => 22,
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| format!("ansible_port {n} is not a port"))?,
        Some(Value::String(p)) => p.trim().parse().map_err(|_| format!("ansible_port '{p}' is not a port"))?,
        Some(other) => return Err(format!("ansible_port {other} is not a port")),
    };
    let user = s(get("ansible_user")?).or(s(get("ansible_ssh_user")?)).or(remote_user.map(str::to_string)).or(opts.user.clone());
    let key = s(get("ansible_ssh_private_key_file")?).or(s(get("ansible_private_key_file")?)).map(|k| connection::expand_tilde(&k)).or(opts.private_key.clone());
    let mut ssh_args = Vec::new();
    for k in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
        if let Some(a) = s(get(k)?) {
            ssh_args.extend(shlex::split(&a).ok_or_else(|| format!("{k}: unbalanced quotes"))?);
        }
    }
    let local = s(get("ansible_connection")?).is_some_and(|c| c == "local");
    let mut hkc = opts.host_key_checking;
    if let Some(v) = get("ansible_host_key_checking")? {
        if crate::modules::args::truthy(&v) == Some(false) {
            hkc = HostKeyChecking::Off;
        }
    }
    Ok(ConnectionSpec {
        name: host.to_string(),
        address,
        port,
        user,
        private_key: key,
        ssh_args,
        host_key_checking: hkc,
        connect_timeout: opts.connect_timeout,
        local,
    })
}

/// Where a play is, for the plays waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PlayPhase {
    Waiting,
    /// Its hosts are connected and their facts gathered (and published for `hostvars`).
    FactsDone,
    Finished,
}

/// What other plays see of a host through `hostvars`: its facts and the variables it set
/// (published when the host finishes a play).
#[derive(Default)]
struct Published {
    facts: Option<Arc<Vars>>,
    host_vars: Vars,
}

/// Shared by the plays of one run.
struct RunShared {
    playbook: Arc<Playbook>,
    inventory: Arc<Inventory>,
    opts: Arc<RunOptions>,
    events: Events,
    templar: Templar,
    records: HashMap<String, tokio::sync::Mutex<HostRecord>>,
    published: Mutex<HashMap<String, Published>>,
    forks: Arc<Semaphore>,
    /// Each host's last play: its connection is closed when it finishes that play, so a
    /// big fleet holds at most `forks` busy connections' buffers, not every host's.
    last_play: HashMap<String, usize>,
    /// Per play: its hosts all gather facts before any runs a task (see [`run_play`]).
    barrier: Vec<bool>,
    /// Per play: it reads `hostvars` (see [`sync`]).
    reads_hostvars: Vec<bool>,
    /// Some play mentions mounts: the fact script lists them too (`ansible_mounts`).
    wants_mounts: bool,
    /// Per play: it mentions `play_hosts` or `ansible_play_batch` (see `PlayContext`).
    mentions_play_hosts: Vec<bool>,
    /// A play ended the run (see [`batch::Batch::ends_run`]): plays not started yet don't.
    ended: std::sync::atomic::AtomicBool,
    /// Connections to the hosts tasks are delegated to (see [`delegate`]).
    delegates: Arc<delegate::DelegatePool>,
}

impl RunShared {
    fn published(&self) -> std::sync::MutexGuard<'_, HashMap<String, Published>> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Run every play of the playbook on the inventory, each once the plays before it have ended
/// (Ansible's order). With `--overlap-plays` a play waits only for the earlier plays it shares
/// hosts with, may read from (see [`schedule`]) or whose failures gate it, and, if it reads
/// `hostvars`, for every earlier play's facts; otherwise it runs alongside them. A play that
/// ends the run (see [`batch`]) keeps the plays not started yet from starting.
pub async fn run(playbook: Arc<Playbook>, inventory: Arc<Inventory>, opts: Arc<RunOptions>, reporter: Box<dyn Reporter>) -> Result<RunSummary, RunError> {
    let events = Events::new(reporter);
    let limit: Option<Vec<String>> = match &opts.limit {
        Some(l) => Some(inventory.select(l)?),
        None => None,
    };
    let mut play_hosts = Vec::new();
    for play in &playbook.plays {
        let mut hosts = inventory.select(&play.hosts)?;
        if let Some(l) = &limit {
            hosts.retain(|h| l.contains(h));
        }
        play.order.apply(&mut hosts);
        play_hosts.push(hosts);
    }
    let texts = play_texts(&playbook, &inventory, &opts, &play_hosts);
    let deps = play_dependencies(&playbook, &play_hosts, &texts, opts.overlap_plays);
    let barrier: Vec<bool> = texts.iter().zip(&playbook.plays).map(|(t, p)| schedule::needs_barrier(t, p)).collect();
    let reads_hostvars: Vec<bool> = texts.iter().map(|t| schedule::mentions(t, "hostvars")).collect();
    let mut last_play = HashMap::new();
    for (i, hosts) in play_hosts.iter().enumerate() {
        for h in hosts {
            last_play.insert(h.clone(), i);
        }
    }
    let shared = Arc::new(RunShared {
        playbook: playbook.clone(),
        inventory: inventory.clone(),
        opts: opts.clone(),
        events: events.clone(),
        templar: Templar::new(),
        records: inventory.hosts().into_iter().map(|h| (h, tokio::sync::Mutex::new(HostRecord::default()))).collect(),
        published: Mutex::new(HashMap::new()),
        forks: Arc::new(Semaphore::new(opts.forks.max(1))),
        last_play,
        barrier,
        wants_mounts: texts.iter().any(|t| t.contains("mounts")),
        mentions_play_hosts: texts.iter().map(|t| t.contains("play_hosts") || t.contains("ansible_play_batch")).collect(),
        reads_hostvars,
        ended: std::sync::atomic::AtomicBool::new(false),
        delegates: Arc::default(),
    });

    let (phases, watchers): (Vec<_>, Vec<_>) = (0..playbook.plays.len()).map(|_| tokio::sync::watch::channel(PlayPhase::Waiting)).unzip();
    let phases: Vec<Arc<tokio::sync::watch::Sender<PlayPhase>>> = phases.into_iter().map(Arc::new).collect();
    let mut joins = Vec::new();
    for (play_idx, hosts) in play_hosts.into_iter().enumerate() {
        let shared = shared.clone();
        let phase = phases[play_idx].clone();
        // A play that reads no `hostvars` needs no other play's facts.
        let waits: Vec<(tokio::sync::watch::Receiver<PlayPhase>, PlayPhase)> = (0..play_idx)
            .filter_map(|j| match (deps[play_idx].contains(&j), shared.barrier[play_idx]) {
                (true, _) => Some((watchers[j].clone(), PlayPhase::Finished)),
                (false, true) => Some((watchers[j].clone(), PlayPhase::FactsDone)),
                (false, false) => None,
            })
            .collect();
        joins.push(tokio::spawn(async move {
            for (mut w, need) in waits {
                // An error means that play's task is gone (it panicked): don't wait forever.
                let _ = w.wait_for(|p| *p >= need).await;
            }
            // A play before `--start-at-task`'s runs nothing, not even its fact gathering.
            let skipped = shared.opts.start_at.is_some_and(|(p, _)| play_idx < p);
            if !skipped && !shared.ended.load(std::sync::atomic::Ordering::Acquire) {
                run_play(&shared, play_idx, hosts, &phase).await;
            }
            phase.send_replace(PlayPhase::Finished);
            shared.events.play_done(play_idx);
        }));
    }
    for j in joins {
        let _ = j.await;
    }

    // Close every connection.
    for rec in shared.records.values() {
        let r = rec.lock().await;
        for c in r.conn.iter().chain(r.parked.iter().map(|(_, c, _)| c)) {
            c.close().await;
        }
    }
    shared.delegates.close().await;
    let stats = events.stats();
    events.emit(Event::Recap { stats: stats.clone() });
    events.finish();
    Ok(RunSummary { stats })
}

/// Every play's text (see [`schedule::play_text`]), for the schedule and the barrier check.
fn play_texts(playbook: &Playbook, inventory: &Inventory, opts: &RunOptions, play_hosts: &[Vec<String>]) -> Vec<String> {
    playbook
        .plays
        .iter()
        .zip(play_hosts)
        .map(|(play, hosts)| {
            let mut seen = std::collections::HashSet::new();
            let vars: Vec<Vars> = hosts.iter().map(|h| inventory.host_vars(h)).filter(|v| seen.insert(serde_json::to_string(v).unwrap_or_default())).collect();
            schedule::play_text(play, &vars, &opts.extra_vars)
        })
        .collect()
}

/// For every play, the earlier plays it waits for: all of them (Ansible's order), or with
/// `--overlap-plays` those [`schedule::dependencies`] finds plus every earlier play whose
/// failures can end the run.
fn play_dependencies(playbook: &Playbook, play_hosts: &[Vec<String>], texts: &[String], overlap: bool) -> Vec<std::collections::BTreeSet<usize>> {
    if !overlap {
        return (0..play_hosts.len()).map(|k| (0..k).collect()).collect();
    }
    let hosts: Vec<std::collections::BTreeSet<String>> = play_hosts.iter().map(|h| h.iter().cloned().collect()).collect();
    let sets: Vec<_> = playbook.plays.iter().map(schedule::names_set).collect();
    let gates: Vec<bool> = playbook.plays.iter().map(schedule::gates_later_plays).collect();
    let mut deps = schedule::dependencies(&hosts, &sets, texts);
    for (k, d) in deps.iter_mut().enumerate() {
        d.extend((0..k).filter(|&j| gates[j]));
    }
    for (k, d) in deps.iter().enumerate() {
        tracing::debug!(play = k, waits_for = ?d, "play schedule");
    }
    deps
}

/// One play, batch after batch (`serial`; one batch without it). Per batch, with a barrier
/// (the play reads `hostvars` or has `run_once` tasks): every host connects and gathers facts
/// first, then every host runs the tasks on its own. Without one, each host goes straight
/// from its facts to its tasks and is done: a big fleet then holds only `forks` hosts'
/// connections and state at a time. A batch whose hosts are all lost, or whose failures are
/// fatal, ends the run (Ansible's "NO MORE HOSTS LEFT").
async fn run_play(shared: &Arc<RunShared>, play_idx: usize, hosts: Vec<String>, phase: &Arc<tokio::sync::watch::Sender<PlayPhase>>) {
    let RunShared { playbook, events, opts, .. } = &**shared;
    let play = &playbook.plays[play_idx];
    let batches = match serial_sizes(shared, play) {
        Ok(sizes) => batch::batches(&hosts, &sizes),
        Err(e) => {
            // Nothing ran: report it against the play's hosts and end the run.
            events.emit(Event::PlayStart { play: play_idx, name: play.name.clone(), hosts: hosts.clone(), check: opts.check });
            events.emit(Event::Task { play: play_idx, key: FACTS_KEY, name: "serial".into(), handler: false, location: play.location.to_string() });
            for h in &hosts {
                shared.records[h].lock().await.failed = true;
                events.emit(Event::Result { play: play_idx, key: FACTS_KEY, task: "serial".into(), result: TaskResult::new(h, Status::Failed, Some(format!("{}: {e}", play.location))) });
                events.emit(Event::HostDone { play: play_idx, host: h.clone() });
            }
            end_run(shared, play_idx);
            return;
        }
    };
    let single = batches.len() <= 1;
    if batches.is_empty() {
        events.emit(Event::PlayStart { play: play_idx, name: play.name.clone(), hosts: vec![], check: opts.check });
    }
    for batch_hosts in batches {
        // Hosts that failed or were unreachable earlier in the run sit out later plays.
        let mut active = Vec::new();
        for h in &batch_hosts {
            let r = shared.records[h].lock().await;
            if !r.failed && !r.unreachable {
                active.push(h.clone());
            }
        }
        let batch = Arc::new(batch::Batch::new(active.len(), play.max_fail_percentage));
        run_batch(shared, play_idx, &hosts, active, &batch, single.then_some(phase)).await;
        if batch.ends_run() {
            end_run(shared, play_idx);
            break;
        }
        if batch.play_ended() {
            break;
        }
    }
}

/// The play's `serial` sizes, templates rendered with the play's and the extra variables.
fn serial_sizes(shared: &RunShared, play: &crate::playbook::Play) -> Result<Vec<batch::BatchSize>, String> {
    let mut vars = play.vars.clone();
    vars.extend(shared.opts.extra_vars.clone());
    play.serial
        .iter()
        .map(|v| {
            let v = shared.templar.render_value(v, &vars).map_err(|e| format!("serial: {e}"))?;
            batch::BatchSize::parse(&v)
        })
        .collect()
}

/// `play` ends the run: later plays don't start.
fn end_run(shared: &RunShared, play_idx: usize) {
    shared.ended.store(true, std::sync::atomic::Ordering::Release);
    shared.events.emit(Event::NoMoreHosts { play: play_idx });
}

/// One batch of a play (all its hosts without `serial`). `phase` is told when the facts
/// are in (only for a play run as one batch; a batched play tells at its end).
async fn run_batch(
    shared: &Arc<RunShared>,
    play_idx: usize,
    all_hosts: &[String],
    active: Vec<String>,
    batch: &Arc<batch::Batch>,
    phase: Option<&Arc<tokio::sync::watch::Sender<PlayPhase>>>,
) {
    let RunShared { playbook, events, opts, .. } = &**shared;
    let play = &playbook.plays[play_idx];
    for h in &active {
        events.touch(h);
    }
    events.emit(Event::PlayStart { play: play_idx, name: play.name.clone(), hosts: active.clone(), check: opts.check });
    if active.is_empty() {
        if let Some(phase) = phase {
            phase.send_replace(PlayPhase::FactsDone);
        }
        return;
    }
    if play.gather_facts {
        events.emit(Event::Task { play: play_idx, key: FACTS_KEY, name: "Gathering Facts".into(), handler: false, location: String::new() });
    }

    if !shared.barrier[play_idx] {
        let ctx = play_context(shared, play_idx, all_hosts, active.clone(), batch, false);
        // Later plays reading hostvars wait for this play's facts: tell them as soon as the
        // last host has gathered its facts, not when the play ends.
        let gathering = Arc::new(std::sync::atomic::AtomicUsize::new(active.len()));
        let mut joins = Vec::new();
        for h in active {
            let (shared, ctx, gathering, phase, batch) = (shared.clone(), ctx.clone(), gathering.clone(), phase.cloned(), batch.clone());
            joins.push(tokio::spawn(async move {
                let _permit = shared.forks.acquire().await;
                let mut rec = shared.records[&h].lock().await;
                let connected = !batch.stopping() && connect_and_gather(&shared, play_idx, &h, &mut rec, &batch).await;
                if gathering.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                    if let Some(phase) = phase {
                        phase.send_replace(PlayPhase::FactsDone);
                    }
                }
                if connected {
                    shared.events.emit(Event::Passed { play: play_idx, host: h.clone(), key: FACTS_KEY });
                    run_host(&shared, &ctx, &h, &mut rec, None).await;
                } else {
                    shared.events.emit(Event::HostDone { play: play_idx, host: h.clone() });
                }
            }));
        }
        for j in joins {
            let _ = j.await;
        }
        return;
    }

    // Phase 1: connect and gather facts everywhere (hostvars need every host's facts).
    let mut joins = Vec::new();
    for h in active.clone() {
        let (shared, batch) = (shared.clone(), batch.clone());
        joins.push(tokio::spawn(async move {
            let _permit = shared.forks.acquire().await;
            let mut rec = shared.records[&h].lock().await;
            connect_and_gather(&shared, play_idx, &h, &mut rec, &batch).await;
        }));
    }
    for j in joins {
        let _ = j.await;
    }
    if let Some(phase) = phase {
        phase.send_replace(PlayPhase::FactsDone);
    }
    // Hosts lost in phase 1 are done with this play (all of them, if that was fatal).
    let mut running = Vec::new();
    for h in &active {
        let r = shared.records[h].lock().await;
        if r.unreachable || r.failed || batch.stopping() {
            events.emit(Event::HostDone { play: play_idx, host: h.clone() });
        } else {
            running.push(h.clone());
            events.emit(Event::Passed { play: play_idx, host: h.clone(), key: FACTS_KEY });
        }
    }

    // Phase 2: every host runs the tasks independently.
    let ctx = play_context(shared, play_idx, all_hosts, running.clone(), batch, true);
    let mut joins = Vec::new();
    for h in running {
        let (shared, ctx) = (shared.clone(), ctx.clone());
        joins.push(tokio::spawn(async move {
            let permit = shared.forks.clone().acquire_owned().await.ok();
            let mut rec = shared.records[&h].lock().await;
            run_host(&shared, &ctx, &h, &mut rec, permit).await;
        }));
    }
    for j in joins {
        let _ = j.await;
    }
}

/// The task slot of fact gathering.
const FACTS_KEY: SlotKey = (0, 0, 0);

/// Connect to `h` (once per run) and gather its facts (once per run) if the play asks for
/// them. False when the host is lost (failure already reported).
async fn connect_and_gather(shared: &RunShared, play_idx: usize, h: &str, rec: &mut HostRecord, batch: &batch::Batch) -> bool {
    let ok = gather(shared, play_idx, h, rec).await;
    if !ok {
        batch.host_lost(shared.playbook.plays[play_idx].any_errors_fatal);
    }
    ok
}

/// The `remote_user` keyword `raw` for host `h`, rendered with `vars`: `None` when there is
/// none, or when the host's own `ansible_user` (`ansible_ssh_user`) overrides it, as
/// variables override keywords in Ansible.
pub(super) fn keyword_user(raw: Option<&str>, h: &str, inventory: &Inventory, templar: &Templar, vars: &Vars) -> Result<Option<String>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let host_vars = inventory.host_vars(h);
    if ["ansible_user", "ansible_ssh_user"].iter().any(|k| host_vars.get(*k).is_some_and(|v| !v.is_null())) {
        return Ok(None);
    }
    let user = templar.render_str(raw, vars).map_err(|e| format!("remote_user: {e}"))?;
    let user = user.trim();
    Ok((!user.is_empty()).then(|| user.to_string()))
}

/// A host's sudo password: the first of Ansible's become password variables set in `vars`
/// (rendered with `render_vars` and the extra vars; extra vars win, a null or empty value
/// means none), else `--ask-become-pass`'s answer.
pub(super) fn become_password(vars: &Vars, render_vars: &Vars, templar: &Templar, opts: &RunOptions) -> Option<String> {
    const NAMES: &[&str] = &["ansible_become_password", "ansible_become_pass", "ansible_sudo_password", "ansible_sudo_pass"];
    let given = NAMES.iter().find_map(|n| opts.extra_vars.get(*n)).or_else(|| NAMES.iter().find_map(|n| vars.get(*n)));
    match given {
        Some(Value::String(s)) => {
            let mut top = render_vars.clone();
            top.extend(opts.extra_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(templar.render_str(s, &top).unwrap_or_else(|_| s.clone())).filter(|p| !p.is_empty())
        }
        Some(Value::Null) => None,
        Some(other) => Some(other.to_string()),
        None => opts.become_password.clone(),
    }
}

/// Why a connection to a host could not be opened.
enum ConnectFailure {
    /// Its connection variables don't make sense (the host fails).
    BadVars(String),
    /// Nobody answered, or not in time (the host is unreachable).
    Unreachable(String),
}

/// Open a connection to inventory host `h` (or an address the inventory lacks) with its
/// connection variables and the `remote_user` keyword in force, within its connect timeout;
/// with the user it logs in as, when the variables say which.
async fn open_connection(h: &str, inventory: &Inventory, templar: &Templar, opts: &RunOptions, remote_user: Option<&str>) -> Result<(Arc<dyn Transport>, Option<String>), ConnectFailure> {
    let spec = host_spec(h, inventory, templar, opts, remote_user).map_err(ConnectFailure::BadVars)?;
    let conn = connection::connect(opts.transport, &spec).await.map_err(|e| ConnectFailure::Unreachable(e.to_string()))?;
    Ok((Arc::from(conn), spec.user))
}

/// The connection spec of inventory host `h` with the `remote_user` keyword in force.
fn host_spec(h: &str, inventory: &Inventory, templar: &Templar, opts: &RunOptions, remote_user: Option<&str>) -> Result<ConnectionSpec, String> {
    connection_spec(h, &inventory.host_vars(h), templar, opts, remote_user)
}

async fn gather(shared: &RunShared, play_idx: usize, h: &str, rec: &mut HostRecord) -> bool {
    let RunShared { inventory, opts, events, templar, playbook, .. } = shared;
    let gather = playbook.plays[play_idx].gather_facts;
    let result = |status, msg: Option<String>| TaskResult::new(h, status, msg);
    // The play's `remote_user` (unless the host's `ansible_user` overrides it): a play that
    // logs in as another user than the last one gets its own connection.
    let play = &playbook.plays[play_idx];
    let keyword = match &play.remote_user {
        None => None,
        Some(raw) => {
            let mut vars = inventory.host_vars(h);
            vars.extend(play.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            match keyword_user(Some(raw), h, inventory, templar, &vars) {
                Ok(k) => k,
                Err(e) => {
                    rec.failed = true;
                    events.emit(Event::Result { play: play_idx, key: FACTS_KEY, task: "connect".into(), result: result(Status::Failed, Some(format!("{}: {e}", play.location))) });
                    return false;
                }
            }
        }
    };
    if rec.conn.is_some() && rec.keyword_user != keyword {
        let current = rec.conn.take().expect("checked");
        rec.parked.push((rec.keyword_user.take(), current, std::mem::take(&mut rec.login_user)));
        if let Some(i) = rec.parked.iter().position(|(k, _, _)| *k == keyword) {
            let (k, conn, login) = rec.parked.swap_remove(i);
            (rec.keyword_user, rec.conn, rec.login_user) = (k, Some(conn), login);
        }
    }
    if rec.conn.is_none() {
        let spec = match host_spec(h, inventory, templar, opts, keyword.as_deref()) {
            Ok(spec) => spec,
            Err(e) => {
                rec.failed = true;
                events.emit(Event::Result { play: play_idx, key: FACTS_KEY, task: "connect".into(), result: result(Status::Failed, Some(format!("bad connection variables: {e}"))) });
                return false;
            }
        };
        match connection::connect(opts.transport, &spec).await {
            Ok(conn) => {
                rec.conn = Some(Arc::from(conn));
                rec.login_user = spec.user.unwrap_or_default();
                rec.keyword_user = keyword;
            }
            // A play that starts by waiting for its hosts (`gather_facts: false`, then
            // `wait_for_connection`): that task logs in once the host answers.
            Err(e) if !gather && play.tasks.first().is_some_and(|t| schedule::is_module(t, "wait_for_connection")) => {
                tracing::debug!(host = %h, error = %e, "not reachable yet; the play's first task waits for it");
                rec.conn = Some(Arc::from(connection::not_yet_connected(opts.transport, &spec)));
                rec.login_user = spec.login_user();
                rec.keyword_user = keyword;
            }
            Err(e) => {
                rec.unreachable = true;
                events.emit(Event::Result { play: play_idx, key: FACTS_KEY, task: "connect".into(), result: result(Status::Unreachable, Some(e.to_string())) });
                return false;
            }
        }
    }
    let conn = rec.conn.clone().expect("connected above");
    // Who we are on the host (login user may come from ~/.ssh/config).
    let need_whoami = rec.login_user.is_empty();
    if (gather && rec.facts.is_none()) || need_whoami {
        let script = match (gather, shared.wants_mounts) {
            (true, true) => format!("{}{}", facts::FACTS_SCRIPT, facts::MOUNTS_SCRIPT),
            (true, false) => facts::FACTS_SCRIPT.to_string(),
            _ => "echo \"user_id=$(id -un)\"".to_string(),
        };
        events.round_trip(h);
        tracing::debug!(host = %h, "exec facts");
        match conn.exec(&script, None).await {
            Ok(out) => {
                let text = out.stdout_str();
                if gather {
                    let f = Arc::new(facts::parse(&text));
                    if let Some(u) = f.get("ansible_user_id").and_then(Value::as_str) {
                        rec.login_user = u.to_string();
                    }
                    shared.published().entry(h.to_string()).or_default().facts = Some(f.clone());
                    rec.facts = Some(f);
                } else if let Some(u) = text.lines().find_map(|l| l.strip_prefix("user_id=")) {
                    rec.login_user = u.trim().to_string();
                }
            }
            Err(e) => {
                rec.unreachable = true;
                events.emit(Event::Result { play: play_idx, key: FACTS_KEY, task: "Gathering Facts".into(), result: result(Status::Unreachable, Some(e.to_string())) });
                return false;
            }
        }
    }
    if gather {
        events.emit(Event::Result { play: play_idx, key: FACTS_KEY, task: "Gathering Facts".into(), result: result(Status::Ok, None) });
    }
    true
}

/// The play's hosts that have not failed and were reachable so far (`ansible_play_hosts`).
fn alive_hosts(shared: &RunShared, all_hosts: &[String]) -> Vec<String> {
    all_hosts
        .iter()
        .filter(|h| shared.records.get(*h).and_then(|r| r.try_lock().ok()).is_none_or(|r| !r.failed && !r.unreachable))
        .cloned()
        .collect()
}

/// What a play's hosts share: its templar (with play-wide names) and its host list.
/// `hostvars` (every inventory host's variables and facts) is built only when asked for.
fn play_context(shared: &RunShared, play_idx: usize, all_hosts: &[String], play_hosts: Vec<String>, batch: &Arc<batch::Batch>, hostvars: bool) -> Arc<host::PlayContext> {
    let RunShared { playbook, inventory, opts, events, templar, .. } = shared;
    let alive = alive_hosts(shared, all_hosts);
    let play = &playbook.plays[play_idx];
    let mut globals = Vars::new();
    if hostvars {
        // Read from what hosts published: hosts of plays running alongside this one are busy.
        let mut map = serde_json::Map::new();
        let published = shared.published();
        for h in inventory.hosts() {
            let mut v = inventory.host_vars(&h);
            if let Some(p) = published.get(&h) {
                if let Some(f) = &p.facts {
                    v.extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                v.extend(p.host_vars.clone());
            }
            if let Some(given) = shared.delegates.facts.of(&h) {
                delegate::merge_facts(&mut v, &given);
            }
            v.insert("inventory_hostname".into(), Value::String(h.clone()));
            map.insert(h.clone(), Value::Object(v));
        }
        globals.insert("hostvars".into(), Value::Object(map));
    }
    globals.insert("groups".into(), serde_json::to_value(inventory.groups()).unwrap_or(Value::Null));
    // The play's live hosts, all batches; the batch's (`play_hosts` is Ansible's old name).
    globals.insert("ansible_play_hosts".into(), serde_json::json!(&alive));
    for k in ["ansible_play_batch", "play_hosts"] {
        globals.insert(k.into(), serde_json::json!(play_hosts));
    }
    globals.insert("ansible_play_hosts_all".into(), serde_json::json!(all_hosts));
    let dir = playbook.dir.canonicalize().unwrap_or(playbook.dir.clone());
    globals.insert("playbook_dir".into(), Value::String(dir.display().to_string()));
    globals.insert("ansible_check_mode".into(), Value::Bool(opts.check));
    globals.insert("ansible_diff_mode".into(), Value::Bool(opts.diff));
    globals.insert("ansible_play_name".into(), Value::String(play.name.clone()));
    let run_tags = if opts.tags.only.is_empty() { vec!["all".to_string()] } else { opts.tags.only.clone() };
    globals.insert("ansible_run_tags".into(), serde_json::json!(run_tags));
    globals.insert("ansible_skip_tags".into(), serde_json::json!(opts.tags.skip));
    globals.insert("omit".into(), Value::String(crate::template::OMIT.to_string()));
    // The batch's hosts meet before `run_once` tasks, after a `meta: end_play` or `end_batch`
    // under a condition or a task with `any_errors_fatal` and, in a play that reads
    // `hostvars`, before any task that follows one registering or setting a variable.
    let reads_hostvars = shared.reads_hostvars[play_idx];
    let (mut sets_before, mut may_end_before) = (false, false);
    let meets: Vec<bool> = play
        .tasks
        .iter()
        .map(|t| {
            let meet = t.run_once || may_end_before || (reads_hostvars && sets_before);
            sets_before |= t.register.is_some() || crate::modules::sets_vars(&t.module);
            // After a task whose failure is fatal (`any_errors_fatal`), no host goes on before
            // every host is done with it (Ansible's linear strategy).
            may_end_before = schedule::ends_batch_on_condition(t) || t.any_errors_fatal;
            meet
        })
        .collect();
    let sync = (hostvars && meets.contains(&true)).then(|| Arc::new(sync::TaskSync::new(&play_hosts)));
    Arc::new(host::PlayContext {
        play_idx,
        playbook: playbook.clone(),
        inventory: inventory.clone(),
        opts: opts.clone(),
        templar: templar.with_globals(Arc::new(globals)),
        events: events.clone(),
        play_hosts,
        batch: batch.clone(),
        sync,
        meets,
        reads_hostvars,
        forks: shared.forks.clone(),
        delegates: shared.delegates.clone(),
        alive,
        mentions_play_hosts: shared.mentions_play_hosts[play_idx],
    })
}

/// Run the play's tasks on one connected host; close its connection when the run is done
/// with it.
async fn run_host(shared: &RunShared, ctx: &Arc<host::PlayContext>, h: &str, rec: &mut HostRecord, permit: Option<tokio::sync::OwnedSemaphorePermit>) {
    let play_idx = ctx.play_idx;
    let conn = rec.conn.clone().expect("running hosts are connected");
    // Facts earlier plays' tasks gathered or set for this host while delegated to it
    // (`delegate_facts`) are its own from now on; each gift is taken once, so what the host
    // set itself since stays.
    let (gifts, seen) = shared.delegates.facts.since(h, rec.given_seen);
    rec.given_seen = seen;
    for given in gifts {
        if !rec.host_vars.contains_key("ansible_facts") {
            if let Some(own) = rec.facts.as_ref().and_then(|f| f.get("ansible_facts")) {
                rec.host_vars.insert("ansible_facts".into(), own.clone());
            }
        }
        delegate::merge_facts(&mut rec.host_vars, &given);
    }
    let mut run = host::HostRun::new(ctx.clone(), h.to_string(), conn, rec.login_user.clone(), rec.facts.clone().unwrap_or_default(), std::mem::take(&mut rec.host_vars)).with_keyword_user(rec.keyword_user.clone());
    if let Some(p) = permit {
        run = run.with_permit(p);
    }
    let outcome = run.run_play().await;
    rec.host_vars = run.into_host_vars();
    shared.published().entry(h.to_string()).or_default().host_vars = rec.host_vars.clone();
    match outcome {
        host::HostOutcome::Ok => {}
        host::HostOutcome::Failed => rec.failed = true,
        host::HostOutcome::Unreachable => rec.unreachable = true,
    }
    ctx.events.emit(Event::HostDone { play: play_idx, host: h.to_string() });
    // Done with this host for the run (no later play has it, or it sits them out).
    if rec.failed || rec.unreachable || shared.last_play.get(h) == Some(&play_idx) {
        if let Some(c) = rec.conn.take() {
            tracing::debug!(host = %h, "closing connection");
            c.close().await;
        }
        for (_, c, _) in rec.parked.drain(..) {
            c.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_user_is_the_hosts_ansible_user_then_remote_user_then_the_runs() {
        let inv = Inventory::from_ini_str("hosts", "fixed ansible_user=admin\nfree\nsuffixed ansible_ssh_user=legacy\n").unwrap();
        let templar = Templar::new();
        let opts = RunOptions { user: Some("cli".into()), ..RunOptions::default() };
        let user = |h: &str, keyword: Option<&str>| {
            let vars = inv.host_vars(h);
            let kw = keyword_user(keyword, h, &inv, &templar, &vars).unwrap();
            connection_spec(h, &vars, &templar, &opts, kw.as_deref()).unwrap().user
        };
        // Variables beat keywords, keywords beat --user / ansible.cfg, as in Ansible.
        assert_eq!(user("fixed", Some("deploy")).as_deref(), Some("admin"));
        assert_eq!(user("suffixed", Some("deploy")).as_deref(), Some("legacy"));
        assert_eq!(user("free", Some("deploy")).as_deref(), Some("deploy"));
        assert_eq!(user("free", None).as_deref(), Some("cli"));
        // The keyword is a template, rendered with the host's variables; empty means none.
        let mut vars = inv.host_vars("free");
        vars.insert("app_user".into(), Value::String("web".into()));
        assert_eq!(keyword_user(Some("{{ app_user }}"), "free", &inv, &templar, &vars).unwrap().as_deref(), Some("web"));
        assert_eq!(keyword_user(Some("{{ '' }}"), "free", &inv, &templar, &vars).unwrap(), None);
        assert_eq!(keyword_user(Some("{{ app_user }}"), "fixed", &inv, &templar, &vars).unwrap(), None);
        let e = keyword_user(Some("{{ nope }}"), "free", &inv, &templar, &vars).unwrap_err();
        assert!(e.starts_with("remote_user: ") && e.contains("nope"), "{e}");
    }
}
