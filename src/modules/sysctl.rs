//! `sysctl`: a kernel parameter in a sysctl file (`key=value`, comments kept) and, with
//! `sysctl_set`, in the running kernel. With `reload` (default), a changed file, or a file
//! already right whose value the kernel doesn't have (as Ansible checks), is applied with
//! `sysctl -p FILE`. With `ignoreerrors`, unknown or read-only keys (containers) don't fail,
//! and a reload that left the live value as it was reports no change.

use super::args::{self, opt_boolish, opt_string};
use super::common;
use super::{sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct SysctlModule;

const PARAMS: &[&str] = &[
    "name",
    "key",
    "value",
    "val",
    "state",
    "reload",
    "sysctl_file",
    "sysctl_set",
    "ignoreerrors",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "key")]
    name: String,
    #[serde(default, alias = "val", deserialize_with = "opt_string")]
    value: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    reload: Option<bool>,
    #[serde(default)]
    sysctl_file: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    sysctl_set: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    ignoreerrors: Option<bool>,
}

#[derive(Debug)]
struct SysctlTask {
    name: String,
    value: String,
    present: bool,
    reload: bool,
    file: String,
    set: bool,
    ignore: bool,
}

module_impl!(SysctlModule, "sysctl");

/// Whitespace-normalised value; booleans as 1/0 like Ansible.
fn norm(v: &str) -> String {
    let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => "1".into(),
        "false" | "no" | "off" => "0".into(),
        _ => v,
    }
}

fn build(args: &Map<String, Value>) -> Result<SysctlTask, ModuleError> {
    let a: Args = args::parse("sysctl", PARAMS, args)?;
    let present = args::present_state("sysctl", a.state.as_deref())?;
    let name = a.name.trim().to_string();
    if name.is_empty() || name.contains(['=', ' ', '\n']) {
        return Err(ModuleError::Args(format!("sysctl: invalid key '{name}'")));
    }
    let value = norm(a.value.as_deref().unwrap_or(""));
    if present && value.is_empty() {
        return Err(ModuleError::Args("sysctl: value is required with state=present".into()));
    }
    Ok(SysctlTask {
        name,
        value,
        present,
        reload: a.reload.unwrap_or(true),
        file: a.sysctl_file.unwrap_or_else(|| "/etc/sysctl.conf".into()),
        set: a.sysctl_set.unwrap_or(false),
        ignore: a.ignoreerrors.unwrap_or(false),
    })
}

impl SysctlTask {
    fn key_of(line: &str) -> Option<(&str, &str)> {
        let t = line.trim();
        if t.starts_with('#') || t.starts_with(';') {
            return None;
        }
        let (k, v) = t.split_once('=')?;
        Some((k.trim().trim_start_matches('-'), v.trim()))
    }

    fn same_key(&self, k: &str) -> bool {
        k.replace('/', ".") == self.name.replace('/', ".")
    }

    /// (current value in file, new content or None)
    fn edit(&self, content: &str) -> (Option<String>, Option<String>) {
        let mut out = Vec::new();
        let mut found = None;
        let mut changed = false;
        for line in content.lines() {
            match Self::key_of(line) {
                Some((k, v)) if self.same_key(k) => {
                    found = Some(norm(v));
                    if !self.present {
                        changed = true;
                        continue;
                    }
                    let want = format!("{}={}", self.name, self.value);
                    if norm(v) != self.value {
                        changed = true;
                        out.push(want);
                    } else {
                        out.push(line.to_string());
                    }
                }
                _ => out.push(line.to_string()),
            }
        }
        if self.present && found.is_none() {
            out.push(format!("{}={}", self.name, self.value));
            changed = true;
        }
        let new = changed.then(|| {
            let mut s = out.join("\n");
            s.push('\n');
            s
        });
        (found, new)
    }
}

/// The live value printed by [`SysctlTask::value_script`] (None: unknown key).
fn parse_value(out: &str) -> Option<String> {
    out.lines().find_map(|l| l.strip_prefix("value|")).filter(|v| *v != "unknown").map(norm)
}

impl SysctlTask {
    /// Prints `value|<live value>` (tabs and newlines as spaces) or `value|unknown`.
    fn value_script(&self) -> String {
        let k = sh_quote(&self.name);
        format!("if v=$(sysctl -n -- {k} 2>/dev/null); then printf 'value|%s\\n' \"$(printf '%s' \"$v\" | tr '\\t\\n' '  ')\"; else echo 'value|unknown'; fi")
    }

