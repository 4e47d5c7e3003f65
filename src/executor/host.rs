//! One host walking one play: variables, conditions, loops, probes (batched with lookahead and
//! cached until an action touches what they read), plans, actions, handlers, events.

mod packages;

use super::{probe, schedule};
use super::{Events, RunOptions};
use crate::connection::{ConnectionError, ExecOutput, Transport};
use crate::inventory::Inventory;
use crate::modules::{self, async_status, CheckSupport, Diff, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope, REDACTED};
use crate::playbook::{Play, Playbook, Section, Task};
use crate::report::{DiffOut, Event, SlotKey, Status, TaskResult};
use crate::template::{Templar, Vars};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How many following tasks have their probes batched with the current one.
const LOOKAHEAD: usize = 64;
/// How many following tasks may have a probe that a change made stale re-run ahead. A later
/// change most often makes it stale again before its task runs (every file a converging host
/// gets invalidates the probes that read the whole host: packages, services, users, the
/// firewall, databases), so re-running it for all [`LOOKAHEAD`] tasks after each change cost
/// a converging host more than the round trips it saved.
const STALE_AHEAD: usize = 2;

use crate::template::OMIT;

pub struct PlayContext {
    pub play_idx: usize,
    pub playbook: Arc<Playbook>,
    pub inventory: Arc<Inventory>,
    pub opts: Arc<RunOptions>,
    pub templar: Templar,
    pub events: Events,
    pub play_hosts: Vec<String>,
    /// Failures in this batch of the play (`any_errors_fatal`, `max_fail_percentage`).
    pub batch: Arc<super::batch::Batch>,
    /// Where the batch's hosts meet (plays with `run_once` tasks or reading `hostvars`).
    pub sync: Option<Arc<super::sync::TaskSync>>,
    /// Per task of the play: its hosts meet before it (see [`super::sync`]).
    pub meets: Vec<bool>,
    /// Whether the play reads `hostvars` (a meeting then refreshes them).
    pub reads_hostvars: bool,
    /// The run's fork slots: a host gives its slot up while it waits for the others.
    pub forks: Arc<tokio::sync::Semaphore>,
    /// The run's connections to hosts tasks are delegated to.
    pub delegates: Arc<super::delegate::DelegatePool>,
    /// `ansible_play_hosts` when the batch started.
    pub alive: Vec<String>,
    /// The play mentions `play_hosts` or `ansible_play_batch`: a task's variables then
    /// leave out the batch's hosts that failed since (as Ansible's do).
    pub mentions_play_hosts: bool,
}

impl PlayContext {
    fn play(&self) -> &Play {
        &self.playbook.plays[self.play_idx]
    }
}

pub enum HostOutcome {
    Ok,
    Failed,
    Unreachable,
}

/// Why a task item stopped.
enum ItemError {
    /// Input or module error: the task fails (reported with its location).
    Task(String),
    /// The task's own input is wrong (its arguments don't template or parse, a controller
    /// file is missing): no state of the host explains it, so check mode reports it too
    /// unless the task reads a value check mode could only guess.
    Input(String),
    /// The connection died.
    Unreachable(String),
}

impl From<ModuleError> for ItemError {
    fn from(e: ModuleError) -> Self {
        ItemError::Task(e.to_string())
    }
}

impl From<crate::template::TemplateError> for ItemError {
    fn from(e: crate::template::TemplateError) -> Self {
        ItemError::Task(e.to_string())
    }
}

impl From<ConnectionError> for ItemError {
    fn from(e: ConnectionError) -> Self {
        ItemError::Unreachable(e.to_string())
    }
}

/// Result of one task item.
struct ItemOutcome {
    status: Status,
    msg: Option<String>,
    diffs: Vec<Diff>,
    actions: Vec<String>,
    registered: Value,
    facts: Map<String, Value>,
    ignored: bool,
    /// A secret value produced by the task (e.g. the `secret` module): scrubbed from output.
    secrets: Vec<String>,
    /// The host the item ran on when it was delegated (`delegate_to`).
    delegate: Option<String>,
}

impl ItemOutcome {
    /// A failure ignored by `ignore_errors` whose result says it changed something (a failing
    /// `command`): Ansible counts it `changed` as well as `ignored`.
    fn ignored_change(&self) -> bool {
        self.status == Status::Failed && self.ignored && self.registered.get("changed").and_then(Value::as_bool) == Some(true)
    }
}

struct CachedProbe {
    result: ProbeResult,
    reads: Scope,
}

pub struct HostRun {
    ctx: Arc<PlayContext>,
    host: String,
    conn: Arc<dyn Transport>,
    login_user: String,
    /// The play's `remote_user` keyword `conn` logs in with (`None`: the inventory's or the
    /// run's user); a task asking for another user gets its own connection.
    keyword_user: Option<String>,
    /// The controller, for tasks delegated to it (`delegate_to: localhost`), made when needed.
    local: Option<Arc<dyn Transport>>,
    /// Where the item running now is delegated to (see [`super::delegate`]).
    delegate: Option<super::delegate::Delegate>,
    /// Shared with the run's host record and `hostvars`.
    facts: Arc<Vars>,
    /// set_fact / register results (persist across plays).
    host_vars: Vars,
    /// Variables common to all tasks of this play (computed once), the base layer of
    /// `templar`: a task's vars hold only what is particular to it (see `task_vars`).
    base_vars: Arc<Vars>,
    /// The play's templar over this host's `base_vars`.
    templar: Templar,
    /// The host's inventory variables (group and host vars).
    inventory_vars: Vars,
    /// Names set by a layer above role defaults in `base_vars`.
    above_defaults: std::collections::HashSet<String>,
    probe_cache: HashMap<(String, String), CachedProbe>,
    /// Probes (user, script) dropped from the cache by a change and not run since.
    stale: HashSet<(String, String)>,
    /// Handler indices notified and not yet run, in notification order.
    notified: Vec<usize>,
    /// What each `include_tasks`' `when` gave, once evaluated (see `Task::gates`).
    gates: HashMap<usize, bool>,
    /// A `vars_files` entry this host could not read (its first task fails with it).
    vars_files_error: Option<String>,
    /// The last task lost the connection and `ignore_unreachable` let the host go on: log in
    /// again before the next one (the old connection may not know yet that it is gone).
    redial: bool,
    /// Check mode: an earlier task predicted a change (later errors may be consequences).
    predicted_change: bool,
    /// Check mode: variables whose value is not what a real run would give (registered by a
    /// task that predicted a change or didn't run, facts set from them).
    uncertain: HashSet<String>,
    /// Strings never to print.
    secrets: Vec<String>,
    /// The sudo password for becoming another user (`ansible_become_password`, or
    /// `--ask-become-pass`), when one is given.
    become_password: Option<String>,
    /// Bumped whenever host variables change (register, set_fact): a task prepared ahead
    /// (for its probes) is reused only if nothing changed since.
    generation: u64,
    /// Tasks prepared during lookahead: (task index, item index) -> (generation, task).
    prepared: HashMap<(usize, usize), (u64, Box<dyn ModuleTask>)>,
    /// Later tasks whose packages an earlier task's transaction installed (task index).
    absorbed: HashMap<usize, packages::Absorbed>,
    /// The fork slot this host runs under (given up while it waits for other hosts).
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Bumped when `host_vars` change; `published` is the version the batch has seen.
    vars_version: u64,
    published: u64,
    /// The names the last task registered or set (what a `run_once` task passes on).
    last_set: Vec<String>,
    /// The last failed task's result and name (`ansible_failed_result` / `_task` in a rescue).
    last_failure: (Value, String),
}

/// A block around a failed task, in play task indices.
#[derive(Debug, Clone)]
struct AbsPart {
    id: usize,
    section: Section,
    rescue: Option<usize>,
    always: Option<usize>,
    end: usize,
}

/// Where a host is in the play's blocks: tasks before `skip_until` are jumped over, the
/// rescue sections entered run, and a failure may wait for an always section to end.
#[derive(Default)]
struct BlockFlow {
    skip_until: usize,
    rescuing: HashSet<usize>,
    failing: Option<Failing>,
}

/// A failure held while an always section runs; then it goes on to `outer`.
struct Failing {
    outer: Vec<AbsPart>,
    resume_at: usize,
    fatal: bool,
}

enum Recovery {
    /// Go on at the rescue section starting at `at` (of block `id`): the failure is handled.
    Rescue { at: usize, id: usize },
    /// Run the always section starting at `at`, then, at `end`, take the failure to `outer`.
    Always { at: usize, end: usize, outer: Vec<AbsPart> },
    Fail,
}

/// The blocks around task `i`, outermost first, in play task indices.
fn abs_parts(task: &Task, i: usize) -> Vec<AbsPart> {
    task.blocks
        .iter()
        .map(|p| {
            let start = i - p.offset;
            AbsPart { id: p.id, section: p.section, rescue: p.rescue.map(|r| start + r), always: p.always.map(|a| start + a), end: start + p.len }
        })
        .collect()
}

/// Where a failure inside `parts` goes (Ansible's order): the innermost block whose body
/// failed and that has a rescue section rescues it; an always section on the way runs first.
fn recover(parts: &[AbsPart]) -> Recovery {
    for (k, p) in parts.iter().enumerate().rev() {
        match (p.section, p.rescue, p.always) {
            (Section::Body, Some(at), _) => return Recovery::Rescue { at, id: p.id },
            (Section::Body | Section::Rescue, _, Some(at)) => return Recovery::Always { at, end: p.end, outer: parts[..k].to_vec() },
            _ => {}
        }
    }
    Recovery::Fail
}

/// The variables a task's result conditions (`changed_when`, `failed_when`, `until`) see:
/// the task's, plus the result under its register name and its fields by their own names.
fn result_vars(task: &Task, vars: &Vars, reg: &Map<String, Value>) -> Vars {
    let mut v = vars.clone();
    if let Some(r) = &task.register {
        v.insert(r.clone(), Value::Object(reg.clone()));
    }
    for (k, val) in reg {
        v.entry(k.clone()).or_insert(val.clone());
    }
    v
}

/// Will a failure of `task` end in a rescue section?
fn rescued(task: &Task) -> bool {
    task.blocks.iter().any(|p| p.section == Section::Body && p.rescue.is_some())
}

/// Probes with the task's `environment` exported first (kept apart from other tasks' probes:
/// the script, and so the cache key, differs; no merging into a shared session).
fn with_env(probes: Vec<Probe>, env: &str) -> Vec<Probe> {
    if env.is_empty() {
        return probes;
    }
    probes.into_iter().map(|p| Probe { script: format!("{env}{}", p.script), merge: None, ..p }).collect()
}

impl Drop for HostRun {
    /// However the host leaves the play (an error, a cancelled run), the others of its
    /// batch stop waiting for it.
    fn drop(&mut self) {
        if let Some(sync) = &self.ctx.sync {
            sync.at(&self.host, super::sync::LEFT, None);
        }
    }
}

fn merge(into: &mut Vars, from: &Vars) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

/// Variable names whose literal values are treated as secrets in output.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("vault_") || ["password", "passwd", "secret", "token", "private_key", "api_key", "passphrase"].iter().any(|s| n.contains(s))
}

