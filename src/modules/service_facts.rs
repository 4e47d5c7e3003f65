//! `service_facts`: the host's services into the fact `services` (also
//! `ansible_facts.services`), as Ansible's module lists them on a systemd Debian host:
//! the init scripts `service --status-all` reports (`cron`: `state` running or stopped,
//! `source: sysv`), then every systemd service unit (`cron.service`: `state` running,
//! stopped or the unit's ActiveState, `status` enabled/disabled/static/masked/failed/...,
//! `source: systemd`). One probe (Ansible runs one `systemctl show` per unit file that is
//! not loaded; here one `systemctl show` covers them all), so it runs in check mode too.

use super::{ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde_json::{json, Map, Value};

pub struct ServiceFactsModule;

const PARAMS: &[&str] = &[];

#[derive(Debug)]
struct ServiceFactsTask;

// No options: `validate` skips modules with an empty list, `build` refuses any.
module_impl!(ServiceFactsModule, "service_facts");

fn build(args: &Map<String, Value>) -> Result<ServiceFactsTask, ModuleError> {
    if let Some(k) = args.keys().find(|k| *k != "_raw_params" || args[*k].as_str().is_some_and(|s| !s.trim().is_empty())) {
        return Err(ModuleError::Args(format!("service_facts: takes no options, got '{k}'")));
    }
    Ok(ServiceFactsTask)
}

const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = format!("@@{name}\n");
    let Some(i) = out.find(&start) else { return "" };
    let rest = &out[i + start.len()..];
    match rest.find("\n@@") {
        Some(j) => &rest[..j + 1],
        None => rest,
    }
}

fn services(out: &str) -> Map<String, Value> {
    let mut all = Map::new();
    let sysv = regex::Regex::new(r"(?m)^\s*\[ (?P<state>\+|-) \]\s+(?P<name>.+)$").expect("static regex");
    for c in sysv.captures_iter(section(out, "sysv")) {
        let name = c["name"].trim_end().to_string();
        let state = if &c["state"] == "+" { "running" } else { "stopped" };
        all.insert(name.clone(), json!({"name": name, "state": state, "source": "sysv"}));
    }
    if section(out, "systemd").trim() != "yes" {
        return all;
    }
    for line in section(out, "units").lines().filter(|l| l.contains(".service")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        // systemd sometimes gives misleading status: look for bad states in every field but the last.
        let status = BAD_STATES.iter().find(|b| f[..f.len() - 1].contains(b)).copied().unwrap_or(f[2]);
        let state = if f[3] == "running" { "running" } else { "stopped" };
        all.insert(f[0].to_string(), json!({"name": f[0], "state": state, "status": status, "source": "systemd"}));
    }
    let mut active: Map<String, Value> = Map::new();
    for record in section(out, "show").split("\n\n") {
        let (mut id, mut state) = (None, None);
        for l in record.lines() {
            if let Some(v) = l.strip_prefix("Id=") {
                id = Some(v.to_string());
            } else if let Some(v) = l.strip_prefix("ActiveState=") {
                state = Some(v.to_string());
            }
        }
        if let (Some(id), Some(state)) = (id, state) {
            active.insert(id, json!(state));
        }
    }
    for line in section(out, "files").lines().filter(|l| l.contains(".service")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, status, ..] = f[..] else { continue };
        match all.get_mut(name) {
            None => {
                let state = active.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("unknown");
                all.insert(name.to_string(), json!({"name": name, "state": state, "status": status, "source": "systemd"}));
            }
            Some(entry) => {
                if !entry.get("status").and_then(Value::as_str).is_some_and(|s| BAD_STATES.contains(&s)) {
                    entry["status"] = json!(status);
                }
            }
        }
    }
    all
}