    fn live_diff(&self, running: &Option<String>) -> Diff {
        Diff::Field {
            name: self.name.clone(),
            before: running.clone().unwrap_or_else(|| "unknown".into()),
            after: self.value.clone(),
        }
    }
}

impl ModuleTask for SysctlTask {
    fn probes(&self) -> Vec<Probe> {
        vec![common::file_probe(&self.file, true), Probe::new(self.value_script(), Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        if probes.len() < 2 {
            return Err(ModuleError::Probe("missing sysctl probes".into()));
        }
        let st = common::parse_file_state(&probes[0])?;
        let running = parse_value(&probes[1].stdout);
        let mut plan = Plan::ok();
        plan.result.insert("name".into(), json!(self.name));
        if self.present && running.is_none() && !self.ignore && (self.reload || self.set) {
            return Err(ModuleError::Failed(format!(
                "setting {} failed: no such sysctl key (use ignoreerrors to skip)",
                self.name
            )));
        }
        let text = if st.exists() {
            Some(
                st.text()
                    .ok_or_else(|| ModuleError::Failed(format!("sysctl: {} is not a readable text file", self.file)))?,
            )
        } else {
            None
        };
        if text.is_none() && !self.present {
            return Ok(plan);
        }
        let (_, new) = self.edit(text.as_deref().unwrap_or(""));
        if let Some(n) = &new {
            plan.diffs.push(common::content_diff(&self.file, &st, n.as_bytes()));
            let owner = if st.exists() { st.owner.clone() } else { "root".into() };
            let group = if st.exists() { st.group.clone() } else { "root".into() };
            let mut a = common::write_file_action(
                &self.file,
                n.as_bytes(),
                Some(&owner),
                Some(&group),
                None,
                st.exists().then_some(st.mode).or(Some(0o644)),
            );
            a.summary = format!("set {} in {}", self.name, self.file);
            plan.actions.push(a);
        }
        let live_wrong = running.as_deref() != Some(self.value.as_str());
        let ignore = if self.ignore { " || true" } else { "" };
        if self.present && self.set && live_wrong {
            plan.diffs.push(self.live_diff(&running));
            plan.actions.push(Action::new(
                format!("apply {}", self.name),
                format!("sysctl -q -w {}{ignore}", sh_quote(&format!("{}={}", self.name, self.value))),
                Scope::Host,
            ));
        } else if self.reload && (new.is_some() || (self.present && live_wrong)) {
            // As Ansible: a changed file is reloaded, and so is a file already right whose
            // value is not live (an earlier apply failed, or someone changed it since).
            if self.present && live_wrong {
                plan.diffs.push(self.live_diff(&running));
            }
            let mut a = Action::new(
                format!("reload {}", self.file),
                format!("sysctl -q -p {}{ignore}", sh_quote(&self.file)),
                Scope::Host,
            );
            if self.ignore && new.is_none() {
                // only the live value was to change: say afterwards whether it did
                a.script.push_str(&format!("; {}", self.value_script()));
            }
            plan.actions.push(a);
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        // With `ignoreerrors`, a reload that could not set the value (read-only in a
        // container, unknown key) changed nothing: ok, not changed on every run.
        if self.ignore && plan.actions.len() == 1 && plan.actions[0].script.contains("value|") {
            if let Some(o) = outputs.first() {
                let after = parse_value(&o.stdout_str());
                if after.as_deref() != Some(self.value.as_str()) {
                    plan.changed = Some(false);
                }
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{file, ok, out, run_probe};
    use super::*;


    #[test]
    fn writes_file_and_applies() {
        let t = build(
            json!({"name": "net.ipv4.ip_forward", "value": 1, "sysctl_file": "/etc/sysctl.d/60-fwd.conf"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t.plan(&[ok("absent\n"), ok("value|0\n")]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"net.ipv4.ip_forward=1\n"[..]));
        assert_eq!(p.actions[1].script, "sysctl -q -p /etc/sysctl.d/60-fwd.conf");
        let p = t.plan(&[file("# x\nnet.ipv4.ip_forward = 1\n"), ok("value|1\n")]).unwrap();
        assert!(p.actions.is_empty());
        let t = build(
            json!({"name": "net.ipv4.tcp_rmem", "value": "4096  131072 33554432", "sysctl_set": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t
            .plan(&[file("net.ipv4.tcp_rmem=4096 131072 33554432\n"), ok("value|4096 131072 6291456\n")])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].script, "sysctl -q -w 'net.ipv4.tcp_rmem=4096 131072 33554432'");
    }

    #[test]
    fn file_right_but_value_not_live_is_reloaded() {
        let args = json!({"name": "net.ipv4.ip_forward", "value": "1", "sysctl_file": "/etc/sysctl.d/90-fwd.conf"});
        let t = build(args.as_object().unwrap()).unwrap();
        // the file is right, the kernel says 0 (an earlier apply failed, or drift): reload it
        let p = t.plan(&[file("net.ipv4.ip_forward=1\n"), ok("value|0\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].script, "sysctl -q -p /etc/sysctl.d/90-fwd.conf");
        assert!(p.diffs.iter().any(|d| matches!(d, Diff::Field { before, after, .. } if before == "0" && after == "1")));
        // both right: nothing
        assert!(t.plan(&[file("net.ipv4.ip_forward=1\n"), ok("value|1\n")]).unwrap().actions.is_empty());
        // reload: false only keeps the file
        let mut a = args.clone();
        a["reload"] = json!(false);
        let t = build(a.as_object().unwrap()).unwrap();
        assert!(t.plan(&[file("net.ipv4.ip_forward=1\n"), ok("value|0\n")]).unwrap().actions.is_empty());
        // ignoreerrors: reloaded, but a value the kernel refused is no change
        let mut a = args.clone();
        a["ignoreerrors"] = json!(true);
        let t = build(a.as_object().unwrap()).unwrap();
        let p = t.plan(&[file("net.ipv4.ip_forward=1\n"), ok("value|0\n")]).unwrap();
        assert!(p.actions[0].script.starts_with("sysctl -q -p /etc/sysctl.d/90-fwd.conf || true; "));
        let refused = t.finish(p.clone(), &[out("value|0\n")]).unwrap();
        assert!(!refused.changed());
        let took = t.finish(p, &[out("value|1\n")]).unwrap();
        assert!(took.changed());
    }

    #[test]
    fn read_only_and_unknown_keys() {
        let t = build(
            json!({"name": "vm.swappiness", "value": "10", "ignoreerrors": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t.plan(&[ok("absent\n"), ok("value|60\n")]).unwrap();
        assert!(p.actions[1].script.ends_with("|| true"));
        let t = build(json!({"name": "no.such", "value": "1"}).as_object().unwrap()).unwrap();
        assert!(t.plan(&[ok("absent\n"), ok("value|unknown\n")]).is_err());
        let t = build(json!({"name": "vm.swappiness", "state": "absent"}).as_object().unwrap()).unwrap();
        let p = t.plan(&[file("a=1\nvm.swappiness=10\n"), ok("value|60\n")]).unwrap();
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"a=1\n"[..]));
    }

    #[test]
    fn probe_runs_here() {
        let t = build(json!({"name": "kernel.ostype", "value": "Linux"}).as_object().unwrap()).unwrap();
        assert_eq!(run_probe(&t.probes()[1].script).stdout, "value|Linux\n");
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn sysctl_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run("rm -f /etc/sysctl.d/60-ms.conf; sysctl -q -w net.ipv4.ip_forward=0", None);
        let t = build(
            json!({"name": "net.ipv4.ip_forward", "value": "1", "sysctl_file": "/etc/sysctl.d/60-ms.conf"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed());
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        assert_eq!(testhost::run("sysctl -n net.ipv4.ip_forward", None).stdout_str(), "1\n");
        // read-only in a container: ignoreerrors keeps the task from failing
        let t = build(
            json!({"name": "vm.swappiness", "value": "11", "sysctl_file": "/etc/sysctl.d/60-ms.conf", "ignoreerrors": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (_, second) = testhost::converge(&t);
        // the kernel refuses the value: reloaded each run (as Ansible), but reported unchanged
        let (done, _) = testhost::converge(&t);
        assert_eq!(second.actions.len(), 1, "{:?}", second.diffs);
        assert!(!done.changed());
        // the file is right but the value was changed since: reloaded (another file: the
        // read-only key above would fail the reload, in Ansible too)
        testhost::run("rm -f /etc/sysctl.d/60-ms.conf; echo net.ipv4.ip_forward=1 > /etc/sysctl.d/61-ms.conf", None);
        let t = build(
            json!({"name": "net.ipv4.ip_forward", "value": "1", "sysctl_file": "/etc/sysctl.d/61-ms.conf"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        testhost::run("sysctl -q -w net.ipv4.ip_forward=0", None);
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && first.actions.len() == 1, "{:?}", first.actions);
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        assert_eq!(testhost::run("sysctl -n net.ipv4.ip_forward", None).stdout_str(), "1\n");
        testhost::run("rm -f /etc/sysctl.d/61-ms.conf", None);
    }
}