impl HostRun {
    pub fn new(ctx: Arc<PlayContext>, host: String, conn: Arc<dyn Transport>, login_user: String, facts: Arc<Vars>, host_vars: Vars) -> Self {
        let mut run = HostRun {
            ctx,
            host,
            conn,
            login_user,
            keyword_user: None,
            local: None,
            delegate: None,
            facts,
            host_vars,
            base_vars: Arc::default(),
            templar: Templar::default(),
            inventory_vars: Vars::new(),
            above_defaults: Default::default(),
            probe_cache: HashMap::new(),
            stale: HashSet::new(),
            notified: Vec::new(),
            gates: HashMap::new(),
            vars_files_error: None,
            redial: false,
            predicted_change: false,
            uncertain: HashSet::new(),
            secrets: Vec::new(),
            become_password: None,
            generation: 0,
            prepared: HashMap::new(),
            absorbed: HashMap::new(),
            permit: None,
            vars_version: 0,
            published: 0,
            last_set: Vec::new(),
            last_failure: (Value::Null, String::new()),
        };
        run.inventory_vars = run.ctx.inventory.host_vars(&run.host);
        let (base_vars, vars_files_error) = run.compute_base_vars();
        run.base_vars = Arc::new(base_vars);
        run.vars_files_error = vars_files_error;
        run.templar = run.ctx.templar.with_base(run.base_vars.clone());
        let play = run.ctx.play();
        let mut above: std::collections::HashSet<String> = run.inventory_vars.keys().cloned().collect();
        above.extend(run.facts.keys().cloned());
        above.extend(play.vars.keys().cloned());
        for r in &play.roles {
            above.extend(r.vars.keys().cloned());
        }
        run.above_defaults = above;
        run.become_password = run.resolve_become_password();
        if let Some(p) = &run.become_password {
            run.secrets.push(p.clone());
        }
        for (k, v) in run.base_vars.iter() {
            if secret_name(k) {
                if let Value::String(s) = v {
                    if s.len() >= 4 && !Templar::is_template(s) {
                        run.secrets.push(s.clone());
                    }
                }
            }
        }
        run
    }

    pub fn into_host_vars(mut self) -> Vars {
        std::mem::take(&mut self.host_vars)
    }

    /// The `remote_user` keyword the host's connection was opened with.
    pub fn with_keyword_user(mut self, user: Option<String>) -> Self {
        self.keyword_user = user;
        self
    }

    /// Run under this fork slot (given up while waiting for the other hosts of the batch).
    pub fn with_permit(mut self, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        self.permit = Some(permit);
        self
    }

    /// Tell the batch this host is at task `index` (with its variables, if they changed).
    fn report_progress(&mut self, index: usize) {
        if let Some(sync) = &self.ctx.sync {
            let vars = (self.published != self.vars_version).then(|| Arc::new(self.host_vars.clone()));
            self.published = self.vars_version;
            sync.at(&self.host, index, vars);
        }
    }

    /// Wait, without holding a fork slot, until every host of the batch has finished the
    /// tasks before `index`; then see in `hostvars` what they registered or set.
    async fn meet(&mut self, sync: &super::sync::TaskSync, index: usize) {
        self.unslotted(sync.wait_all(index)).await;
        if self.ctx.reads_hostvars {
            self.templar = self.templar.with_live(sync.live_at(index));
            // Tasks prepared ahead rendered the older `hostvars`.
            self.generation += 1;
        }
    }

    /// Wait for `f` without holding a fork slot (the hosts waited for may need it).
    async fn unslotted<F: std::future::Future>(&mut self, f: F) -> F::Output {
        let held = self.permit.take().is_some();
        let out = f.await;
        if held {
            if let Ok(p) = self.ctx.forks.clone().acquire_owned().await {
                self.permit = Some(p);
            }
        }
        out
    }

    /// Send a failure inside the blocks `parts` to its rescue or always section (see
    /// [`recover`]); true when nothing takes it: the host has failed.
    fn route_failure(&mut self, flow: &mut BlockFlow, parts: &[AbsPart], fatal: bool) -> bool {
        match recover(parts) {
            Recovery::Rescue { at, id } => {
                flow.rescuing.insert(id);
                flow.skip_until = at;
                flow.failing = None;
                self.enter_rescue();
                false
            }
            Recovery::Always { at, end, outer } => {
                flow.skip_until = at;
                flow.failing = Some(Failing { outer, resume_at: end, fatal });
                false
            }
            Recovery::Fail => true,
        }
    }

    /// A rescue section begins: it sees what failed (Ansible's `ansible_failed_result`,
    /// `ansible_failed_task`).
    fn enter_rescue(&mut self) {
        let (result, name) = self.last_failure.clone();
        self.host_vars.insert("ansible_failed_result".into(), result);
        self.host_vars.insert("ansible_failed_task".into(), json!({"name": name}));
        self.host_vars_changed();
    }

    /// `host_vars` changed: tasks prepared ahead are stale, and the batch hasn't seen them.
    fn host_vars_changed(&mut self) {
        self.generation += 1;
        self.vars_version += 1;
    }

    /// The result a `run_once` task's runner leaves for the other hosts.
    fn once_result(&self, end: &TaskEnd) -> super::sync::OnceResult {
        let vars: Vars = self.last_set.iter().filter_map(|k| Some((k.clone(), self.host_vars.get(k)?.clone()))).collect();
        super::sync::OnceResult {
            uncertain: vars.keys().filter(|k| self.uncertain.contains(*k)).cloned().collect(),
            vars,
            failed: !matches!(end, TaskEnd::Continue),
        }
    }

    /// Take what the host that ran a `run_once` task registered and set.
    fn adopt_once(&mut self, r: super::sync::OnceResult) {
        if r.vars.is_empty() {
            return;
        }
        self.uncertain.extend(r.uncertain);
        self.host_vars.extend(r.vars);
        self.host_vars_changed();
    }

    /// Ansible precedence, low to high: role defaults < inventory < facts < play vars <
    /// vars_files < role vars. Task vars, set_facts, role params and extra vars are applied per
    /// task. With them, a `vars_files` entry the host could not read (see
    /// [`Self::read_vars_files`]).
    fn compute_base_vars(&self) -> (Vars, Option<String>) {
        let play = self.ctx.play();
        let mut v = Vars::new();
        for r in &play.roles {
            merge(&mut v, &r.defaults);
        }
        merge(&mut v, &self.inventory_vars);
        merge(&mut v, &self.facts);
        merge(&mut v, &play.vars);
        let unread = self.read_vars_files(&mut v).err();
        for r in &play.roles {
            merge(&mut v, &r.vars);
        }
        // Play-wide names (hostvars, groups, ansible_play_hosts...) live in the templar's
        // shared globals; only per-host ones are copied here.
        let magic = [
            ("inventory_hostname", json!(self.host)),
            ("inventory_hostname_short", json!(self.host.split('.').next().unwrap_or(&self.host))),
            ("group_names", json!(self.ctx.inventory.group_names(&self.host))),
        ];
        for (k, val) in magic {
            v.insert(k.to_string(), val);
        }
        (v, unread)
    }

    /// The play's `vars_files` again in order when some name has a template, those rendered
    /// with the host's variables so far (and the extra vars): the first of an entry's names
    /// that exists is read. What can't be read fails the host's first task.
    fn read_vars_files(&self, v: &mut Vars) -> Result<(), String> {
        use crate::playbook::VarsFile;
        for entry in &self.ctx.play().vars_files {
            let (candidates, location) = match entry {
                VarsFile::Loaded(vars) => {
                    merge(v, vars);
                    continue;
                }
                VarsFile::PerHost { candidates, location } => (candidates, location),
            };
            let mut scope = v.clone();
            merge(&mut scope, &self.ctx.opts.extra_vars);
            scope.insert("inventory_hostname".into(), json!(self.host));
            let mut tried = Vec::new();
            let mut found = None;
            for c in candidates {
                match self.templar.render_str(c, &scope) {
                    Ok(name) => {
                        let p = self.ctx.playbook.dir.join(&name);
                        if p.is_file() {
                            found = Some(p);
                            break;
                        }
                        tried.push(name);
                    }
                    Err(e) if e.undefined => tried.push(c.clone()),
                    Err(e) => return Err(format!("{location}: vars_files '{c}': {e}")),
                }
            }
            let p = found.ok_or_else(|| format!("{location}: vars_files: none of {} found", tried.join(", ")))?;
            let vars = crate::playbook::load_vars_file(&p).map_err(|e| format!("{location}: vars_files {}: {e}", p.display()))?;
            merge(v, &vars);
        }
        Ok(())
    }

    /// What a task's variables add to `base_vars`, with precedence over them (renders see
    /// both through `self.templar`; `self.templar.var` looks a name up in both).
    fn task_vars(&self, task: &Task) -> Vars {
        let mut v = Vars::new();
        if let Some(r) = &task.role {
            // The task's own role defaults win over other roles' defaults, but not over
            // anything of higher precedence (inventory, facts, play vars, role vars).
            for (k, val) in &r.defaults {
                if !self.above_defaults.contains(k) {
                    v.insert(k.clone(), val.clone());
                }
            }
            merge(&mut v, &r.vars);
            v.insert("role_name".into(), json!(r.name));
            v.insert("role_path".into(), json!(r.path.display().to_string()));
        }
        merge(&mut v, &task.vars);
        merge(&mut v, &self.host_vars);
        if let Some(r) = &task.role {
            merge(&mut v, &r.params);
        }
        merge(&mut v, &self.ctx.opts.extra_vars);
        if self.ctx.mentions_play_hosts {
            let gone = self.ctx.batch.gone_hosts();
            if !gone.is_empty() {
                let left = |hosts: &[String]| hosts.iter().filter(|h| !gone.contains(h)).cloned().collect::<Vec<_>>();
                v.insert("ansible_play_hosts".into(), json!(left(&self.ctx.alive)));
                let batch = json!(left(&self.ctx.play_hosts));
                v.insert("ansible_play_batch".into(), batch.clone());
                v.insert("play_hosts".into(), batch);
            }
        }
        v
    }

    fn selected(&self, task: &Task) -> bool {
        self.ctx.opts.selects(task)
    }

