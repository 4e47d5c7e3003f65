//! Modules decide; the executor talks to hosts.
//!
//! A module turns rendered task arguments into a [`ModuleTask`]: read-only [`Probe`]s (shell
//! snippets the executor batches with other tasks' probes into one round trip), then a pure
//! [`ModuleTask::plan`] from probe output to a [`Plan`] (actions + diffs). `changed` is "the plan
//! has actions"; check mode stops after `plan`, so no module ever looks at a check-mode flag.

use crate::template::{Templar, Vars};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// `impl Module for $ty` named `$name`, accepting the calling file's `PARAMS` and preparing with
/// its `build(args)`: the shape most modules share.
macro_rules! module_impl {
    ($ty:ident, $name:literal) => {
        impl $crate::modules::Module for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn params(&self) -> &'static [&'static str] {
                PARAMS
            }
            fn prepare(
                &self,
                args: &serde_json::Map<String, serde_json::Value>,
                _ctx: &$crate::modules::PrepareContext,
            ) -> Result<Box<dyn $crate::modules::ModuleTask>, $crate::modules::ModuleError> {
                Ok(Box::new(build(args)?))
            }
        }
    };
}

pub mod args;
pub mod common;
#[cfg(test)]
pub(crate) mod testutil;
pub mod fail;
pub mod assert;
pub mod set_fact;
pub mod debug;
pub mod slurp;
pub mod stat;
pub mod template;
pub mod command;
pub mod copy;
pub mod file;
pub mod get_url;
pub mod git;
pub mod pip;
pub mod postgresql;
pub mod port_redirect;
pub mod secret;
pub mod ufw;
pub mod unarchive;
pub mod apt;
pub mod service;
pub mod user;
pub mod group;
pub mod lineinfile;
pub mod replace;
pub mod blockinfile;
pub mod deb822_repository;
pub mod apt_repository;
pub mod apt_key;
pub mod cron;
pub mod sysctl;
pub mod hostname;
pub mod include_vars;
pub mod wait_for;
pub mod django_manage;
pub mod uri;
pub mod authorized_key;
pub mod async_status;
pub mod setup;
pub mod fetch;
pub mod find;
pub mod timezone;
pub mod locale_gen;
pub mod script;
pub mod pause;
pub mod reboot;
pub mod wait_for_connection;
pub mod ping;
pub mod raw;
pub mod package;
pub mod known_hosts;
pub mod getent;
pub mod debconf;
pub mod package_facts;
pub mod service_facts;
pub mod ini_file;
pub mod mount;
pub mod tempfile;
pub mod assemble;

// One file per module; each is registered in `MODULES` below.

/// Read-only shell snippet. Runs under `sh` as the task's (become) user; must not change the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub script: String,
    /// What it reads, so the executor knows when an earlier action made it stale.
    pub reads: Scope,
    /// Probes of one batch with the same wrapper may be sent as one (see [`ProbeMerge`]).
    pub merge: Option<ProbeMerge>,
    /// Paths the script `stat`s through [`common::stat_lines`]: the executor may `stat` them
    /// all at once for the batch, and the script then finds its answer there instead of
    /// starting a `stat` of its own.
    pub stats: Vec<String>,
}

/// A probe made of a wrapper around a part (e.g. one `psql` session around a query): the
/// executor sends the probes of a batch that share a wrapper as one, the wrapper holding
/// every part, separated by lines the parts print (`separator`), and splits the output back.
/// When the separators don't all come back (the wrapper failed), every probe gets the whole
/// output. `script` is the wrapper holding this part alone.
#[derive(Debug, Clone)]
pub struct ProbeMerge {
    /// Contains [`MERGE_SLOT`] once.
    pub wrapper: String,
    pub part: String,
    /// The code, to place between two parts, that prints the given line.
    pub separator: fn(&str) -> String,
}

impl PartialEq for ProbeMerge {
    fn eq(&self, other: &Self) -> bool {
        self.wrapper == other.wrapper && self.part == other.part
    }
}
impl Eq for ProbeMerge {}

/// Where a [`ProbeMerge`] wrapper takes its part(s).
pub const MERGE_SLOT: &str = "@@PROVISION_MERGE_SLOT@@";

