//! `service` and `systemd` (`systemd_service`): one unit's run state, enablement and masking.
//! One probe reads `systemctl show` + `systemctl is-enabled`; on hosts without systemd as init
//! (no `/run/systemd/system`) it falls back to `service NAME status` and the rc?.d links, and
//! actions use `service` + `update-rc.d`. `restarted`/`reloaded` are always changes (Ansible).

use super::args::{self, opt_boolish, opt_string};
use super::{sh_quote, Action, Diff, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub struct ServiceModule;
pub struct SystemdModule;

const SERVICE_PARAMS: &[&str] = &[
    "name",
    "state",
    "enabled",
    "sleep",
    "pattern",
    "runlevel",
    "arguments",
    "args",
    "use",
    "daemon_reload",
    "masked",
];
const SYSTEMD_PARAMS: &[&str] = &[
    "name",
    "unit",
    "service",
    "state",
    "enabled",
    "force",
    "masked",
    "daemon_reload",
    "daemon-reload",
    "daemon_reexec",
    "daemon-reexec",
    "scope",
    "no_block",
];

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, alias = "unit", alias = "service")]
    name: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    masked: Option<bool>,
    #[serde(default, alias = "daemon-reload", deserialize_with = "opt_boolish")]
    daemon_reload: Option<bool>,
    #[serde(default, alias = "daemon-reexec", deserialize_with = "opt_boolish")]
    daemon_reexec: Option<bool>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    no_block: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    sleep: Option<String>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    runlevel: Option<String>,
    #[serde(default, alias = "args")]
    arguments: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug)]
struct ServiceTask {
    module: &'static str,
    name: Option<String>,
    state: Option<Want>,
    enabled: Option<bool>,
    masked: Option<bool>,
    daemon_reload: bool,
    daemon_reexec: bool,
    /// `--user` / `--global` or empty.
    scope_flag: &'static str,
    no_block: bool,
    force: bool,
    sleep: Option<u64>,
    arguments: Option<String>,
}

impl Module for ServiceModule {
    fn name(&self) -> &'static str {
        "service"
    }
    fn params(&self) -> &'static [&'static str] {
        SERVICE_PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, _ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build("service", SERVICE_PARAMS, args)?))
    }
}

impl Module for SystemdModule {
    fn name(&self) -> &'static str {
        "systemd"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["systemd_service"]
    }
    fn params(&self) -> &'static [&'static str] {
        SYSTEMD_PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, _ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build("systemd", SYSTEMD_PARAMS, args)?))
    }
}

fn build(module: &'static str, params: &[&str], args: &Map<String, Value>) -> Result<ServiceTask, ModuleError> {
    let a: Args = args::parse(module, params, args)?;
    let state = match a.state.as_deref() {
        None => None,
        Some("started" | "running") => Some(Want::Started),
        Some("stopped") => Some(Want::Stopped),
        Some("restarted") => Some(Want::Restarted),
        Some("reloaded") => Some(Want::Reloaded),
        Some(s) => {
            return Err(ModuleError::Args(format!(
                "{module}: state must be started, stopped, restarted or reloaded, got '{s}'"
            )))
        }
    };
    let scope_flag = match a.scope.as_deref() {
        None | Some("system") => "",
        Some("user") => " --user",
        Some("global") => " --global",
        Some(s) => {
            return Err(ModuleError::Args(format!(
                "{module}: scope must be system, user or global, got '{s}'"
            )))
        }
    };
    let name = a.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if name.is_none() && (state.is_some() || a.enabled.is_some() || a.masked.is_some()) {
        return Err(ModuleError::Args(format!(
            "{module}: name is required with state, enabled or masked"
        )));
    }
    if name.is_none() && !a.daemon_reload.unwrap_or(false) && !a.daemon_reexec.unwrap_or(false) {
        return Err(ModuleError::Args(format!("{module}: missing required argument: name")));
    }
    if name.is_some()
        && state.is_none()
        && a.enabled.is_none()
        && a.masked.is_none()
        && !a.daemon_reload.unwrap_or(false)
        && !a.daemon_reexec.unwrap_or(false)
    {
        return Err(ModuleError::Args(format!(
            "{module}: one of the following is required: state, enabled, masked, daemon_reload"
        )));
    }
    if let Some(n) = &name {
        if n.starts_with('-') {
            return Err(ModuleError::Args(format!("{module}: invalid unit name '{n}'")));
        }
    }
    let _ = (a.pattern, a.runlevel, a.use_);
    Ok(ServiceTask {
        module,
        name,
        state,
        enabled: a.enabled,
        masked: a.masked,
        daemon_reload: a.daemon_reload.unwrap_or(false),
        daemon_reexec: a.daemon_reexec.unwrap_or(false),
        scope_flag,
        no_block: a.no_block.unwrap_or(false),
        force: a.force.unwrap_or(false),
        sleep: a.sleep.and_then(|s| s.trim().parse().ok()),
        arguments: a.arguments.filter(|s| !s.trim().is_empty()),
    })
}