    fn scrub(&self, s: &str) -> String {
        let mut out = hide_private_keys(s);
        for secret in &self.secrets {
            if !secret.is_empty() && out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        // Whatever the run's vault passwords decrypted (vars, `!vault` values, copied files).
        crate::vault::hide(out, REDACTED)
    }

    fn scrub_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.scrub(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.scrub_value(x)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), self.scrub_value(x))).collect()),
            other => other.clone(),
        }
    }

    /// Task names may be templated (`Install {{ pkg }}`); rendered with the task's vars when
    /// possible (not with loop items, like Ansible), else shown as written.
    fn task_title(&self, task: &Task) -> String {
        let raw = task.display_name();
        if !Templar::is_template(&raw) {
            return raw;
        }
        let vars = self.task_vars(task);
        self.scrub(&self.templar.render_str(&raw, &vars).unwrap_or(raw))
    }

    fn emit_header(&self, key: SlotKey, task: &Task, handler: bool) {
        self.ctx.events.emit(Event::Task { play: self.ctx.play_idx, key, name: self.task_title(task), handler, location: task.location.to_string() });
    }

    fn emit_result(&self, key: SlotKey, task: &Task, item: Option<String>, out: &ItemOutcome, counts: bool) {
        let hidden = task.no_log;
        let censored = "the output has been hidden due to the fact that 'no_log: true' was specified for this result".to_string();
        let result = TaskResult {
            host: self.host.clone(),
            status: out.status,
            item: if hidden { item.map(|_| "(censored due to no_log)".to_string()) } else { item.map(|i| self.scrub(&i)) },
            msg: if hidden && out.msg.is_some() { Some(censored.clone()) } else { out.msg.as_ref().map(|m| self.scrub(m)) },
            diffs: if hidden || task.diff == Some(false) {
                vec![]
            } else {
                out.diffs
                    .iter()
                    .map(|d| {
                        let mut d = DiffOut::from(d);
                        d.before = d.before.map(|b| self.scrub(&b));
                        d.after = d.after.map(|a| self.scrub(&a));
                        d
                    })
                    .collect()
            },
            actions: if hidden { vec![] } else { out.actions.iter().map(|a| self.scrub(a)).collect() },
            ignored: out.ignored,
            changed: out.ignored_change(),
            rescued: out.status == Status::Failed && !out.ignored && rescued(task),
            // The whole result with -vv; a failure's always (what failed: exit code, output).
            result: if hidden { json!({"censored": censored}) } else if self.ctx.opts.verbosity >= 2 || out.status == Status::Failed { self.scrub_value(&out.registered) } else { Value::Null },
            counts,
            show_diff: task.diff == Some(true),
        };
        self.ctx.events.emit(Event::Result { play: self.ctx.play_idx, key, task: task.display_name(), result });
    }

    fn passed(&self, key: SlotKey) {
        self.ctx.events.emit(Event::Passed { play: self.ctx.play_idx, host: self.host.clone(), key });
    }

    pub async fn run_play(&mut self) -> HostOutcome {
        let ctx = self.ctx.clone();
        let play = ctx.play();
        let n = play.tasks.len();
        let mut outcome = HostOutcome::Ok;
        let mut lost = false;
        // Blocks with rescue/always: tasks before `skip_until` are jumped over; the rescue
        // sections entered; a failure waiting for an always section to end.
        let mut flow = BlockFlow::default();
        for i in 0..n {
            let task = &play.tasks[i];
            let key = (i + 1, 0, 0);
            self.report_progress(i);
            if let Some(f) = flow.failing.take_if(|f| i >= f.resume_at) {
                // The always section is done: the failure goes on outwards.
                if self.route_failure(&mut flow, &f.outer, f.fatal) {
                    ctx.batch.host_lost(f.fatal);
                    outcome = HostOutcome::Failed;
                    break;
                }
            }
            if i < flow.skip_until || task.blocks.iter().any(|p| p.section == Section::Rescue && !flow.rescuing.contains(&p.id)) {
                continue;
            }
            if ctx.batch.stops_before(i) {
                // Another host's failure was fatal, or it ended the batch or play at this task
                // or an earlier one: run no further task (handlers still run).
                break;
            }
            if !self.selected(task) || ctx.opts.before_start(ctx.play_idx, i) {
                continue;
            }
            let meta = schedule::meta_action(task).is_some();
            let mut runs_once = false;
            match &ctx.sync {
                Some(sync) if ctx.meets.get(i) == Some(&true) => {
                    self.meet(sync, i).await;
                    if ctx.batch.stops_before(i) {
                        // Ended while this host waited (a `meta: end_play` under a condition
                        // just before this task).
                        break;
                    }
                    if task.run_once && !meta {
                        let runner = sync.runner(i).unwrap_or_default();
                        if runner != self.host {
                            // The runner's result is this host's (Ansible's run_once).
                            let r = self.unslotted(sync.wait_once(i, &runner)).await;
                            let failed = r.failed;
                            self.adopt_once(r);
                            if failed {
                                self.emit_header(key, task, false);
                                let out = failed_outcome(format!("{}: the run_once task failed on {runner}, the host that ran it for the batch", task.location));
                                self.emit_result(key, task, None, &out, true);
                                ctx.batch.host_lost(task.any_errors_fatal);
                                outcome = HostOutcome::Failed;
                                break;
                            }
                            continue;
                        }
                        runs_once = true;
                    }
                }
                _ => {}
            }
            if task.run_once && !runs_once && ctx.play_hosts.first() != Some(&self.host) {
                continue;
            }
            if meta {
                // meta: flush_handlers, end_host / end_batch / end_play (others are no-ops
                // here), under the task's `when`.
                let action = schedule::meta_action(task).unwrap_or_default().to_string();
                let when = if task.when.is_empty() && task.gates.is_empty() {
                    Ok(true)
                } else {
                    let vars = self.task_vars(task);
                    match self.gates_open(task, &vars) {
                        Ok(true) if !task.when.is_empty() => self.eval_when(task, &vars),
                        other => other,
                    }
                };
                let error = match when {
                    Ok(false) => {
                        self.passed(key);
                        continue;
                    }
                    Err(e) => Some(e),
                    Ok(true) if !matches!(action.as_str(), "flush_handlers" | "noop" | "clear_facts" | "refresh_inventory" | "clear_host_errors" | "reset_connection" | "end_play" | "end_batch" | "end_host") => {
                        Some(format!("{}: unsupported meta action '{action}'", task.location))
                    }
                    Ok(true) => None,
                };
                if let Some(e) = error {
                    self.emit_header(key, task, false);
                    self.emit_result(key, task, None, &failed_outcome(e), true);
                    ctx.batch.host_lost(task.any_errors_fatal);
                    outcome = HostOutcome::Failed;
                    break;
                }
                if action == "flush_handlers" {
                    if let Some(o) = self.run_handlers(key).await {
                        ctx.batch.host_lost(play.any_errors_fatal);
                        outcome = o;
                        break;
                    }
                } else if action == "reset_connection" {
                    // Log in again: group membership, limits and the like are read at login.
                    tracing::debug!(host = %self.host, "reset connection");
                    if let Err(e) = self.conn.reconnect(None).await {
                        self.emit_header(key, task, false);
                        let out = unreachable_outcome(e.to_string(), task.ignore_unreachable);
                        self.emit_result(key, task, None, &out, true);
                        if !task.ignore_unreachable {
                            ctx.batch.host_lost(task.any_errors_fatal);
                            outcome = HostOutcome::Unreachable;
                            lost = true;
                            break;
                        }
                    }
                } else if action == "end_host" {
                    break;
                } else if action == "end_batch" || action == "end_play" {
                    // For every host of the batch (and, for end_play, the batches after it):
                    // the others stop when they reach this task (see `Batch::end`).
                    ctx.batch.end(action == "end_play", i);
                    break;
                }
                self.passed(key);
                continue;
            }
            if std::mem::take(&mut self.redial) {
                // A failure here shows as the next task's own (unreachable).
                let _ = self.conn.reconnect(None).await;
            }
            self.emit_header(key, task, false);
            let end = self.run_task(task, key, i).await;
            if runs_once {
                if let Some(sync) = &ctx.sync {
                    sync.post_once(i, self.once_result(&end));
                }
            }
            match end {
                TaskEnd::Continue => {}
                TaskEnd::Failed => {
                    if self.route_failure(&mut flow, &abs_parts(task, i), task.any_errors_fatal) {
                        ctx.batch.host_lost(task.any_errors_fatal);
                        outcome = HostOutcome::Failed;
                        break;
                    }
                }
                TaskEnd::Unreachable => {
                    ctx.batch.host_lost(task.any_errors_fatal);
                    outcome = HostOutcome::Unreachable;
                    lost = true;
                    break;
                }
            }
            self.passed(key);
        }
        if let Some(f) = flow.failing {
            // An always section ended the play: nothing outside it rescues the failure.
            ctx.batch.host_lost(f.fatal);
            outcome = HostOutcome::Failed;
        }
        if !matches!(outcome, HostOutcome::Ok) {
            ctx.batch.gone(&self.host);
        }
        // The other hosts of the batch need not wait for this one's handlers.
        self.report_progress(super::sync::LEFT);
        if lost {
            return outcome;
        }
        // Handlers run at the end of the play, also when a later task failed (Ansible drops
        // them unless --force-handlers; a restart that was due should still happen).
        if let Some(o) = self.run_handlers((n + 1, 0, 0)).await {
            if matches!(outcome, HostOutcome::Ok) {
                ctx.batch.host_lost(play.any_errors_fatal);
                outcome = o;
            }
        }
        outcome
    }

    /// Run notified handlers in their definition order. Returns Some(outcome) if one failed.
    /// A handler notified by a handler runs in the same flush when it comes later in the
    /// list, else at the next flush (as Ansible's handler iteration does).
    async fn run_handlers(&mut self, at: SlotKey) -> Option<HostOutcome> {
        let ctx = self.ctx.clone();
        let play = ctx.play();
        let mut failed = None;
        for (h, handler) in play.handlers.iter().enumerate() {
            let Some(pos) = self.notified.iter().position(|&n| n == h) else { continue };
            self.notified.remove(pos);
            let key = (at.0, 1, h);
            self.emit_header(key, handler, true);
            match self.run_task(handler, key, usize::MAX).await {
                TaskEnd::Continue => {}
                TaskEnd::Failed => failed = Some(HostOutcome::Failed),
                TaskEnd::Unreachable => return Some(HostOutcome::Unreachable),
            }
            self.passed(key);
        }
        failed
    }

    fn notify(&mut self, names: &[String]) {
        let ctx = self.ctx.clone();
        let play = ctx.play();
        for name in names {
            let mut found = false;
            for (i, h) in play.handlers.iter().enumerate() {
                if h.answers(name) {
                    found = true;
                    if !self.notified.contains(&i) {
                        self.notified.push(i);
                    }
                }
            }
            if !found {
                ctx.events.emit(Event::Warning { host: Some(self.host.clone()), msg: format!("notified handler '{name}' does not exist") });
            }
        }
    }

    /// `v` rendered, with the strings that use an undefined variable left out of lists and
    /// mappings (`None`: `v` itself is such a string).
    fn render_defined(&self, v: &Value, vars: &Vars) -> Result<Option<Value>, crate::template::TemplateError> {
        Ok(match v {
            Value::Array(items) => Some(Value::Array(items.iter().map(|i| self.render_defined(i, vars)).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect())),
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    if let Some(x) = self.render_defined(x, vars)? {
                        out.insert(k.clone(), x);
                    }
                }
                Some(Value::Object(out))
            }
            other => match self.templar.render_value(other, vars) {
                Ok(x) => Some(x),
                Err(e) if e.undefined => None,
                Err(e) => return Err(e),
            },
        })
    }

    /// A task's loop items as rendered; `with_items` flattens one level
    /// (`["{{ list }}", 9]` is the list's items, then 9) and takes a lone value as one item.
    fn render_loop(&self, task: &Task, src: &Value, vars: &Vars) -> Result<Value, crate::template::TemplateError> {
        if task.loop_control.lookup.as_deref() == Some("first_found") {
            // As Ansible's `with_first_found`: terms naming an undefined variable are left out
            // (`"{{ ansible_distribution }}.yml"` where that fact is missing).
            let terms = self.render_defined(src, vars)?.unwrap_or(Value::Array(vec![]));
            let module = task.module.rsplit('.').next().unwrap_or(&task.module);
            let subdir = if module.contains("template") { "templates" } else if module.contains("var") { "vars" } else { "files" };
            return self.templar.query_loop("first_found", &terms, subdir, vars);
        }
        let v = self.templar.render_value(src, vars)?;
        if let Some(plugin) = &task.loop_control.lookup {
            // Ansible's `with_first_found` searches by the task's module: templates/ for a
            // template task, vars/ for include_vars, files/ otherwise.
            let module = task.module.rsplit('.').next().unwrap_or(&task.module);
            let subdir = if module.contains("template") { "templates" } else if module.contains("var") { "vars" } else { "files" };
            return self.templar.query_loop(plugin, &v, subdir, vars);
        }
        if !task.loop_control.flatten {
            return Ok(v);
        }
        Ok(match v {
            Value::Array(a) => Value::Array(a.into_iter().flat_map(|x| if let Value::Array(i) = x { i } else { vec![x] }).collect()),
            Value::Null => Value::Null,
            other => Value::Array(vec![other]),
        })
    }

    /// One task (all loop items).
    async fn run_task(&mut self, task: &Task, key: SlotKey, index: usize) -> TaskEnd {
        if let Some(e) = self.vars_files_error.take() {
            let out = failed_outcome(e);
            return self.finish_task(task, key, vec![(None, out)], false, index);
        }
        let vars = self.task_vars(task);
        match self.gates_open(task, &vars) {
            Ok(true) => {}
            Ok(false) => return self.finish_task(task, key, vec![(None, skipped_outcome("Conditional result was False"))], true, index),
            Err(e) => {
                let out = self.input_error(task, e);
                return self.finish_task(task, key, vec![(None, out)], false, index);
            }
        }
        let outcomes: Vec<(Option<String>, ItemOutcome)>;
        let mut skipped_all = false;
        if let Some(items_src) = &task.loop_items {
            let items = match self.render_loop(task, items_src, &vars) {
                Ok(Value::Array(a)) => a,
                Ok(Value::Null) => vec![],
                Ok(Value::String(s)) if s.is_empty() => vec![],
                Ok(other) => {
                    let out = failed_outcome(format!("{}: loop must be a list, got {}", task.location, short_json(&other)));
                    return self.finish_task(task, key, vec![(None, out)], false, index);
                }
                Err(e) => {
                    // `when` may guard an undefined loop source (Ansible evaluates when per item,
                    // but a false condition that doesn't mention `item` skips the whole task).
                    if !task.when.is_empty() && !task.when.iter().any(|w| w.to_string().contains("item")) {
                        if let Ok(false) = self.eval_when(task, &vars) {
                            let out = skipped_outcome("Conditional result was False");
                            return self.finish_task(task, key, vec![(None, out)], true, index);
                        }
                    }
                    let out = failed_outcome(format!("{}: loop: {e}", task.location));
                    return self.finish_task(task, key, vec![(None, out)], false, index);
                }
            };
            let loop_var = task.loop_control.loop_var.clone().unwrap_or_else(|| "item".into());
            let mut outs = Vec::new();
            let mut vars = vars;
            for (idx, item) in items.iter().cloned().enumerate() {
                let ivars = item_vars(task, &vars, &loop_var, idx, &items);
                let label = match &task.loop_control.label {
                    Some(l) => self.templar.render_str(l, &ivars).unwrap_or_else(|_| l.clone()),
                    None => match &item {
                        Value::String(s) => s.clone(),
                        other => short_json(other),
                    },
                };
                let mut out = self.run_item(task, &ivars, index, idx, key).await;
                if !(out.facts.is_empty() || task.delegate_facts && out.delegate.is_some()) {
                    // What an item set (`set_fact` building a list item by item) is what the
                    // next item sees, as in Ansible (extra vars still win).
                    for (k, v) in out.facts.iter().filter(|(k, _)| *k != "ansible_facts" && !self.ctx.opts.extra_vars.contains_key(*k)) {
                        vars.insert(k.clone(), v.clone());
                    }
                    self.generation += 1;
                }
                // Ansible's per-item result names its item (`r.results | map(attribute='item')`).
                if let Value::Object(r) = &mut out.registered {
                    r.insert(loop_var.clone(), item.clone());
                    r.insert("ansible_loop_var".into(), json!(loop_var));
                    if let Some(iv) = &task.loop_control.index_var {
                        r.insert(iv.clone(), json!(idx));
                        r.insert("ansible_index_var".into(), json!(iv));
                    }
                }
                let stop = matches!(out.status, Status::Unreachable);
                outs.push((Some(label), out));
                if stop {
                    break;
                }
            }
            if outs.is_empty() {
                skipped_all = true;
                outs.push((None, skipped_outcome("No items in the list")));
            }
            outcomes = outs;
        } else {
            outcomes = vec![(None, self.run_item(task, &vars, index, 0, key).await)];
        }
        self.finish_task(task, key, outcomes, skipped_all, index)
    }

    fn finish_task(&mut self, task: &Task, key: SlotKey, mut outcomes: Vec<(Option<String>, ItemOutcome)>, empty_loop: bool, _index: usize) -> TaskEnd {
        let looped = task.loop_items.is_some();
        // A registered `msg` is the module's words, as Ansible's; the output keeps where.
        let here = format!("{}: ", task.location);
        for (_, o) in outcomes.iter_mut() {
            if let Some(Value::String(m)) = o.registered.get_mut("msg") {
                if let Some(rest) = m.strip_prefix(&here) {
                    *m = rest.to_string();
                }
            }
        }
        // Register and set facts.
        let mut any_changed = false;
        let mut any_failed = false;
        let mut any_unreachable = false;
        let mut all_skipped = true;
        // Failures ignored by `ignore_errors`, and whether one of them changed something.
        let mut ignored_failure = false;
        let mut ignored_change = false;
        let mut ignored_unreachable = false;
        for (_, o) in &outcomes {
            for s in &o.secrets {
                if !self.secrets.contains(s) {
                    self.secrets.push(s.clone());
                }
            }
            any_changed |= o.status == Status::Changed;
            any_failed |= o.status == Status::Failed && !o.ignored;
            // `ignore_unreachable`: the host goes on (counted ok and ignored, as in Ansible).
            any_unreachable |= o.status == Status::Unreachable && !o.ignored;
            ignored_unreachable |= o.status == Status::Unreachable && o.ignored;
            self.redial |= o.status == Status::Unreachable && o.ignored && o.delegate.is_none();
            all_skipped &= o.status == Status::Skipped;
            ignored_failure |= o.status == Status::Failed && o.ignored;
            ignored_change |= o.ignored_change();
            if let Some(to) = o.delegate.as_ref().filter(|_| task.delegate_facts && !o.facts.is_empty()) {
                // `delegate_facts`: the facts are the delegate's, for the rest of the run.
                let given: Vars = o.facts.iter().map(|(k, v)| (k.clone(), Templar::literal(v.clone()))).collect();
                self.ctx.delegates.facts.give(to, &given);
                if let Some(sync) = &self.ctx.sync {
                    sync.give(to, &given);
                }
                continue;
            }
            for (k, v) in &o.facts {
                let v = match (k.as_str(), v) {
                    // Facts a module gathered (`setup`) join the host's `ansible_facts`.
                    ("ansible_facts", Value::Object(new)) => {
                        let mut all = self.host_vars.get(k).or_else(|| self.facts.get(k)).and_then(Value::as_object).cloned().unwrap_or_default();
                        all.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                        Value::Object(all)
                    }
                    _ => Templar::literal(v.clone()),
                };
                self.host_vars.insert(k.clone(), v);
            }
        }
        let own_facts = |o: &ItemOutcome| !(task.delegate_facts && o.delegate.is_some());
        self.last_set = outcomes.iter().filter(|(_, o)| own_facts(o)).flat_map(|(_, o)| o.facts.keys().cloned()).chain(task.register.clone()).collect();
        if !self.last_set.is_empty() {
            self.host_vars_changed();
        }
        if task.check_mode.unwrap_or(self.ctx.opts.check) {
            // What a real run would have registered or set may differ: the result of a task
            // that would change something or didn't run, of anything that read the host after
            // a change not made (a `stat` of a file not written), or computed from such.
            let guessed = any_changed
                || outcomes.iter().any(|(_, o)| o.status == Status::Skipped && o.msg.as_deref().is_some_and(|m| !m.starts_with("Conditional result was False")))
                || (self.predicted_change && !reads_only_vars(task));
            if guessed || self.mentions_uncertain(task) {
                self.uncertain.extend(task.register.iter().cloned());
                self.uncertain.extend(outcomes.iter().flat_map(|(_, o)| o.facts.keys().cloned()));
                // A set_fact that could not run sets nothing: its names are guesses too.
                if schedule::is_module(task, "set_fact") {
                    if let Some(args) = task.args.as_object() {
                        self.uncertain.extend(args.keys().filter(|k| *k != "cacheable").cloned());
                    }
                }
            }
        }
        if any_failed {
            let value = if looped { json!({"failed": true, "results": outcomes.iter().map(|(_, o)| o.registered.clone()).collect::<Vec<_>>()}) } else { outcomes[0].1.registered.clone() };
            self.last_failure = (Templar::literal(value), task.display_name());
        }
        if let Some(reg) = &task.register {
            let value = if looped {
                let results: Vec<Value> = outcomes.iter().map(|(_, o)| o.registered.clone()).collect();
                let mut m = Map::new();
                m.insert("results".into(), Value::Array(results));
                m.insert("changed".into(), json!(any_changed));
                // An item's ignored failure still makes the loop's result failed (`is failed`).
                let failed = any_failed || ignored_failure;
                m.insert("failed".into(), json!(failed));
                m.insert("skipped".into(), json!(all_skipped || empty_loop));
                m.insert("msg".into(), json!(if failed { "One or more items failed" } else { "All items completed" }));
                Value::Object(m)
            } else {
                outcomes[0].1.registered.clone()
            };
            // Data, never template text again (Ansible's results are "unsafe").
            self.host_vars.insert(reg.clone(), Templar::literal(value));
        }
        if any_changed {
            if self.ctx.opts.check || task.check_mode == Some(true) {
                self.predicted_change = true;
            }
            // `notify: "{{ handler_name }}"`: rendered with the task's variables.
            let mut notify = task.notify.clone();
            if notify.iter().any(|n| Templar::is_template(n)) {
                let vars = self.task_vars(task);
                for n in notify.iter_mut().filter(|n| Templar::is_template(n)) {
                    *n = self.templar.render_str(n, &vars).unwrap_or_else(|_| n.clone());
                }
            }
            self.notify(&notify);
        }
        // Events: per item for loops (not counted), then the task line counted once.
        if looped && !empty_loop {
            for (label, o) in &outcomes {
                self.emit_result(key, task, label.clone(), o, false);
            }
            // Ansible's loop result: failed if an item failed (ignored or not), changed if an
            // item changed, even one whose failure was ignored.
            let status = if any_unreachable || (ignored_unreachable && !any_failed) {
                Status::Unreachable
            } else if any_failed || ignored_failure {
                Status::Failed
            } else if any_changed {
                Status::Changed
            } else if all_skipped {
                Status::Skipped
            } else {
                Status::Ok
            };
            let ignored = !any_failed && !any_unreachable && (ignored_failure || ignored_unreachable);
            let changed = any_changed || ignored_change;
            // The summary only counts in the recap; the item lines are the display.
            let result = TaskResult { ignored, changed: ignored && changed, rescued: any_failed && rescued(task), ..TaskResult::new(&self.host, status, None) };
            self.ctx.events.emit_count_only(result);
        } else {
            let (label, o) = &outcomes[0];
            self.emit_result(key, task, label.clone(), o, true);
        }
        if any_unreachable {
            TaskEnd::Unreachable
        } else if any_failed {
            TaskEnd::Failed
        } else {
            TaskEnd::Continue
        }
    }

    fn eval_when(&self, task: &Task, vars: &Vars) -> Result<bool, String> {
        self.eval_conditions(&task.when, vars, "when", task)
    }

    /// Are the `include_tasks` around `task` open? Each include's `when` is evaluated the
    /// first time one of its tasks comes, then kept.
    fn gates_open(&mut self, task: &Task, vars: &Vars) -> Result<bool, String> {
        for g in &task.gates {
            let open = match self.gates.get(&g.id) {
                Some(o) => *o,
                None => {
                    let o = self.eval_conditions(&g.when, vars, "when", task)?;
                    self.gates.insert(g.id, o);
                    o
                }
            };
            if !open {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// All conditions true (ANDed, evaluated in order up to the first false one, like Ansible).
    fn eval_conditions(&self, conds: &[Value], vars: &Vars, what: &str, task: &Task) -> Result<bool, String> {
        for cond in conds {
            let ok = match cond {
                Value::Bool(b) => *b,
                Value::Null => true,
                Value::String(s) => self.templar.eval_condition(s, vars).map_err(|e| format!("{}: {what} '{s}': {e}", task.location))?,
                other => self.templar.eval_condition(&other.to_string(), vars).map_err(|e| format!("{}: {what}: {e}", task.location))?,
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// User the task's scripts run as.
    fn run_as(&self, task: &Task, vars: &Vars) -> Result<String, String> {
        let play = self.ctx.play();
        let do_become = task.r#become.or(play.r#become).unwrap_or(self.ctx.opts.r#become)
            || self.templar.var(vars, "ansible_become").and_then(modules::args::truthy).unwrap_or(false);
        if !do_become {
            return Ok(self.login().to_string());
        }
        let user = match task.become_user.clone().or(play.become_user.clone()).or_else(|| self.templar.var(vars, "ansible_become_user").and_then(|v| v.as_str()).map(str::to_string)) {
            Some(u) => self.templar.render_str(&u, vars).map_err(|e| format!("{}: become_user: {e}", task.location))?,
            None => "root".to_string(),
        };
        Ok(user)
    }

    /// Turn rendered args into the module's argument map.
    fn module_args(module: &dyn Module, rendered: Value, task: &Task) -> Result<Map<String, Value>, String> {
        let mut map = match rendered {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            Value::String(s) => {
                let mut m = Map::new();
                match module.free_form() {
                    Some(param) => {
                        // Ansible cuts its own `key=value` words out of the command text
                        // (`chdir=/tmp creates=x`); the rest is passed on untouched.
                        let re = regex::Regex::new(r#"(^|\s)(creates|removes|chdir|executable|stdin|stdin_add_newline|strip_empty_ends|warn)=("[^"]*"|'[^']*'|\S+)"#).expect("static regex");
                        let mut extracted = Map::new();
                        for c in re.captures_iter(&s) {
                            let v = c[3].trim_matches(|ch| ch == '"' || ch == '\'').to_string();
                            if module.params().contains(&&c[2]) {
                                extracted.insert(c[2].to_string(), Value::String(v));
                            }
                        }
                        let raw = if extracted.is_empty() { s.clone() } else { re.replace_all(&s, "$1").trim().to_string() };
                        m.insert(param.to_string(), Value::String(raw));
                        m.extend(extracted);
                    }
                    // `key=value` words: the loader splits a playbook's before templating, with
                    // this same parser.
                    None => m = crate::playbook::split_key_values(&s).map_err(|e| format!("{}: '{}' {e}", task.location, task.module))?,
                }
                m
            }
            other => return Err(format!("{}: arguments must be a mapping, got {}", task.location, short_json(&other))),
        };
        if map.contains_key("_raw_params") && module.free_form().is_some_and(|p| p != "_raw_params") {
            let v = map.remove("_raw_params").unwrap_or(Value::Null);
            map.insert(module.free_form().unwrap_or_default().to_string(), v);
        }
        map.retain(|_, v| v.as_str() != Some(OMIT));
        Ok(map)
    }

    /// Prepare a task for given vars (no host access).
    fn prepare(&self, task: &Task, vars: &Vars, run_as: &str) -> Result<Box<dyn ModuleTask>, String> {
        self.prepare_with(&self.templar, task, vars, run_as)
    }

    fn prepare_with(&self, templar: &Templar, task: &Task, vars: &Vars, run_as: &str) -> Result<Box<dyn ModuleTask>, String> {
        let (module, args) = Self::task_args(templar, task, vars)?;
        self.prepare_module(templar, task, module, args, vars, run_as)
    }

    /// The task's module and its arguments as the module receives them, rendered with `vars`.
    fn task_args(templar: &Templar, task: &Task, vars: &Vars) -> Result<(&'static dyn Module, Map<String, Value>), String> {
        let module = Self::module_of(task)?;
        let rendered = templar.render_value(&task.args, vars).map_err(|e| format!("{}: {e}", task.location))?;
        Ok((module, Self::module_args(module, rendered, task)?))
    }

    /// Prepare `task` with arguments already rendered (or rewritten).
    fn prepare_args(&self, task: &Task, args: Map<String, Value>, vars: &Vars, run_as: &str) -> Result<Box<dyn ModuleTask>, String> {
        self.prepare_module(&self.templar, task, Self::module_of(task)?, args, vars, run_as)
    }

    fn module_of(task: &Task) -> Result<&'static dyn Module, String> {
        modules::lookup(&task.module).ok_or_else(|| format!("{}: unknown module '{}'", task.location, task.module))
    }

    fn prepare_module(&self, templar: &Templar, task: &Task, module: &dyn Module, args: Map<String, Value>, vars: &Vars, run_as: &str) -> Result<Box<dyn ModuleTask>, String> {
        let pctx = PrepareContext {
            templar,
            vars,
            host: &self.host,
            role_path: task.role.as_ref().map(|r| r.path.as_path()),
            playbook_dir: &self.ctx.playbook.dir,
            run_as,
        };
        module.prepare(&args, &pctx).map_err(|e| format!("{}: {e}", task.location))
    }

    /// The task's `environment` as `export` lines to put before its scripts (probes and
    /// actions): the layers rendered with the task's variables, inner names winning.
    fn task_env(&self, task: &Task, vars: &Vars) -> Result<String, String> {
        let mut env: std::collections::BTreeMap<String, String> = Default::default();
        for layer in &task.environment {
            let rendered = self.templar.render_value(layer, vars).map_err(|e| format!("{}: environment: {e}", task.location))?;
            let map = match rendered {
                Value::Object(m) => m,
                Value::Null => continue,
                other => return Err(format!("{}: environment must be a mapping of variable names to values, got {}", task.location, short_json(&other))),
            };
            for (k, v) in map {
                if !crate::template::is_identifier(&k) {
                    return Err(format!("{}: environment: '{k}' is not a valid variable name", task.location));
                }
                let text = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    // Python's str(): True / False, as Ansible passes them.
                    Value::Bool(b) => if b { "True" } else { "False" }.to_string(),
                    other => other.to_string(),
                };
                env.insert(k, text);
            }
        }
        Ok(env.iter().map(|(k, v)| format!("export {k}={}\n", modules::sh_quote(v))).collect())
    }

    /// The host's sudo password (see [`super::become_password`]).
    fn resolve_become_password(&self) -> Option<String> {
        super::become_password(&self.base_vars, &self.host_vars, &self.templar, &self.ctx.opts)
    }

    /// The sudo password where the item running now runs: its delegate's when it is
    /// delegated to another host (none on the controller), else the host's.
    fn current_become_password(&self) -> Option<&String> {
        match &self.delegate {
            Some(d) if !d.same_host => d.become_password.as_ref(),
            _ => self.become_password.as_ref(),
        }
    }

    /// Wrap a script to run as `user` (become). The wrapped script's failure to start is
    /// explained by [`become_failure`]. When sudo needs the host's become password, the
    /// script reads it as the first line of its stdin (see [`become_stdin`]): `true` says so.
    /// `data`: the script's own stdin follows the password and is passed on to it.
    fn wrap(&self, script: &str, user: &str, data: bool) -> (String, bool) {
        if !self.becomes(user) {
            return (script.to_string(), false);
        }
        let login = self.login();
        let inner = format!("cd ~ 2>/dev/null || cd /\n{script}");
        let (u, i) = (modules::sh_quote(user), modules::sh_quote(&inner));
        if login == "root" {
            return (format!("cd / && HOME=$(getent passwd {u} | cut -d: -f6) exec runuser -u {u} -- sh -c {i}"), false);
        }
        if self.current_become_password().is_none() {
            return (format!("exec sudo -n -H -u {u} -- sh -c {i}"), false);
        }
        // The password arrives on stdin, never in the command (which `ps` shows). sudo is
        // asked without it first: a NOPASSWD rule or a cached login needs none, and then the
        // line is dropped; otherwise sudo reads it (-S, no prompt text, cache ignored so it
        // always asks) and the script gets the rest of stdin.
        let feed = if data { "{ printf '%s\\n' \"$__provision_pw\"; exec cat; }" } else { "printf '%s\\n' \"$__provision_pw\"" };
        (
            format!(
                "IFS= read -r __provision_pw\nif sudo -n -u {u} true 2>/dev/null; then unset __provision_pw; exec sudo -n -H -u {u} -- sh -c {i}; fi\n{feed} | sudo -S -k -p '' -H -u {u} -- sh -c {i}"
            ),
            true,
        )
    }

    /// Does running as `user` mean becoming someone else than the login (see [`Self::wrap`])?
    fn becomes(&self, user: &str) -> bool {
        !user.is_empty() && user != self.login()
    }

    /// Did sudo, wrapped around a script for `user` (see [`Self::wrap`]), refuse to run it
    /// for want of the right password? Its own words then start stderr (the script never ran).
    fn sudo_refused(&self, user: &str, out: &ExecOutput) -> bool {
        if !self.becomes(user) || self.login() == "root" || out.exit_code != 1 {
            return false;
        }
        let err = out.stderr_str();
        err.starts_with("sudo: a password is required") || (err.starts_with("Sorry, try again.") && err.contains("incorrect password attempt"))
    }

    /// [`Self::wrap`] for a script sent alone, with the stdin it then needs: the password
    /// line if it reads one, then `data` (which the script reads when `reads_data`).
    fn wrapped(&self, script: &str, user: &str, data: &[u8], reads_data: bool) -> (String, Vec<u8>) {
        let (script, reads_password) = self.wrap(script, user, reads_data);
        (script, self.become_stdin(usize::from(reads_password), data))
    }

    /// The stdin of a script whose wraps (see [`Self::wrap`]) read `lines` password lines
    /// first, then `data`.
    fn become_stdin(&self, lines: usize, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(p) = self.current_become_password().filter(|_| lines > 0) {
            for _ in 0..lines {
                out.extend_from_slice(p.as_bytes());
                out.push(b'\n');
            }
        }
        out.extend_from_slice(data);
        out
    }

    /// Probes for a task: from cache, else one batch with the uncached probes of the following
    /// tasks (lookahead), so a converged host needs a handful of round trips per play.
    async fn probe(&mut self, probes: &[Probe], run_as: &str, index: usize) -> Result<Vec<ProbeResult>, ItemError> {
        if let Some(d) = self.delegate.clone() {
            return self.probe_delegated(&d, probes, run_as).await;
        }
        let missing: Vec<&Probe> = probes.iter().filter(|p| !self.probe_cache.contains_key(&(run_as.to_string(), p.script.clone()))).collect();
        if !missing.is_empty() {
            let mut batch: Vec<(String, Probe)> = missing.iter().map(|p| (run_as.to_string(), (*p).clone())).collect();
            if index != usize::MAX {
                let (extras, prepared) = self.lookahead(index);
                for (key, t) in prepared {
                    self.prepared.insert(key, (self.generation, t));
                }
                for (j, user, p) in extras {
                    let k = (user, p.script.clone());
                    if self.probe_cache.contains_key(&k) || (j > index + STALE_AHEAD && self.stale.contains(&k)) {
                        continue;
                    }
                    if !batch.iter().any(|(u, b)| *u == k.0 && b.script == k.1) {
                        batch.push((k.0, p));
                    }
                }
            }
            // One round trip for all of them: each become user's probes run in their own
            // subshell (sudo/runuser), framed with their own tag.
            let mut users: Vec<String> = batch.iter().map(|(u, _)| u.clone()).collect();
            users.sort();
            users.dedup();
            let mut parts = Vec::new();
            let mut groups = Vec::new();
            let mut password_lines = 0;
            for user in users {
                let group: Vec<&Probe> = batch.iter().filter(|(u, _)| *u == user).map(|(_, p)| p).collect();
                let tag = probe::new_tag();
                let (script, members) = probe::group_script(&tag, &group);
                let (wrapped, reads_password) = self.wrap(&script, &user, false);
                password_lines += usize::from(reads_password);
                parts.push(format!("(\n{wrapped}\n)"));
                groups.push((user, tag, group, members));
            }
            self.ctx.events.round_trip(&self.host);
            tracing::debug!(host = %self.host, probes = batch.len(), users = groups.len(), "exec probe batch");
            let script = parts.join("\n");
            tracing::trace!(host = %self.host, "probe batch script:\n{script}");
            let out = self.conn.exec(&script, Some(&self.become_stdin(password_lines, &[]))).await?;
            for (user, tag, group, members) in groups {
                let results = match probe::parse_batch(&tag, members.len(), &out.stdout) {
                    Ok(r) => r,
                    Err(e) => {
                        if user == run_as {
                            return Err(ItemError::Task(become_failure(&user, &e.to_string(), out.exit_code, &out.stderr_str())));
                        }
                        continue; // a lookahead task's user problem surfaces when that task runs
                    }
                };
                for (i, r) in probe::per_probe(&tag, members, results) {
                    let p = group[i];
                    let key = (user.clone(), p.script.clone());
                    self.stale.remove(&key);
                    self.probe_cache.insert(key, CachedProbe { result: r, reads: p.reads.clone() });
                }
            }
        }
        probes
            .iter()
            .map(|p| {
                self.probe_cache
                    .get(&(run_as.to_string(), p.script.clone()))
                    .map(|c| c.result.clone())
                    .ok_or_else(|| ItemError::Task("probe result missing".into()))
            })
            .collect()
    }

    /// A delegated task's probes, run where it is delegated in one exec, never cached (the
    /// cache holds what the host's own probes saw).
    async fn probe_delegated(&mut self, to: &super::delegate::Delegate, probes: &[Probe], run_as: &str) -> Result<Vec<ProbeResult>, ItemError> {
        let group: Vec<&Probe> = probes.iter().collect();
        let tag = probe::new_tag();
        let (script, members) = probe::group_script(&tag, &group);
        let (script, stdin) = self.wrapped(&script, run_as, &[], false);
        tracing::debug!(host = %self.host, to = %to.name, probes = probes.len(), "exec delegated probes");
        if to.same_host {
            self.ctx.events.round_trip(&self.host);
        }
        let out = to.conn.exec(&script, Some(&stdin)).await?;
        let results = probe::parse_batch(&tag, members.len(), &out.stdout).map_err(|e| ItemError::Task(become_failure(run_as, &e.to_string(), out.exit_code, &out.stderr_str())))?;
        let mut by_index: Vec<Option<ProbeResult>> = vec![None; probes.len()];
        for (i, r) in probe::per_probe(&tag, members, results) {
            by_index[i] = Some(r);
        }
        by_index.into_iter().map(|r| r.ok_or_else(|| ItemError::Task("a delegated probe gave no answer".into()))).collect()
    }

    /// The controller's transport (delegated tasks).
    fn local_conn(&mut self) -> Arc<dyn Transport> {
        self.local.get_or_insert_with(|| Arc::new(crate::connection::local::LocalTransport::new())).clone()
    }

    /// The user the item running now logs in as: the host's, or its delegate's.
    fn login(&self) -> &str {
        self.delegate.as_ref().map_or(self.login_user.as_str(), |d| d.login.as_str())
    }

    /// Where this task runs, when it is delegated: the controller (`localhost`, `127.0.0.1`,
    /// `::1`, or an inventory host whose `ansible_connection` is `local`), or another host over
    /// SSH (see [`super::delegate`]). Delegating to the host itself is no delegation.
    async fn delegation(&mut self, task: &Task, vars: &Vars) -> Result<Option<super::delegate::Delegate>, ItemError> {
        let ctx = self.ctx.clone();
        let remote_user = task.remote_user.as_deref().or(ctx.play().remote_user.as_deref());
        let keyword = |h: &str| super::keyword_user(remote_user, h, &ctx.inventory, &self.templar, vars).map_err(|e| ItemError::Task(format!("{}: {e}", task.location)));
        let to = match &task.delegate_to {
            None => None,
            Some(raw) => {
                let to = self.templar.render_str(raw, vars).map_err(|e| ItemError::Task(format!("{}: delegate_to: {e}", task.location)))?;
                Some(to.trim().to_string()).filter(|to| *to != self.host)
            }
        };
        let Some(to) = to else {
            // On the host itself, as another user than the play's (`remote_user`)?
            let user = if task.remote_user.is_some() { keyword(&self.host)? } else { return Ok(None) };
            if user == self.keyword_user {
                return Ok(None);
            }
            let d = ctx.delegates.get(&self.host, user.as_deref(), &ctx.inventory, &ctx.templar, &ctx.opts).await.map_err(ItemError::Unreachable)?;
            return Ok(Some(super::delegate::Delegate { same_host: true, ..d }));
        };
        if to.is_empty() {
            return Err(ItemError::Task(format!("{}: delegate_to: empty host name", task.location)));
        }
        if matches!(to.as_str(), "localhost" | "127.0.0.1" | "::1") || ctx.inventory.host_vars(&to).get("ansible_connection").and_then(|c| c.as_str()) == Some("local") {
            return Ok(Some(super::delegate::Delegate { name: to, conn: self.local_conn(), login: local_user().to_string(), controller: true, same_host: false, become_password: None }));
        }
        let user = keyword(&to)?;
        ctx.delegates.get(&to, user.as_deref(), &ctx.inventory, &ctx.templar, &ctx.opts).await.map(Some).map_err(ItemError::Unreachable)
    }

    /// Probes of the next tasks that can be prepared now, as (task index, user, probe)
    /// (errors ignored: they're reported when the task runs), and the prepared tasks
    /// themselves for reuse.
    #[allow(clippy::type_complexity)]
    fn lookahead(&self, index: usize) -> (Vec<(usize, String, Probe)>, Vec<((usize, usize), Box<dyn ModuleTask>)>) {
        let play = self.ctx.play();
        let mut out = Vec::new();
        let mut prepared = Vec::new();
        for (j, task) in play.tasks.iter().enumerate().skip(index + 1).take(LOOKAHEAD) {
            if !self.selected(task) || modules::lookup(&task.module).is_none() {
                continue;
            }
            if task.run_once && self.ctx.play_hosts.first() != Some(&self.host) {
                continue;
            }
            // Rescue sections run only after a failure; delegated tasks probe elsewhere, and
            // tasks with their own `remote_user` over their own connection.
            if task.in_rescue() || task.delegate_to.is_some() || task.remote_user.is_some() {
                continue;
            }
            let vars = self.task_vars(task);
            let Ok(run_as) = self.run_as(task, &vars) else { continue };
            let per_item: Vec<Vars> = match &task.loop_items {
                None => vec![vars],
                Some(src) => match self.render_loop(task, src, &vars) {
                    Ok(Value::Array(items)) => {
                        let lv = task.loop_control.loop_var.clone().unwrap_or_else(|| "item".into());
                        let total = items.len();
                        (0..total).map(|i| item_vars(task, &vars, &lv, i, &items)).collect()
                    }
                    _ => continue,
                },
            };
            for (k, v) in per_item.into_iter().enumerate() {
                let strict = match self.eval_when(task, &v) {
                    Ok(false) => continue,
                    Ok(true) => self.prepare(task, &v, &run_as),
                    Err(e) => Err(e),
                };
                let Ok(env) = self.task_env(task, &v) else { continue };
                match strict {
                    Ok(t) => {
                        for p in with_env(t.probes(), &env) {
                            out.push((j, run_as.clone(), p));
                        }
                        prepared.push(((j, k), t));
                    }
                    // Most often the task uses a value an earlier task registers (a generated
                    // secret's content, `unit.changed`). Its probes rarely depend on that value
                    // (a template's probe reads `dest`, not the content), so guess them with
                    // undefined names rendered as nothing. Probes only read, and the task is
                    // prepared again for real when it runs: a wrong guess costs one more
                    // round trip, never a wrong change.
                    Err(e) => match self.prepare_with(&self.templar.lenient(), task, &v, &run_as) {
                        Ok(t) => {
                            tracing::debug!(host = %self.host, task = %task.display_name(), "probed ahead by guess: {e}");
                            for p in with_env(t.probes(), &env) {
                                out.push((j, run_as.clone(), p));
                            }
                        }
                        Err(e) => tracing::debug!(host = %self.host, task = %task.display_name(), "not probed ahead: {e}"),
                    },
                }
            }
        }
        (out, prepared)
    }

    fn invalidate(&mut self, touched: &Scope) {
        let stale = &mut self.stale;
        self.probe_cache.retain(|k, c| {
            let keep = !touched.overlaps(&c.reads);
            if !keep {
                stale.insert(k.clone());
            }
            keep
        });
    }

    /// One item: when, prepare, probe, plan, (apply), register; again while `until` says so.
    async fn run_item(&mut self, task: &Task, vars: &Vars, index: usize, item: usize, key: SlotKey) -> ItemOutcome {
        match self.eval_when(task, vars) {
            Ok(true) => {}
            Ok(false) => return skipped_outcome("Conditional result was False"),
            Err(e) => return self.input_error(task, e),
        }
        let Some(retry) = &task.retry else {
            return self.attempt(task, vars, index, item).await;
        };
        let (retries, delay) = match (self.retry_number(retry.retries.as_ref(), vars, 3, "retries"), self.retry_number(retry.delay.as_ref(), vars, 5, "delay")) {
            (Ok(r), Ok(d)) => (r, d),
            (Err(e), _) | (_, Err(e)) => return self.task_error(task, format!("{}: {e}", task.location)),
        };
        // Ansible: the first attempt and `retries` more.
        let attempts = retries.max(1) + 1;
        let mut n = 1;
        loop {
            let mut out = self.attempt(task, vars, index, item).await;
            if let Value::Object(r) = &mut out.registered {
                r.insert("attempts".into(), json!(n));
            }
            // Nothing to wait for: the host is gone, or the task didn't run (`when`, check mode).
            if matches!(out.status, Status::Unreachable | Status::Skipped) {
                return out;
            }
            let met = match &retry.until {
                None => Ok(out.status != Status::Failed),
                Some(conds) => {
                    let reg = out.registered.as_object().cloned().unwrap_or_default();
                    self.eval_conditions(conds, &result_vars(task, vars, &reg), "until", task)
                }
            };
            match met {
                Ok(true) => return out,
                Err(e) => return self.task_error(task, e),
                // Check mode, after a change not made: what it waits for may never come.
                Ok(false) if self.unpredictable(task) => return self.task_error(task, "the until condition is false".into()),
                Ok(false) if n >= attempts => {
                    if out.status != Status::Failed {
                        let msg = format!("the until condition was still false after {n} attempts");
                        if let Value::Object(r) = &mut out.registered {
                            r.insert("failed".into(), json!(true));
                            r.insert("msg".into(), json!(msg));
                        }
                        out.status = Status::Failed;
                        out.msg = Some(msg);
                        out.facts = Map::new();
                        out.ignored = task.ignore_errors;
                    }
                    return out;
                }
                Ok(false) => {}
            }
            self.ctx.events.emit(Event::Retry { play: self.ctx.play_idx, key, host: self.host.clone(), task: self.task_title(task), retries_left: (attempts - n) as u32 });
            tokio::time::sleep(std::time::Duration::from_secs(delay)).await;
            // What the task reads on the host is read again.
            self.probe_cache.clear();
            n += 1;
        }
    }

    /// `retries` / `delay`: a number, or a template giving one.
    fn retry_number(&self, v: Option<&Value>, vars: &Vars, default: u64, what: &str) -> Result<u64, String> {
        let Some(v) = v else { return Ok(default) };
        let v = self.templar.render_value(v, vars).map_err(|e| format!("{what}: {e}"))?;
        match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("{what}: expected a whole number of {}, got {v}", if what == "retries" { "retries" } else { "seconds" }))
    }

    /// One attempt of one item: prepare, probe, plan, (apply), register.
    async fn attempt(&mut self, task: &Task, vars: &Vars, index: usize, item: usize) -> ItemOutcome {
        match self.run_item_inner(task, vars, index, item).await {
            Ok(o) if o.status == Status::Failed && self.unpredictable(task) => self.task_error(task, o.msg.unwrap_or_default()),
            Ok(o) => o,
            Err(ItemError::Unreachable(e)) => unreachable_outcome(e, task.ignore_unreachable),
            Err(ItemError::Task(e)) => self.task_error(task, e),
            Err(ItemError::Input(e)) => self.input_error(task, e),
        }
    }

    /// Does `task` read a variable that check mode could only guess ([`Self::uncertain`])?
    fn mentions_uncertain(&self, task: &Task) -> bool {
        if self.uncertain.is_empty() {
            return false;
        }
        let text = format!("{} {:?} {:?} {:?} {:?}", task.args, task.when, task.loop_items, task.changed_when, task.failed_when);
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        self.uncertain.iter().any(|name| {
            text.match_indices(name.as_str()).any(|(i, _)| {
                !text[..i].chars().next_back().is_some_and(word) && !text[i + name.len()..].chars().next().is_some_and(word)
            })
        })
    }

    /// Check mode, after a predicted change: is a failure of `task` maybe only a consequence
    /// of changes not made? Not for a module that only looks at variables (an `assert` of a
    /// version given with -e), unless it reads a guessed one: that fails as it would for real.
    fn unpredictable(&self, task: &Task) -> bool {
        let check = task.check_mode.unwrap_or(self.ctx.opts.check);
        check && self.predicted_change && (!reads_only_vars(task) || self.mentions_uncertain(task))
    }

    /// Where a task's actions run: the delegate's connection, or the host's (a round trip).
    fn action_conn(&self) -> Arc<dyn Transport> {
        match &self.delegate {
            Some(d) if !d.same_host => d.conn.clone(),
            Some(d) => {
                self.ctx.events.round_trip(&self.host);
                d.conn.clone()
            }
            None => {
                self.ctx.events.round_trip(&self.host);
                self.conn.clone()
            }
        }
    }

    /// Whether the item running now changes the host itself (not delegated elsewhere): its
    /// changes make the host's cached probes stale.
    fn on_host(&self) -> bool {
        self.delegate.as_ref().is_none_or(|d| d.same_host)
    }

    /// `async` with `poll: 0`: start the task's command as a background job on the host (or
    /// record the result of a task that had nothing to run), and register the job's id for
    /// `async_status` (see `modules::async_status`). The job may change anything on the host
    /// at any time from now: every cached probe is dropped.
    async fn start_job(&mut self, task: &Task, plan: &mut Plan, mtask: &dyn ModuleTask, env: &str, run_as: &str, limit: u64) -> Result<(), ItemError> {
        let jid = async_status::new_jid();
        let script = if plan.actions.is_empty() {
            let mut result = plan.result.clone();
            result.insert("changed".into(), json!(plan.changed()));
            if let Some(m) = &plan.msg {
                result.entry("msg").or_insert(json!(m));
            }
            async_status::finished_script(&jid, &result)
        } else {
            let spec = mtask.background_spec().filter(|_| plan.actions.len() == 1).ok_or_else(|| {
                ItemError::Task(format!("{}: async with poll: 0 starts command and shell tasks in the background; {} can only run with a poll interval above 0", task.location, task.module))
            })?;
            let action = &plan.actions[0];
            async_status::launch_script(&jid, limit, &format!("{env}{}", action.script), &spec, action.stdin.is_some())
        };
        let stdin = plan.actions.first().and_then(|a| a.stdin.clone()).unwrap_or_default();
        let (script, stdin) = self.wrapped(&script, run_as, &stdin, true);
        let conn = self.action_conn();
        tracing::debug!(host = %self.host, jid = %jid, "start async job");
        let out = conn.exec(&script, Some(&stdin)).await;
        if self.on_host() {
            self.invalidate(&Scope::Host);
        }
        let out = out?;
        if out.exit_code != 0 {
            return Err(ItemError::Task(format!("could not start the async job (exit {}): {}", out.exit_code, out.stderr_str().trim())));
        }
        plan.result = async_status::started_result(&jid, out.stdout_str().trim());
        plan.msg = None;
        plan.changed = Some(true);
        Ok(())
    }

    /// Wait until the host answers `wait.test` again (see [`modules::Wait`]), logging in again
    /// after a failed or silent try; the error says what timed out and the last failure.
    async fn wait_for_host(&mut self, wait: &modules::Wait, run_as: &str, started: std::time::Instant) -> Result<(), String> {
        tokio::time::sleep(wait.delay).await;
        let deadline = started + wait.delay + wait.timeout;
        let (script, stdin) = self.wrapped(&wait.test, run_as, &[], false);
        let per_try = wait.connect_timeout.unwrap_or(std::time::Duration::from_secs(10));
        let mut redial = false;
        let mut last: String;
        loop {
            let conn = self.action_conn();
            let tried = if redial { conn.reconnect(wait.connect_timeout).await.map_err(|e| e.to_string()) } else { Ok(()) };
            match tried {
                Err(e) => last = e,
                Ok(()) => match tokio::time::timeout(per_try, conn.exec(&script, Some(&stdin))).await {
                    Ok(Ok(out)) if out.exit_code == 0 => return Ok(()),
                    Ok(Ok(out)) => {
                        redial = false;
                        let err = out.stderr_str();
                        let detail = if err.trim().is_empty() { out.stdout_str() } else { err };
                        last = format!("exit {}: {}", out.exit_code, detail.trim());
                    }
                    Ok(Err(e)) => {
                        redial = true;
                        last = e.to_string();
                    }
                    Err(_) => {
                        redial = true;
                        last = format!("no answer within {}s", per_try.as_secs());
                    }
                },
            }
            tracing::debug!(host = %self.host, what = %wait.what, error = %last, "waiting");
            if std::time::Instant::now() + wait.sleep >= deadline {
                return Err(format!("timed out waiting for {} (timeout={}): {last}", wait.what, wait.timeout.as_secs()));
            }
            tokio::time::sleep(wait.sleep).await;
        }
    }

    fn task_error(&self, task: &Task, e: String) -> ItemOutcome {
        self.failure(task, e, self.unpredictable(task))
    }

    /// [`Self::task_error`] for an error in the task's own input ([`ItemError::Input`]): in
    /// check mode it is put down to earlier changes not made only when the task reads a value
    /// check mode could only guess.
    fn input_error(&self, task: &Task, e: String) -> ItemOutcome {
        let check = task.check_mode.unwrap_or(self.ctx.opts.check);
        self.failure(task, e, check && self.predicted_change && self.mentions_uncertain(task))
    }

    /// The task failed with `e`, unless check mode can't tell (`unpredictable`).
    fn failure(&self, task: &Task, e: String, unpredictable: bool) -> ItemOutcome {
        if unpredictable {
            // In check mode, an error after a predicted change is most likely a consequence of
            // that change not having been made (a package not installed, a user not created).
            return ItemOutcome {
                msg: Some(format!("cannot predict in check mode: depends on earlier tasks not run or changes not made ({e})")),
                ..skipped_outcome("")
            };
        }
        let mut o = failed_outcome(e);
        o.ignored = task.ignore_errors;
        o
    }

    async fn run_item_inner(&mut self, task: &Task, vars: &Vars, index: usize, item: usize) -> Result<ItemOutcome, ItemError> {
        self.delegate = self.delegation(task, vars).await?;
        let delegate = self.delegate.as_ref().filter(|d| !d.same_host).map(|d| d.name.clone());
        let out = self.run_item_here(task, vars, index, item).await;
        self.delegate = None;
        out.map(|o| ItemOutcome { delegate, ..o })
    }

    /// [`Self::run_item_inner`] on the host, or where it is delegated: on the controller it
    /// runs as the user running provision, or its `become_user` if the task itself says
    /// `become: true`; on another host, as the login there or the task's become user. A
    /// delegated task's probes are its own and its changes leave the host's probe cache be
    /// (unless it is the host itself, logged in to as the task's `remote_user`).
    async fn run_item_here(&mut self, task: &Task, vars: &Vars, index: usize, item: usize) -> Result<ItemOutcome, ItemError> {
        let delegated = self.delegate.is_some();
        let run_as = if self.delegate.as_ref().is_some_and(|d| d.controller) && task.r#become != Some(true) { local_user().to_string() } else { self.run_as(task, vars).map_err(ItemError::Task)? };
        // Reuse the task prepared during lookahead when no variable changed since.
        let mut mtask = match self.prepared.remove(&(index, item)) {
            Some((generation, t)) if generation == self.generation => t,
            _ => self.prepare(task, vars, &run_as).map_err(ItemError::Input)?,
        };
        let env = self.task_env(task, vars).map_err(ItemError::Input)?;
        let probes = with_env(mtask.probes(), &env);
        let results = if probes.is_empty() { vec![] } else { self.probe(&probes, &run_as, index).await? };
        let mut plan: Plan = mtask.plan(&results).map_err(|e| ItemError::Task(format!("{}: {e}", task.location)))?;
        let check = task.check_mode.unwrap_or(self.ctx.opts.check);
        // Packages of later tasks join this task's transaction (see `packages`).
        if !check && !delegated && plan.failed.is_none() && plan.skipped.is_none() && !plan.actions.is_empty() {
            if let Some((merged, absorbed)) = self.merge_package_tasks(task, vars, index, &run_as).await {
                let results = self.probe(&merged.probes(), &run_as, index).await?;
                let merged_plan = merged.plan(&results).map_err(|e| ItemError::Task(format!("{}: {e}", task.location)))?;
                if merged_plan.failed.is_none() {
                    for (j, p) in absorbed {
                        self.absorbed.insert(j, packages::Absorbed { by: task.display_name(), diffs: p.diffs });
                    }
                    mtask = merged;
                    plan = merged_plan;
                }
            }
        }
        // This task's packages were installed by an earlier task's transaction.
        let absorbed = if plan.actions.is_empty() && plan.failed.is_none() { self.absorbed.remove(&index) } else { None };
        let mut skipped_reason = plan.skipped.clone();
        let mut action_summaries: Vec<String> = plan.actions.iter().map(|a| a.summary.clone()).collect();
        let runs = plan.failed.is_none() && skipped_reason.is_none();
        let mut nothing_done = false;
        // `async`: the seconds the task's actions may take (0: no limit).
        let limit = match &task.async_limit {
            Some(v) if !check && (task.background || (runs && !plan.actions.is_empty())) => self.retry_number(Some(v), vars, 0, "async").map_err(|e| ItemError::Task(format!("{}: {e}", task.location)))?,
            _ => 0,
        };
        if runs && task.background && limit > 0 {
            // `poll: 0`: the task starts a job on the host and goes on.
            self.start_job(task, &mut plan, mtask.as_ref(), &env, &run_as, limit).await?;
            action_summaries = plan.actions.iter().map(|a| format!("{} (async job {})", a.summary, plan.result["ansible_job_id"].as_str().unwrap_or(""))).collect();
        } else if runs && !plan.actions.is_empty() {
            if check {
                if mtask.check_support() == CheckSupport::SkipIfActions {
                    skipped_reason = Some(mtask.check_skip_reason().into());
                    action_summaries.clear();
                    // Later tasks may depend on what it would have done or registered.
                    self.predicted_change = true;
                }
            } else {
                let mut outputs: Vec<ExecOutput> = Vec::new();
                let mut failure = None;
                let mut timed_out = None;
                let mut elapsed = None;
                for action in &plan.actions {
                    let started = std::time::Instant::now();
                    let out = if action.script.is_empty() && action.wait.is_some() {
                        ExecOutput::default()
                    } else {
                        let script = format!("{env}{}", action.script);
                        // `async`: the action stops at the time limit (TERM, then KILL 5 s later).
                        let script = if limit > 0 { format!("timeout -k 5 {limit} sh -c {}", modules::sh_quote(&script)) } else { script };
                        let (script, stdin) = self.wrapped(&script, &run_as, action.stdin.as_deref().unwrap_or(&[]), true);
                        let conn = self.action_conn();
                        tracing::debug!(host = %self.host, action = %action.summary, delegated = delegated, "exec action");
                        let out = conn.exec(&script, Some(&stdin)).await;
                        if self.on_host() {
                            self.invalidate(&action.touches);
                        }
                        let out = match out {
                            // The host going down under its own reboot command.
                            Err(crate::connection::ConnectionError::Lost { .. }) if action.wait.is_some() => ExecOutput::default(),
                            out => out?,
                        };
                        // sudo itself refused (no or a wrong password): the action never ran.
                        if self.sudo_refused(&run_as, &out) {
                            return Err(ItemError::Task(become_failure(&run_as, "", out.exit_code, &out.stderr_str())));
                        }
                        out
                    };
                    if let (Some(wait), 0) = (&action.wait, out.exit_code) {
                        if let Err(e) = self.wait_for_host(wait, &run_as, started).await {
                            failure = Some(e);
                        }
                        elapsed = Some(started.elapsed().as_secs());
                        if failure.is_some() {
                            outputs.push(out);
                            break;
                        }
                    }
                    if limit > 0 && (out.exit_code == 124 || out.exit_code == 137) {
                        timed_out = Some(format!("async task did not complete within the requested time - {limit}s"));
                        outputs.push(out);
                        break;
                    }
                    let mut bad = out.exit_code != 0 && !action.may_fail;
                    if let (Some(path), false) = (&action.download, bad) {
                        if let Err(e) = write_controller_file(path, &out.stdout) {
                            failure = Some(format!("{}: writing {} on the controller: {e}", action.summary, path.display()));
                            bad = true;
                        }
                    }
                    if bad && failure.is_none() {
                        let err = out.stderr_str();
                        let detail = if err.trim().is_empty() { out.stdout_str() } else { err };
                        failure = Some(format!("{} failed (exit {}): {}", action.summary, out.exit_code, detail.trim()));
                    }
                    outputs.push(out);
                    if bad {
                        // Its first action failed: nothing was changed (Ansible's result of a
                        // write that couldn't be made says `changed: false`).
                        nothing_done = outputs.len() == 1;
                        break;
                    }
                }
                // Anything probed as this user may be stale after a command.
                plan = mtask.finish(plan, &outputs).map_err(|e| ItemError::Task(format!("{}: {e}", task.location)))?;
                if let Some(secs) = elapsed {
                    plan.result.insert("elapsed".into(), json!(secs));
                }
                if let Some(f) = failure {
                    plan.failed.get_or_insert(f);
                }
                if timed_out.is_some() {
                    plan.failed = timed_out;
                }
            }
        }
        if let Some(v) = plan.result.remove("_verbosity") {
            if v.as_u64().unwrap_or(0) > self.ctx.opts.verbosity as u64 {
                skipped_reason = Some("verbosity threshold not met".into());
                plan.msg = None;
            }
        }
        let skipped = skipped_reason.is_some();
        let mut changed = !skipped && plan.changed() && !nothing_done;
        if let Some(a) = absorbed {
            if !skipped {
                changed = true;
                plan.diffs = a.diffs;
                action_summaries.push(format!("installed in the package transaction of '{}'", a.by));
            }
        }
        let mut failed = plan.failed.is_some();
        // Registered result.
        let mut reg = plan.result.clone();
        reg.insert("changed".into(), json!(changed));
        reg.insert("failed".into(), json!(failed));
        if skipped {
            reg.insert("skipped".into(), json!(true));
            reg.insert("skip_reason".into(), json!(skipped_reason));
        }
        if let Some(m) = plan.msg.clone().or(plan.failed.clone()) {
            reg.entry("msg").or_insert(json!(m));
        }
        if !plan.diffs.is_empty() {
            reg.insert("diff".into(), json!(plan.diffs.iter().map(|d| serde_json::to_value(DiffOut::from(d)).unwrap_or(Value::Null)).collect::<Vec<_>>()));
        }
        if !plan.facts.is_empty() {
            // As Ansible registers them: the facts by name (not the namespace they join).
            let facts = plan.facts.iter().filter(|(k, _)| *k != "ansible_facts").map(|(k, v)| (k.clone(), v.clone())).collect();
            reg.insert("ansible_facts".into(), Value::Object(facts));
        }
        // changed_when / failed_when see the result under the register name.
        if (task.changed_when.is_some() || task.failed_when.is_some()) && !skipped {
            let cvars = result_vars(task, vars, &reg);
            if let Some(cw) = &task.changed_when {
                changed = self.eval_conditions(cw, &cvars, "changed_when", task).map_err(ItemError::Task)?;
                reg.insert("changed".into(), json!(changed));
            }
            if let Some(fw) = &task.failed_when {
                failed = self.eval_conditions(fw, &cvars, "failed_when", task).map_err(ItemError::Task)?;
                reg.insert("failed".into(), json!(failed));
                if !failed {
                    plan.failed = None;
                } else if plan.failed.is_none() {
                    plan.failed = Some("failed_when condition was true".into());
                }
            }
        }
        let secrets: Vec<String> = if modules::lookup(&task.module).is_some_and(|m| m.name() == "secret") {
            reg.get("secret").and_then(Value::as_str).map(|s| vec![s.to_string()]).unwrap_or_default()
        } else {
            vec![]
        };
        let status = if failed {
            Status::Failed
        } else if skipped {
            Status::Skipped
        } else if changed {
            Status::Changed
        } else {
            Status::Ok
        };
        let msg = if failed { plan.failed.clone() } else if skipped { skipped_reason.clone() } else { plan.msg.clone() };
        let facts = if failed { Map::new() } else { plan.facts.clone() };
        Ok(ItemOutcome {
            status,
            msg,
            diffs: plan.diffs,
            actions: action_summaries,
            registered: Value::Object(reg),
            facts,
            ignored: failed && task.ignore_errors,
            secrets,
            delegate: None,
        })
    }
}

enum TaskEnd {
    Continue,
    Failed,
    Unreachable,
}

/// A host the task could not reach; `ignored` under `ignore_unreachable`. Registers what
/// Ansible's unreachable result holds (`result is unreachable`).
fn unreachable_outcome(msg: String, ignored: bool) -> ItemOutcome {
    ItemOutcome {
        status: Status::Unreachable,
        registered: json!({"unreachable": true, "changed": false, "msg": msg}),
        msg: Some(msg),
        ignored,
        ..failed_outcome(String::new())
    }
}

fn failed_outcome(msg: String) -> ItemOutcome {
    ItemOutcome {
        status: Status::Failed,
        registered: json!({"failed": true, "changed": false, "msg": msg}),
        msg: Some(msg),
        diffs: vec![],
        actions: vec![],
        facts: Map::new(),
        ignored: false,
        secrets: vec![],
        delegate: None,
    }
}

fn skipped_outcome(reason: &str) -> ItemOutcome {
    ItemOutcome {
        status: Status::Skipped,
        msg: if reason.is_empty() { None } else { Some(reason.to_string()) },
        diffs: vec![],
        actions: vec![],
        registered: json!({"skipped": true, "changed": false, "failed": false, "skip_reason": reason}),
        facts: Map::new(),
        ignored: false,
        secrets: vec![],
        delegate: None,
    }
}

/// Variables of one loop item.
fn item_vars(task: &Task, vars: &Vars, loop_var: &str, idx: usize, items: &[Value]) -> Vars {
    let total = items.len();
    let mut ivars = vars.clone();
    ivars.insert(loop_var.to_string(), items[idx].clone());
    if let Some(iv) = &task.loop_control.index_var {
        ivars.insert(iv.clone(), json!(idx));
    }
    let mut lp = json!({"index": idx + 1, "index0": idx, "first": idx == 0, "last": idx + 1 == total, "length": total, "revindex": total - idx, "revindex0": total - idx - 1});
    if task.loop_control.extended {
        // `extended: true` adds the neighbours and the whole list, as in Ansible.
        if idx > 0 {
            lp["previtem"] = items[idx - 1].clone();
        }
        if idx + 1 < total {
            lp["nextitem"] = items[idx + 1].clone();
        }
        lp["allitems"] = Value::Array(items.to_vec());
    }
    ivars.insert("ansible_loop".into(), lp);
    ivars
}

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!("{}...", &s[..s.char_indices().take(117).last().map(|(i, _)| i).unwrap_or(0)])
    } else {
        s
    }
}

/// Write `data` to the controller file `path` (an action's `download`): into a temporary file
/// beside it, then renamed over it, so a reader never sees half a file; its folders created.
fn write_controller_file(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    // NamedTempFile is 0600; a fetched file gets the usual mode of new files (umask 022).
    tmp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The user running provision (delegated tasks run as it).
fn local_user() -> &'static str {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|u| !u.is_empty())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into())
    })
}