impl Probe {
    pub fn new(script: impl Into<String>, reads: Scope) -> Self {
        Probe { script: script.into(), reads, merge: None, stats: Vec::new() }
    }
    /// Declare a path the script `stat`s with [`common::stat_lines`].
    pub fn with_stat(mut self, path: impl Into<String>) -> Self {
        self.stats.push(path.into());
        self
    }
    /// A probe that can share its wrapper with other probes of the same batch.
    pub fn mergeable(wrapper: String, part: String, separator: fn(&str) -> String, reads: Scope) -> Self {
        Probe { script: wrapper.replacen(MERGE_SLOT, &part, 1), reads, merge: Some(ProbeMerge { wrapper, part, separator }), stats: Vec::new() }
    }
}

/// What a probe produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeResult {
    pub stdout: String,
    pub stderr: String,
    pub rc: i32,
}

/// Part of a host a probe reads or an action writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Files or trees (a path covers everything below it).
    Paths(Vec<String>),
    /// Anything (packages, services, users, databases ...): conservatively the whole host.
    Host,
    /// Nothing on the host (pure computation).
    Nothing,
}

impl Scope {
    pub fn path(p: impl Into<String>) -> Scope {
        Scope::Paths(vec![p.into()])
    }
    /// Could a write to `self` change what a read of `other` sees? Any write to a file may
    /// change what a read of any other path sees: one file may have several paths (a
    /// symbolic link to it or to a folder above it, `..`, a hard link), which only the host
    /// knows. So paths overlap whenever both sides name some.
    pub fn overlaps(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Nothing, _) | (_, Scope::Nothing) => false,
            (Scope::Paths(a), Scope::Paths(b)) => !a.is_empty() && !b.is_empty(),
            _ => true,
        }
    }
}

/// A mutating step. Runs under `sh` as the task's (become) user, with `stdin` fed if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Short human description ("create directory /x", "install nginx").
    pub summary: String,
    pub script: String,
    pub stdin: Option<Vec<u8>>,
    pub touches: Scope,
    /// When false (default) a non-zero exit fails the task with the action's stderr. When true
    /// the module's `finish` interprets the exit code (e.g. `command`).
    pub may_fail: bool,
    /// A controller file the executor writes the action's output to once it succeeded
    /// (`fetch`): atomically, creating its folders.
    pub download: Option<std::path::PathBuf>,
    /// After the action the host goes away and comes back (`reboot`), or the action is only
    /// this wait (an empty `script`: `wait_for_connection`): see [`Wait`].
    pub wait: Option<Wait>,
}

/// Waiting for a host to answer again. The executor runs `test` (as the task's user) every
/// `sleep` from `delay` after the action, logging in again whenever the connection fails or
/// a try takes longer than `connect_timeout`, until `test` exits 0; past `timeout` the task
/// fails with "timed out waiting for `what`" and the last error. A connection lost while
/// the action itself runs is expected (the host is going down) and not a failure. The
/// registered result gets `elapsed`: whole seconds from the action to the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub delay: std::time::Duration,
    pub sleep: std::time::Duration,
    pub timeout: std::time::Duration,
    /// Each try's limit, and the reconnection's (`None`: 10 s, and the host's own connect
    /// timeout to log in again).
    pub connect_timeout: Option<std::time::Duration>,
    pub test: String,
    pub what: String,
}

impl Action {
    pub fn new(summary: impl Into<String>, script: impl Into<String>, touches: Scope) -> Self {
        Action { summary: summary.into(), script: script.into(), stdin: None, touches, may_fail: false, download: None, wait: None }
    }
    pub fn then_wait(mut self, wait: Wait) -> Self {
        self.wait = Some(wait);
        self
    }
    pub fn download_to(mut self, path: std::path::PathBuf) -> Self {
        self.download = Some(path);
        self
    }
    pub fn with_stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }
    pub fn may_fail(mut self) -> Self {
        self.may_fail = true;
        self
    }
}

/// Before/after a person can read. Secret values must be redacted by the module itself
/// (use [`REDACTED`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diff {
    /// File contents (`before` None = file absent, `after` None = file removed).
    Text { path: String, before: Option<String>, after: Option<String> },
    /// An attribute: `owner`, `mode`, `state`, `version`, `rules` ...
    Field { name: String, before: String, after: String },
}

pub const REDACTED: &str = "********";

