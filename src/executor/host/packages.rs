//! One package transaction for several `apt` tasks of a play.
//!
//! When an `apt` task is about to install packages, later `apt` tasks of the same play that
//! are plain installs with the same options join its transaction (apt resolves, unpacks and
//! runs triggers once), as long as nothing between them could change how a package installs:
//! the scan stops at the first task that is not known to be harmless here (commands, services,
//! apt sources and keys, files under /etc/apt, /etc/default, systemd units, users or groups with
//! a fixed id, anything that registers or sets a variable ...). A task whose packages were
//! installed this way reports `changed` when its turn comes, with its own diff, and notifies
//! its handlers as usual. Check mode never merges: each task predicts its own change.

use super::HostRun;
use crate::modules::{self, apt, Diff, ModuleTask, Plan};
use crate::playbook::Task;
use crate::template::Vars;
use serde_json::{Map, Value};

/// Paths whose content can change what installing a package does.
const INSTALL_INPUTS: &[&str] = &[
    "/etc/apt", "/etc/dpkg", "/etc/default", "/etc/debconf.conf", "/var/cache/debconf", "/var/lib/dpkg",
    "/usr/sbin/policy-rc.d", "/etc/systemd", "/lib/systemd", "/usr/lib/systemd", "/etc/init.d", "/etc/environment",
];

/// What a later task's packages became part of.
pub(super) struct Absorbed {
    /// The task whose transaction installed them.
    pub by: String,
    pub diffs: Vec<Diff>,
}

fn touches_install_inputs(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    !p.starts_with('/') || INSTALL_INPUTS.iter().any(|i| p == *i || p.starts_with(&format!("{i}/")))
}

/// Can `task` run after packages planned for later are already installed, without a
/// difference? Only modules known not to influence a package's installation qualify.
fn harmless(module: &str, args: &Map<String, Value>) -> bool {
    let path = || ["path", "dest", "name"].iter().find_map(|k| args.get(*k)).and_then(Value::as_str).map(str::to_string);
    match module {
        "debug" | "assert" | "stat" | "slurp" | "ufw" | "git" | "pip" | "postgresql_db" | "postgresql_user" | "postgresql_privs" => true,
        // A package may create the same user or group: only ones without fixed ids or the
        // system flag are safe to create after it.
        "user" | "group" => {
            let fixed = |k: &str| args.get(k).is_some_and(|v| !v.is_null());
            !fixed("uid") && !fixed("gid") && args.get("system").is_none_or(|v| modules::args::truthy(v) == Some(false))
        }
        "file" | "copy" | "template" | "lineinfile" | "blockinfile" => path().is_some_and(|p| !touches_install_inputs(&p)),
        _ => false,
    }
}

impl HostRun {
    /// If `task` (an `apt` install at `index`, about to run as `run_as`) can take later tasks'
    /// packages into its transaction: the merged task, and what each absorbed task installs.
    pub(super) async fn merge_package_tasks(&mut self, task: &Task, vars: &Vars, index: usize, run_as: &str) -> Option<(Box<dyn ModuleTask>, Vec<(usize, Plan)>)> {
        if modules::lookup(&task.module)?.name() != "apt" || task.loop_items.is_some() || !task.environment.is_empty() {
            return None;
        }
        let (_, mut args) = Self::task_args(&self.templar, task, vars).ok()?;
        let ctx = self.ctx.clone();
        let play = ctx.play();
        let mut absorbed = Vec::new();
        for (j, later) in play.tasks.iter().enumerate().skip(index + 1).take(super::LOOKAHEAD) {
            if !self.selected(later) {
                continue; // won't run
            }
            let Some(module) = modules::lookup(&later.module) else { break };
            if later.in_rescue() || later.register.is_some() || later.run_once || later.check_mode.is_some() || later.delegate_to.is_some() || modules::sets_vars(&later.module) {
                break;
            }
            let lvars = self.task_vars(later);
            if module.name() != "apt" {
                // Loop variables aren't known here: rendered as nothing, a path then reads as
                // its fixed part (`{{ root }}/{{ item }}` -> `/srv/app/`), or as relative (not
                // harmless) when it has none.
                let largs = Self::task_args(&self.templar.lenient(), later, &lvars);
                if largs.is_ok_and(|(_, a)| harmless(module.name(), &a)) {
                    continue;
                }
                break;
            }
            let Ok((_, largs)) = Self::task_args(&self.templar, later, &lvars) else { continue };
            // Another apt task: joins if it surely runs, as the same user, with the same options.
            if !later.when.is_empty() || later.loop_items.is_some() || !later.environment.is_empty() || self.run_as(later, &lvars).ok().as_deref() != Some(run_as) {
                continue;
            }
            let Some(merged) = apt::merge_install(&args, &largs) else { continue };
            // Its own plan, for its report and to be sure its packages can be installed.
            let Ok(t) = self.prepare_args(later, largs, &lvars, run_as) else { continue };
            let probes = t.probes();
            let Ok(results) = self.probe(&probes, run_as, usize::MAX).await else { continue };
            let Ok(plan) = t.plan(&results) else { continue };
            if plan.failed.is_some() || plan.skipped.is_some() || plan.actions.is_empty() {
                continue;
            }
            args = merged;
            absorbed.push((j, plan));
        }
        if absorbed.is_empty() {
            return None;
        }
        let merged = self.prepare_args(task, args, vars, run_as).ok()?;
        Some((merged, absorbed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn what_may_run_after_hoisted_packages() {
        assert!(harmless("file", &m(json!({"path": "/home/app/webapp", "state": "directory"}))));
        assert!(!harmless("file", &m(json!({"path": "/etc/systemd/system/nginx.service", "state": "link", "src": "/dev/null"}))));
        assert!(!harmless("copy", &m(json!({"dest": "/etc/apt/sources.list.d/x.list", "content": "deb ..."}))));
        assert!(!harmless("template", &m(json!({"dest": "/etc/default/elasticsearch", "src": "x.j2"}))));
        assert!(!harmless("copy", &m(json!({"dest": "relative/x", "content": "x"}))));
        assert!(harmless("template", &m(json!({"dest": "/etc/nginx/sites-available/app", "src": "x.j2"}))));
        assert!(harmless("user", &m(json!({"name": "devartis", "group": "devartis", "shell": "/bin/bash"}))));
        assert!(harmless("group", &m(json!({"name": "devartis"}))));
        assert!(!harmless("user", &m(json!({"name": "postgres", "uid": 1100}))));
        assert!(!harmless("group", &m(json!({"name": "postgres", "system": true}))));
        assert!(harmless("ufw", &m(json!({"rule": "allow", "port": "22"}))));
        for module in ["command", "shell", "service", "apt_repository", "apt_key", "deb822_repository", "get_url", "unarchive", "meta", "set_fact"] {
            assert!(!harmless(module, &Map::new()), "{module}");
        }
    }
}