/// A module that looks only at variables, never at the host.
fn reads_only_vars(task: &Task) -> bool {
    modules::lookup(&task.module).is_some_and(|m| matches!(m.name(), "assert" | "fail" | "debug" | "set_fact" | "include_vars"))
}

/// Text with the body of every PEM private key (`-----BEGIN ... PRIVATE KEY-----`, OpenSSH's
/// too) replaced by [`REDACTED`]: a key placed with `copy` must not show in `--diff` or `-vv`,
/// whatever variable (or none) it came from. The armour lines stay, so a diff still says a
/// key changed.
fn hide_private_keys(s: &str) -> String {
    if !s.contains("PRIVATE KEY-----") {
        return s.to_string();
    }
    static PEM: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = PEM.get_or_init(|| {
        regex::Regex::new(r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)[^-]*(-----END [A-Z0-9 ]*PRIVATE KEY-----)").expect("valid regex")
    });
    re.replace_all(s, format!("${{1}}\n{REDACTED}\n${{2}}").as_str()).into_owned()
}

/// Why a become user's probes gave nothing: no such user (runuser's or sudo's words, which
/// share stderr with the other users' parts of the batch), else what the host said.
fn become_failure(user: &str, framing: &str, exit_code: i32, stderr: &str) -> String {
    let about_user = |l: &&str| l.contains(&format!("user {user} ")) || l.ends_with(&format!("user {user}")) || l.contains(&format!("'{user}'"));
    let mine: Vec<&str> = stderr.lines().filter(about_user).collect();
    if mine.iter().any(|l| l.contains("does not exist") || l.contains("unknown user")) {
        return format!("cannot become '{user}': no such user on the host");
    }
    if stderr.contains("a password is required") {
        return format!("cannot become '{user}': sudo asks for a password; give it with ansible_become_password (in a vaulted vars file, say) or --ask-become-pass");
    }
    if stderr.contains("incorrect password attempt") {
        return format!("cannot become '{user}': sudo refused the become password (incorrect password)");
    }
    let said = if mine.is_empty() { stderr.trim().lines().collect::<Vec<_>>().join("; ") } else { mine.join("; ") };
    format!("cannot run the probes as '{user}' (exit {exit_code}): {}", if said.is_empty() { framing.to_string() } else { said })
}