/// What a task will do (before applying) and did (after `finish`).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Empty = nothing to change ("ok").
    pub actions: Vec<Action>,
    pub diffs: Vec<Diff>,
    /// Extra fields of the registered result (`stat`, `content`, `rc`, `stdout`, `msg`...).
    pub result: Map<String, Value>,
    /// Facts to set on the host (`set_fact`; `ansible_facts` of a module).
    pub facts: Map<String, Value>,
    /// Message to show (`debug`, `fail`, `assert`).
    pub msg: Option<String>,
    /// The task failed (`fail`, `assert`, a command that exited non-zero...), with this message.
    pub failed: Option<String>,
    /// Override of "changed = has actions" (e.g. `command` is changed when it ran).
    pub changed: Option<bool>,
    /// Skip with this reason (e.g. `command` in check mode, `creates` satisfied is ok not skip).
    pub skipped: Option<String>,
}

impl Plan {
    pub fn ok() -> Plan {
        Plan::default()
    }
    pub fn changed(&self) -> bool {
        self.changed.unwrap_or(!self.actions.is_empty())
    }
}

/// How a module behaves in check mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckSupport {
    /// Plan is exact; check mode reports it and stops.
    Full,
    /// The module cannot predict its effect (arbitrary commands): in check mode, if the plan
    /// has actions, the task is reported as skipped (Ansible's behaviour for command/shell).
    SkipIfActions,
}

/// Output of one executed action.
pub use crate::connection::ExecOutput as ActionOutput;

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// Bad arguments: reported with the task's location.
    #[error("{0}")]
    Args(String),
    /// Local file needed by the task (copy src, template) missing or unreadable.
    #[error("{0}")]
    LocalFile(String),
    /// Template rendering failed.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// Probe output could not be understood.
    #[error("unexpected probe output: {0}")]
    Probe(String),
    /// The task failed on the host.
    #[error("{0}")]
    Failed(String),
}

/// What a module can see while preparing a task (all local; no host access).
pub struct PrepareContext<'a> {
    pub templar: &'a Templar,
    /// The task's variables (raw; the templar resolves them lazily).
    pub vars: &'a Vars,
    pub host: &'a str,
    /// The role the task comes from (for `files/` and `templates/` lookups).
    pub role_path: Option<&'a Path>,
    /// Directory of the playbook.
    pub playbook_dir: &'a Path,
    /// Unix user the task runs as on the host (become_user when become, else the login user).
    pub run_as: &'a str,
}

impl PrepareContext<'_> {
    /// Find a local file the way Ansible does: `role/<kind>/name`, `role/name`,
    /// `playbook_dir/<kind>/name`, `playbook_dir/name`. Absolute names are used as is.
    pub fn find_local(&self, kind: &str, name: &str) -> Option<PathBuf> {
        crate::template::find_controller_file(self.role_path, Some(self.playbook_dir), kind, name)
    }
}

/// A prepared task: arguments validated and rendered, ready to probe and plan.
pub trait ModuleTask: Send + Sync {
    /// Read-only probes; their results are passed to `plan` in the same order.
    fn probes(&self) -> Vec<Probe> {
        Vec::new()
    }
    /// Pure: desired state vs probe output -> plan.
    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError>;
    /// After the actions ran (one output per action, in order; fewer if one failed and was not
    /// `may_fail`): fill in results. Default: the plan as is.
    fn finish(&self, plan: Plan, _outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        Ok(plan)
    }
    fn check_support(&self) -> CheckSupport {
        CheckSupport::Full
    }
    /// Why a [`CheckSupport::SkipIfActions`] task is skipped in check mode.
    fn check_skip_reason(&self) -> &'static str {
        "skipped in check mode: the command would run"
    }
    /// `async` with `poll: 0`: what `async_status` needs, kept with the job on the host, to
    /// make the task's result from the job's exit code and output. None: the module can't
    /// run as a background job.
    fn background_spec(&self) -> Option<Value> {
        None
    }
}

/// A module: validates arguments (already templated by the executor) into a task.
pub trait Module: Send + Sync {
    /// Bare name (`file`); also reachable as `ansible.builtin.file` etc.
    fn name(&self) -> &'static str;
    /// Other bare names (`systemd_service` for `systemd`).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// Argument names accepted (for "unknown parameter" errors listing the valid ones).
    fn params(&self) -> &'static [&'static str];
    /// Name of the parameter a free-form argument (`command: ls -l`) maps to, if any.
    fn free_form(&self) -> Option<&'static str> {
        None
    }
    fn prepare(&self, args: &Map<String, Value>, ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError>;
}