impl ModuleTask for ServiceFactsTask {
    fn probes(&self) -> Vec<Probe> {
        let script = "export LC_ALL=C\n\
            echo @@sysv\n\
            if command -v service >/dev/null && ! command -v chkconfig >/dev/null && ! command -v rc-status >/dev/null; then service --status-all 2>/dev/null; fi\n\
            echo @@systemd\n\
            if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then echo yes; else echo no; exit 0; fi\n\
            echo @@units\n\
            systemctl list-units --no-pager --type service --all --plain\n\
            echo @@files\n\
            files=$(systemctl list-unit-files --no-pager --type service --all)\n\
            printf '%s\\n' \"$files\"\n\
            echo @@show\n\
            names=$(printf '%s\\n' \"$files\" | awk '$1 ~ /\\.service$/ && $1 !~ /@\\.service$/ {print $1}')\n\
            [ -z \"$names\" ] || systemctl show --property=Id,ActiveState $names\n\
            true";
        vec![Probe::new(script, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let p = probes.first().ok_or_else(|| ModuleError::Probe("service_facts: no probe result".into()))?;
        let services = services(&p.stdout);
        let mut plan = Plan::ok();
        if services.is_empty() {
            plan.skipped = Some("Failed to find any services. This can be due to privileges or some other configuration issue.".into());
            return Ok(plan);
        }
        let services = Value::Object(services);
        plan.facts.insert("services".into(), services.clone());
        plan.facts.insert("ansible_facts".into(), json!({"services": services}));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OUT: &str = "@@sysv\n [ + ]  cron\n [ - ]  hwclock.sh\n [ + ]  nginx\n@@systemd\nyes\n@@units\n\
UNIT                 LOAD      ACTIVE   SUB     DESCRIPTION\n\
cron.service         loaded    active   running Regular background program processing daemon\n\
nginx.service        loaded    failed   failed  A high performance web server\n\
ghost.service        not-found inactive dead    ghost.service\n\
apt-daily.service    loaded    inactive dead    Daily apt download activities\n\
\n\
LOAD   = Reflects whether the unit definition was properly loaded.\n\
@@files\n\
UNIT FILE              STATE           PRESET\n\
apt-daily.service      static          -\n\
cron.service           enabled         enabled\n\
nginx.service          enabled         enabled\n\
getty@.service         enabled         enabled\n\
ssh.service            masked          enabled\n\
\n\
5 unit files listed.\n\
@@show\n\
Id=apt-daily.service\nActiveState=inactive\n\nId=cron.service\nActiveState=active\n\nId=nginx.service\nActiveState=failed\n\nId=ssh.service\nActiveState=inactive\n";

    #[test]
    fn sysv_scripts_then_systemd_units_as_ansible_reports_them() {
        let t = build(&Map::new()).unwrap();
        let plan = t.plan(&[ProbeResult { stdout: OUT.into(), stderr: String::new(), rc: 0 }]).unwrap();
        let s = &plan.facts["services"];
        assert_eq!(s["cron"], json!({"name": "cron", "state": "running", "source": "sysv"}));
        assert_eq!(s["hwclock.sh"]["state"], json!("stopped"));
        assert_eq!(s["cron.service"], json!({"name": "cron.service", "state": "running", "status": "enabled", "source": "systemd"}));
        // A failed unit keeps "failed" over its unit file's state.
        assert_eq!(s["nginx.service"], json!({"name": "nginx.service", "state": "stopped", "status": "failed", "source": "systemd"}));
        assert_eq!(s["ghost.service"]["status"], json!("not-found"));
        assert_eq!(s["apt-daily.service"]["status"], json!("static"));
        // Unit files not loaded: their ActiveState; templates can't be asked: unknown.
        assert_eq!(s["ssh.service"], json!({"name": "ssh.service", "state": "inactive", "status": "masked", "source": "systemd"}));
        assert_eq!(s["getty@.service"]["state"], json!("unknown"));
        assert_eq!(plan.facts["ansible_facts"]["services"], *s);
    }

    #[test]
    fn no_services_is_a_skip_and_options_are_refused() {
        let t = build(&Map::new()).unwrap();
        let plan = t.plan(&[ProbeResult { stdout: "@@sysv\n@@systemd\nno\n".into(), stderr: String::new(), rc: 0 }]).unwrap();
        assert!(plan.skipped.unwrap().starts_with("Failed to find any services"));
        assert!(build(json!({"name": "x"}).as_object().unwrap()).is_err());
    }
}