#[cfg(test)]
mod tests {
    use super::become_failure;

    #[test]
    fn private_keys_never_show() {
        let key = "a\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\nz\n";
        assert_eq!(super::hide_private_keys(key), format!("a\n-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\nz\n", super::REDACTED));
        let two = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n-----BEGIN RSA PRIVATE KEY-----\nMIIC+/=\n-----END RSA PRIVATE KEY-----\n";
        let hidden = super::hide_private_keys(two);
        assert!(!hidden.contains("MIIE") && !hidden.contains("MIIC"), "{hidden}");
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(super::hide_private_keys(cert), cert, "certificates are public");
    }

    #[test]
    fn a_missing_become_user_is_named_once() {
        // two users' parts in one batch share stderr: each names only its own problem
        let stderr = "runuser: user devartis does not exist or the user entry does not contain all the required fields\nrunuser: user postgres does not exist or the user entry does not contain all the required fields\n";
        assert_eq!(become_failure("postgres", "batch did not start", 1, stderr), "cannot become 'postgres': no such user on the host");
        assert_eq!(become_failure("devartis", "batch did not start", 1, stderr), "cannot become 'devartis': no such user on the host");
        assert_eq!(become_failure("app", "x", 1, "sudo: unknown user app\nsudo: error initializing audit plugin sudoers_audit\n"), "cannot become 'app': no such user on the host");
        // sudo's password: how to give one, or that it was wrong
        assert_eq!(
            become_failure("app", "batch did not start", 1, "sudo: a password is required\n"),
            "cannot become 'app': sudo asks for a password; give it with ansible_become_password (in a vaulted vars file, say) or --ask-become-pass"
        );
        assert_eq!(
            become_failure("root", "batch did not start", 1, "Sorry, try again.\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n"),
            "cannot become 'root': sudo refused the become password (incorrect password)"
        );
        // anything else: what the host said
        assert_eq!(become_failure("app", "batch did not start", 1, "sudo: sorry, you must have a tty\n"), "cannot run the probes as 'app' (exit 1): sudo: sorry, you must have a tty");
        assert_eq!(become_failure("app", "batch did not start", 137, ""), "cannot run the probes as 'app' (exit 137): batch did not start");
    }
}