/// Collection prefixes accepted in front of a bare module name.
const PREFIXES: &[&str] = &[
    "ansible.builtin.",
    "ansible.legacy.",
    "ansible.posix.",
    "community.general.",
    "community.postgresql.",
    "community.crypto.",
];

/// Every module. Add new modules here (one line each).
fn all() -> &'static [&'static dyn Module] {
    &[
        // MODULES-START (keep one per line)
        &fail::FailModule,
        &assert::AssertModule,
        &set_fact::SetFactModule,
        &include_vars::IncludeVarsModule,
        &debug::DebugModule,
        &slurp::SlurpModule,
        &stat::StatModule,
        &template::TemplateModule,
        &command::CommandModule,
        &command::ShellModule,
        &copy::CopyModule,
        &file::FileModule,
        &get_url::GetUrlModule,
        &git::GitModule,
        &pip::PipModule,
        &port_redirect::PortRedirectModule,
        &postgresql::PostgresqlDbModule,
        &postgresql::PostgresqlPrivsModule,
        &postgresql::PostgresqlUserModule,
        &secret::SecretModule,
        &ufw::UfwModule,
        &unarchive::UnarchiveModule,
        &apt::AptModule,
        &service::ServiceModule,
        &service::SystemdModule,
        &user::UserModule,
        &group::GroupModule,
        &lineinfile::LineinfileModule,
        &replace::ReplaceModule,
        &blockinfile::BlockinfileModule,
        &deb822_repository::Deb822RepositoryModule,
        &apt_repository::AptRepositoryModule,
        &apt_key::AptKeyModule,
        &cron::CronModule,
        &sysctl::SysctlModule,
        &hostname::HostnameModule,
        &wait_for::WaitForModule,
        &django_manage::DjangoManageModule,
        &uri::UriModule,
        &authorized_key::AuthorizedKeyModule,
        &async_status::AsyncStatusModule,
        &setup::SetupModule,
        &fetch::FetchModule,
        &find::FindModule,
        &timezone::TimezoneModule,
        &locale_gen::LocaleGenModule,
        &script::ScriptModule,
        &pause::PauseModule,
        &reboot::RebootModule,
        &wait_for_connection::WaitForConnectionModule,
        &ping::PingModule,
        &raw::RawModule,
        &package::PackageModule,
        &known_hosts::KnownHostsModule,
        &getent::GetentModule,
        &debconf::DebconfModule,
        &package_facts::PackageFactsModule,
        &service_facts::ServiceFactsModule,
        &ini_file::IniFileModule,
        &mount::MountModule,
        &tempfile::TempfileModule,
        &assemble::AssembleModule,
        // MODULES-END
    ]
}

/// Find a module by bare or fully-qualified name.
pub fn lookup(name: &str) -> Option<&'static dyn Module> {
    let bare = PREFIXES.iter().find_map(|p| name.strip_prefix(p)).unwrap_or(name);
    all().iter().copied().find(|m| m.name() == bare || m.aliases().contains(&bare))
}

/// Does this module set host variables (`set_fact`, `include_vars`, the fact modules)?
pub fn sets_vars(name: &str) -> bool {
    lookup(name).is_some_and(|m| matches!(m.name(), "set_fact" | "include_vars" | "setup" | "package_facts" | "service_facts" | "getent" | "hostname"))
}

/// Is this a known module name (bare or qualified)? Task keywords are not modules.
pub fn is_module(name: &str) -> bool {
    lookup(name).is_some()
}

/// All bare module names (for "unknown module" errors).
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<_> = all().iter().map(|m| m.name()).collect();
    v.sort();
    v
}

/// Quote for POSIX sh.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_any_path_may_change_any_other_path() {
        let a = Scope::path("/etc/nginx");
        assert!(a.overlaps(&Scope::path("/etc/nginx/nginx.conf")));
        // /srv/current may be a link to /srv/releases/1, /etc/nginx2 a link into /etc/nginx.
        assert!(Scope::path("/srv/current/app.conf").overlaps(&Scope::path("/srv/releases/1/app.conf")));
        assert!(a.overlaps(&Scope::path("/etc/nginx2")));
        assert!(!a.overlaps(&Scope::Paths(vec![])));
        assert!(Scope::Host.overlaps(&a));
        assert!(!Scope::Nothing.overlaps(&Scope::Host));
    }

    #[test]
    fn quotes_for_sh() {
        assert_eq!(sh_quote("/etc/x"), "/etc/x");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
