//! `hostname`: the running host name and `/etc/hostname`. Uses `hostnamectl` when it works and
//! falls back to `hostname NAME` (containers without a usable hostnamed); `/etc/hostname` is
//! always written so the name survives a reboot. `/etc/hosts` is not touched (as in Ansible).

use super::args;
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct HostnameModule;

const PARAMS: &[&str] = &["name", "use"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    #[serde(default, rename = "use")]
    use_: Option<String>,
}

#[derive(Debug)]
struct HostnameTask {
    name: String,
    /// systemd: try hostnamectl first; debian/generic: plain files + `hostname`.
    hostnamectl: bool,
}

module_impl!(HostnameModule, "hostname");

fn build(args: &Map<String, Value>) -> Result<HostnameTask, ModuleError> {
    let a: Args = args::parse("hostname", PARAMS, args)?;
    let name = a.name.trim().to_string();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return Err(ModuleError::Args(format!("hostname: invalid host name '{name}'")));
    }
    let hostnamectl = match a.use_.as_deref() {
        None | Some("systemd") => true,
        Some("debian" | "generic" | "alpine" | "redhat" | "sles" | "openrc") => false,
        Some(s) => {
            return Err(ModuleError::Args(format!(
                "hostname: unsupported strategy '{s}' (use systemd, debian or generic)"
            )))
        }
    };
    Ok(HostnameTask { name, hostnamectl })
}

impl ModuleTask for HostnameTask {
    fn probes(&self) -> Vec<Probe> {
        let s = "printf 'current|%s\\n' \"$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)\"\n\
                 if [ -f /etc/hostname ]; then printf 'file|%s\\n' \"$(head -n 1 /etc/hostname)\"; else echo 'file|'; fi";
        vec![Probe::new(s, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("missing hostname probe".into()))?;
        if r.rc != 0 {
            return Err(ModuleError::Failed(format!("cannot read host name: {}", r.stderr.trim())));
        }
        let get = |k: &str| r.stdout.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").trim().to_string();
        let current = get("current|");
        let file = get("file|");
        let mut plan = Plan::ok();
        let n = sh_quote(&self.name);
        let mut script = String::from("set -e\n");
        if current != self.name {
            plan.diffs.push(Diff::Field {
                name: "hostname".into(),
                before: current.clone(),
                after: self.name.clone(),
            });
            if self.hostnamectl {
                script.push_str(&format!("if ! {{ command -v hostnamectl >/dev/null 2>&1 && hostnamectl set-hostname {n} 2>/dev/null; }}; then hostname {n}; fi\n"));
            } else {
                script.push_str(&format!("hostname {n}\n"));
            }
        }
        if file != self.name {
            plan.diffs.push(Diff::Text {
                path: "/etc/hostname".into(),
                before: (!file.is_empty()).then(|| format!("{file}\n")),
                after: Some(format!("{}\n", self.name)),
            });
        }
        if current != self.name || file != self.name {
            // hostnamectl may have written it already; make sure either way (atomic).
            script.push_str(&format!("printf '%s\\n' {n} > /etc/.hostname.provision && chmod 0644 /etc/.hostname.provision && mv -f /etc/.hostname.provision /etc/hostname\n"));
            plan.actions
                .push(Action::new(format!("set host name to {}", self.name), script, Scope::Host));
        }
        let short = self.name.split('.').next().unwrap_or(&self.name).to_string();
        let domain = self.name.split_once('.').map(|(_, d)| d.to_string()).unwrap_or_default();
        plan.result.insert("name".into(), json!(self.name));
        plan.facts.insert("ansible_hostname".into(), json!(short));
        plan.facts.insert("ansible_nodename".into(), json!(self.name));
        plan.facts.insert("ansible_fqdn".into(), json!(self.name));
        plan.facts.insert("ansible_domain".into(), json!(domain));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, ok, run_probe};
    use super::*;

    #[test]
    fn sets_name_and_file() {
        let t = build(json!({"name": "web1.example.org"}).as_object().unwrap()).unwrap();
        let p = t.plan(&[ok("current|localhost\nfile|localhost\n")]).unwrap();
        assert_eq!(
            p.diffs[0],
            Diff::Field {
                name: "hostname".into(),
                before: "localhost".into(),
                after: "web1.example.org".into()
            }
        );
        assert!(p.actions[0].script.contains("hostnamectl set-hostname web1.example.org"));
        assert_eq!(p.facts["ansible_hostname"], json!("web1"));
        assert!(t
            .plan(&[ok("current|web1.example.org\nfile|web1.example.org\n")])
            .unwrap()
            .actions
            .is_empty());
        let p = t.plan(&[ok("current|web1.example.org\nfile|\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(!p.actions[0].script.contains("hostnamectl"));
        assert!(build(json!({"name": "bad_name"}).as_object().unwrap()).is_err());
        assert_sh_syntax(&t.plan(&[ok("current|x\nfile|x\n")]).unwrap().actions[0].script);
    }

    #[test]
    fn probe_runs_here() {
        let t = build(json!({"name": "x"}).as_object().unwrap()).unwrap();
        let r = run_probe(&t.probes()[0].script);
        assert!(r.rc == 0 && r.stdout.starts_with("current|"));
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn hostname_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let t = build(json!({"name": "ms-renamed"}).as_object().unwrap()).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed());
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let t = build(json!({"name": "ms-web1"}).as_object().unwrap()).unwrap();
        let (_, second) = testhost::converge(&t);
        assert!(second.actions.is_empty());
    }
}