#[derive(Debug, Default, Clone)]
struct Observed {
    systemd: bool,
    props: BTreeMap<String, String>,
    is_enabled: String,
    /// sysv: init script exists, status rc, has S links.
    sysv_exists: bool,
    sysv_running: bool,
    sysv_enabled: bool,
}

impl Observed {
    fn prop(&self, k: &str) -> &str {
        self.props.get(k).map(String::as_str).unwrap_or("")
    }
    fn found(&self) -> bool {
        if self.systemd {
            let ls = self.prop("LoadState");
            !(ls == "not-found" || (ls.is_empty() && self.is_enabled.is_empty()))
        } else {
            self.sysv_exists
        }
    }
    fn running(&self) -> bool {
        if self.systemd {
            matches!(self.prop("ActiveState"), "active" | "activating" | "reloading")
        } else {
            self.sysv_running
        }
    }
    fn masked(&self) -> bool {
        self.systemd
            && (self.is_enabled.starts_with("masked")
                || self.prop("LoadState") == "masked"
                || self.prop("UnitFileState").starts_with("masked"))
    }
    /// None: enablement cannot be changed (static, generated, transient, indirect).
    fn enabled(&self) -> Option<bool> {
        if !self.systemd {
            return Some(self.sysv_enabled);
        }
        let e = if self.is_enabled.is_empty() {
            self.prop("UnitFileState")
        } else {
            self.is_enabled.as_str()
        };
        match e {
            "enabled" | "enabled-runtime" | "alias" => Some(true),
            "static" | "generated" | "transient" | "indirect" => None,
            _ => Some(false),
        }
    }
}

fn parse(r: &ProbeResult) -> Result<Observed, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!("cannot read service state: {}", r.stderr.trim())));
    }
    let mut o = Observed::default();
    for line in r.stdout.lines() {
        if let Some(v) = line.strip_prefix("init|") {
            o.systemd = v.trim() == "systemd";
        } else if let Some(v) = line.strip_prefix("is-enabled|") {
            o.is_enabled = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("sysv-exists|") {
            o.sysv_exists = v.trim() == "yes";
        } else if let Some(v) = line.strip_prefix("sysv-status|") {
            o.sysv_running = v.trim() == "0";
        } else if let Some(v) = line.strip_prefix("sysv-enabled|") {
            o.sysv_enabled = v.trim() == "yes";
        } else if let Some((k, v)) = line.split_once('=') {
            o.props.insert(k.to_string(), v.to_string());
        }
    }
    Ok(o)
}

impl ServiceTask {
    fn sc(&self) -> String {
        format!("systemctl{}", self.scope_flag)
    }
}

impl ModuleTask for ServiceTask {
    fn probes(&self) -> Vec<Probe> {
        let Some(name) = &self.name else { return vec![] };
        let n = sh_quote(name);
        let sc = self.sc();
        let base = n.trim_end_matches(".service");
        let s = format!(
            "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then\n\
             echo 'init|systemd'\n\
             s=$({sc} show -p LoadState,ActiveState,SubState,UnitFileState,CanReload,NeedDaemonReload -- {n}) || exit 1\n\
             printf '%s\\n' \"$s\"\n\
             case $s in *UnitFileState=enabled*|*UnitFileState=disabled*|*UnitFileState=static*|*UnitFileState=masked*) ;;\n\
             *) printf 'is-enabled|%s\\n' \"$({sc} is-enabled -- {n} 2>/dev/null)\" ;; esac\n\
             else\n\
             echo 'init|sysv'\n\
             if [ -x /etc/init.d/{base} ]; then echo 'sysv-exists|yes'; service {base} status >/dev/null 2>&1; echo \"sysv-status|$?\";\n\
             if ls /etc/rc[2345].d/S??{base} >/dev/null 2>&1; then echo 'sysv-enabled|yes'; else echo 'sysv-enabled|no'; fi\n\
             else echo 'sysv-exists|no'; fi\n\
             fi"
        );
        vec![Probe::new(s, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        let mut actions = Vec::new();
        let mut diffs = Vec::new();
        let sc = self.sc();
        if self.daemon_reexec {
            diffs.push(Diff::Field {
                name: "daemon".into(),
                before: "running".into(),
                after: "re-executed".into(),
            });
            actions.push(Action::new("systemctl daemon-reexec", format!("{sc} daemon-reexec"), Scope::Host));
        }
        if self.daemon_reload {
            diffs.push(Diff::Field {
                name: "daemon".into(),
                before: "loaded".into(),
                after: "reloaded".into(),
            });
            actions.push(Action::new("systemctl daemon-reload", format!("{sc} daemon-reload"), Scope::Host));
        }
        let Some(name) = &self.name else {
            plan.actions = actions;
            plan.diffs = diffs;
            self.daemon_only_is_no_change(&mut plan);
            return Ok(plan);
        };
        let o = parse(probes.first().ok_or_else(|| ModuleError::Probe("missing service probe".into()))?)?;
        let n = sh_quote(name);
        let nb = if self.no_block { " --no-block" } else { "" };
        let manages_unit = self.state.is_some() || self.enabled.is_some() || self.masked == Some(false);
        if !o.found() && manages_unit && !(self.masked == Some(false) && o.masked()) {
            // A masked unit whose file is gone still shows LoadState=masked: handled above.
            return Err(ModuleError::Failed(format!("Could not find the requested service {name}: host")));
        }
        plan.result.insert("name".into(), json!(name));

        // masking first: unmask before starting/enabling, mask last stops nothing by itself.
        if let Some(m) = self.masked {
            if !o.systemd {
                return Err(ModuleError::Args(format!("{}: masked needs systemd", self.module)));
            }
            if m != o.masked() {
                diffs.push(Diff::Field {
                    name: "masked".into(),
                    before: o.masked().to_string(),
                    after: m.to_string(),
                });
                let verb = if m { "mask" } else { "unmask" };
                actions.push(Action::new(format!("{verb} {name}"), format!("{sc} {verb} -- {n}"), Scope::Host));
            }
        }
        if let Some(e) = self.enabled {
            let masked_now = self.masked.unwrap_or(o.masked());
            if e && masked_now {
                return Err(ModuleError::Failed(format!("Unable to enable service {name}: unit is masked")));
            }
            match o.enabled() {
                Some(cur) if cur != e => {
                    diffs.push(Diff::Field {
                        name: "enabled".into(),
                        before: if cur { "enabled".into() } else { "disabled".into() },
                        after: if e { "enabled".into() } else { "disabled".into() },
                    });
                    let script = if o.systemd {
                        let verb = if e { "enable" } else { "disable" };
                        let force = if self.force { " --force" } else { "" };
                        format!("{sc} {verb}{force} -- {n}")
                    } else {
                        let base = n.trim_end_matches(".service");
                        if e {
                            format!("update-rc.d {base} defaults >/dev/null && update-rc.d {base} enable")
                        } else {
                            format!("update-rc.d {base} disable")
                        }
                    };
                    actions.push(Action::new(
                        format!("{} {name}", if e { "enable" } else { "disable" }),
                        script,
                        Scope::Host,
                    ));
                }
                Some(_) => {}
                None => {
                    plan.result.insert("unit_file_state".into(), json!(o.is_enabled));
                }
            }
            plan.result.insert("enabled".into(), json!(e));
        }
        if let Some(w) = self.state {
            let running = o.running();
            let cur = if running { "started" } else { "stopped" };
            let sysv_base = n.trim_end_matches(".service").to_string();
            let verb_script = |verb: &str| -> String {
                if o.systemd {
                    format!("{sc} {verb}{nb} -- {n}")
                } else {
                    let args = self.arguments.as_deref().map(|a| format!(" {a}")).unwrap_or_default();
                    format!("service {sysv_base} {verb}{args}")
                }
            };
            let (after, verb) = match w {
                Want::Started if !running => ("started", Some("start")),
                Want::Stopped if running => ("stopped", Some("stop")),
                Want::Restarted => ("restarted", Some("restart")),
                Want::Reloaded if running => ("reloaded", Some("reload")),
                Want::Reloaded => ("started", Some("start")),
                Want::Started => ("started", None),
                Want::Stopped => ("stopped", None),
            };
            if let Some(v) = verb {
                diffs.push(Diff::Field {
                    name: "state".into(),
                    before: cur.into(),
                    after: after.into(),
                });
                let mut script = verb_script(v);
                if let (Some(s), "restart") = (self.sleep, v) {
                    if !o.systemd {
                        script = format!("{} && sleep {s} && {}", verb_script("stop"), verb_script("start"));
                    }
                }
                actions.push(Action::new(format!("{v} {name}"), script, Scope::Host));
            }
            let final_state = match w {
                Want::Stopped => "stopped",
                _ => "started",
            };
            plan.result.insert("state".into(), json!(final_state));
        }
        if o.systemd {
            plan.result.insert("status".into(), json!(o.props));
        }
        plan.actions = actions;
        plan.diffs = diffs;
        self.daemon_only_is_no_change(&mut plan);
        Ok(plan)
    }
}

impl ServiceTask {
    /// As in Ansible, `daemon_reload`/`daemon_reexec` run whenever asked but do not by
    /// themselves make the task `changed` (else `daemon_reload: true` next to `state: started`
    /// would never converge to changed=0).
    fn daemon_only_is_no_change(&self, plan: &mut Plan) {
        let n = self.daemon_reload as usize + self.daemon_reexec as usize;
        if n > 0 && plan.actions.len() == n {
            plan.changed = Some(false);
            plan.diffs.retain(|d| !matches!(d, Diff::Field { name, .. } if name == "daemon"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ok, run_probe};
    use super::*;

    fn task(v: Value) -> ServiceTask {
        build("systemd", SYSTEMD_PARAMS, v.as_object().unwrap()).unwrap()
    }
    const RUNNING: &str = "init|systemd\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nCanReload=yes\nNeedDaemonReload=no\nis-enabled|enabled\n";
    const STOPPED: &str = "init|systemd\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=disabled\nCanReload=yes\nNeedDaemonReload=no\nis-enabled|disabled\n";
    const MISSING: &str = "init|systemd\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\nCanReload=no\nNeedDaemonReload=no\nis-enabled|\n";

    #[test]
    fn starts_and_enables() {
        let t = task(json!({"name": "nginx", "state": "started", "enabled": true}));
        let p = t.plan(&[ok(STOPPED)]).unwrap();
        assert_eq!(
            p.diffs,
            vec![
                Diff::Field {
                    name: "enabled".into(),
                    before: "disabled".into(),
                    after: "enabled".into()
                },
                Diff::Field {
                    name: "state".into(),
                    before: "stopped".into(),
                    after: "started".into()
                },
            ]
        );
        assert_eq!(p.actions[0].script, "systemctl enable -- nginx");
        assert_eq!(p.actions[1].script, "systemctl start -- nginx");
        assert!(t.plan(&[ok(RUNNING)]).unwrap().actions.is_empty());
    }

    #[test]
    fn restarted_is_always_a_change_and_unknown_units_fail() {
        let t = task(json!({"name": "nginx", "state": "restarted"}));
        assert_eq!(t.plan(&[ok(RUNNING)]).unwrap().actions.len(), 1);
        let e = t.plan(&[ok(MISSING)]).unwrap_err().to_string();
        assert!(e.contains("Could not find the requested service nginx"), "{e}");
        let t = task(json!({"name": "nginx", "state": "stopped"}));
        assert!(t.plan(&[ok(STOPPED)]).unwrap().actions.is_empty());
        assert_eq!(t.plan(&[ok(RUNNING)]).unwrap().actions[0].script, "systemctl stop -- nginx");
    }

    #[test]
    fn daemon_reload_does_not_count_as_change() {
        let t = task(json!({"name": "nginx", "state": "started", "enabled": true, "daemon_reload": true}));
        let p = t.plan(&[ok(RUNNING)]).unwrap();
        assert_eq!(p.actions.len(), 1, "daemon-reload still runs");
        assert!(!p.changed() && p.diffs.is_empty(), "{:?}", p.diffs);
        let p = t.plan(&[ok(STOPPED)]).unwrap();
        assert!(p.changed() && p.actions.len() == 3, "{:?}", p.actions);
        assert!(p.diffs.iter().any(|d| matches!(d, Diff::Field { name, .. } if name == "daemon")));
    }

    #[test]
    fn daemon_reload_alone_and_masking() {
        let t = task(json!({"daemon_reload": true}));
        assert!(t.probes().is_empty());
        let p = t.plan(&[]).unwrap();
        assert_eq!(p.actions[0].script, "systemctl daemon-reload");
        assert!(!p.changed(), "daemon-reload alone is not a change");
        let t = task(json!({"name": "x", "masked": true}));
        let p = t.plan(&[ok(STOPPED)]).unwrap();
        assert_eq!(p.actions[0].script, "systemctl mask -- x");
        let masked = "init|systemd\nLoadState=masked\nActiveState=inactive\nUnitFileState=masked\nis-enabled|masked\n";
        assert!(t.plan(&[ok(masked)]).unwrap().actions.is_empty());
        let t = task(json!({"name": "x", "enabled": true}));
        let st = "init|systemd\nLoadState=loaded\nActiveState=inactive\nUnitFileState=static\nis-enabled|static\n";
        assert!(t.plan(&[ok(st)]).unwrap().actions.is_empty());
    }

    #[test]
    fn sysv_fallback() {
        let t = build(
            "service",
            SERVICE_PARAMS,
            json!({"name": "cron", "state": "started", "enabled": "yes"}).as_object().unwrap(),
        )
        .unwrap();
        let p = t
            .plan(&[ok("init|sysv\nsysv-exists|yes\nsysv-status|3\nsysv-enabled|no\n")])
            .unwrap();
        assert_eq!(
            p.actions[0].script,
            "update-rc.d cron defaults >/dev/null && update-rc.d cron enable"
        );
        assert_eq!(p.actions[1].script, "service cron start");
        assert!(t.plan(&[ok("init|sysv\nsysv-exists|no\n")]).is_err());
    }

    #[test]
    fn probe_runs_here() {
        let t = task(json!({"name": "nosuch-unit-xyz", "state": "started"}));
        let r = run_probe(&t.probes()[0].script);
        assert_eq!(r.rc, 0, "{r:?}");
        assert!(t.plan(&[r]).is_err());
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn service_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let t = build(
            "systemd",
            SYSTEMD_PARAMS,
            json!({"name": "ssh", "state": "started", "enabled": true}).as_object().unwrap(),
        )
        .unwrap();
        let p = testhost::plan(&t);
        assert!(p.actions.is_empty(), "{:?}", p.diffs);
        let t = build(
            "service",
            SERVICE_PARAMS,
            json!({"name": "dbus", "state": "restarted"}).as_object().unwrap(),
        )
        .unwrap();
        let p = testhost::plan(&t);
        assert_eq!(p.actions.len(), 1);
    }
}

#[cfg(test)]
mod host_tests2 {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn converge_dummy_unit() {
        if testhost::port().is_none() {
            return;
        }
        let unit = "[Unit]\nDescription=provision module test\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n";
        let setup = testhost::run("systemctl disable --now mstest.service 2>/dev/null; cat > /etc/systemd/system/mstest.service", Some(unit.as_bytes()));
        assert_eq!(setup.exit_code, 0, "{}", setup.stderr_str());
        for args in [
            json!({"name": "mstest", "state": "started", "enabled": true, "daemon_reload": true}),
            json!({"name": "mstest.service", "state": "stopped", "enabled": false}),
        ] {
            let t = build("systemd", SYSTEMD_PARAMS, args.as_object().unwrap()).unwrap();
            let (first, second) = testhost::converge(&t);
            eprintln!("{:?}", first.diffs);
            assert!(first.changed());
            let left: Vec<_> = second.actions.iter().filter(|a| a.summary != "systemctl daemon-reload").collect();
            assert!(left.is_empty(), "{:?}", second.diffs);
        }
    }
}
