//! `package_facts`: the host's installed packages into the fact `packages` (also
//! `ansible_facts.packages`): each name maps to a list of `{name, version, arch, category,
//! source: apt}`, as Ansible's apt backend builds it (a package of a foreign architecture is
//! named `name:arch`). Read with one `dpkg-query`, no `python3-apt` needed; a probe, so it
//! runs in check mode too. `manager` may be `auto` or `apt`, `strategy` `first` or `all`.
//! Unlike Ansible, entries have no `origin` (it comes from apt's index files).

use super::args::{self, opt_list, opt_string};
use super::{ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct PackageFactsModule;

const PARAMS: &[&str] = &["manager", "strategy"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_list")]
    manager: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    strategy: Option<String>,
}

#[derive(Debug)]
struct PackageFactsTask;

module_impl!(PackageFactsModule, "package_facts");

fn build(args: &Map<String, Value>) -> Result<PackageFactsTask, ModuleError> {
    let a: Args = args::parse("package_facts", PARAMS, args)?;
    if let Some(m) = a.manager.unwrap_or_default().iter().find(|m| !matches!(m.to_lowercase().as_str(), "auto" | "apt")) {
        return Err(ModuleError::Args(format!("package_facts: Unsupported package managers requested: {m} (the hosts provision manages are Debian: auto or apt)")));
    }
    if let Some(s) = a.strategy.filter(|s| s != "first" && s != "all") {
        return Err(ModuleError::Args(format!("package_facts: strategy must be first or all, got '{s}'")));
    }
    Ok(PackageFactsTask)
}

/// Installed packages from `dpkg --print-architecture` then `dpkg-query` lines
/// (`Package\tVersion\tArchitecture\tSection\tStatus-Abbrev`).
fn packages(out: &str) -> Map<String, Value> {
    let mut lines = out.lines();
    let native = lines.next().unwrap_or("").trim().to_string();
    let mut all = Map::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, version, arch, section, status] = f[..] else { continue };
        // Installed in some state (apt's "current version"): not "not-installed", not "config-files".
        if matches!(status.as_bytes().get(1), None | Some(b'n') | Some(b'c')) {
            continue;
        }
        let name = if arch == native || arch == "all" || arch.is_empty() { name.to_string() } else { format!("{name}:{arch}") };
        let entry = json!({"name": name, "version": version, "arch": arch, "category": section, "source": "apt"});
        match all.get_mut(&name) {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                all.insert(name, json!([entry]));
            }
        }
    }
    all
}

impl ModuleTask for PackageFactsTask {
    fn probes(&self) -> Vec<Probe> {
        let script = "dpkg --print-architecture && dpkg-query -W -f='${Package}\\t${Version}\\t${Architecture}\\t${Section}\\t${db:Status-Abbrev}\\n'";
        vec![Probe::new(script, Scope::Paths(vec!["/var/lib/dpkg".into()]))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let p = probes.first().ok_or_else(|| ModuleError::Probe("package_facts: no probe result".into()))?;
        if p.rc != 0 {
            return Ok(Plan { failed: Some(format!("Unable to list packages rc={} : {}", p.rc, p.stderr.trim())), ..Plan::ok() });
        }
        let packages = Value::Object(packages(&p.stdout));
        let mut plan = Plan::ok();
        plan.facts.insert("packages".into(), packages.clone());
        plan.facts.insert("ansible_facts".into(), json!({"packages": packages}));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn installed_packages_by_name_as_ansible_lists_them() {
        let out = "amd64\nnginx\t1.22.1-9\tamd64\thttpd\tii \nlibc6\t2.36-9\tamd64\tlibs\tii \nlibc6\t2.36-9\ti386\tlibs\tii \ntzdata\t2024a-0\tall\tlocaltime\tii \nunzip\t6.0-28\tamd64\tutils\trc \nold\t1.0\tamd64\tutils\tun \nhalf\t2.0\tamd64\tutils\tiU \n";
        let t = build(&Map::new()).unwrap();
        let plan = t.plan(&[ProbeResult { stdout: out.into(), stderr: String::new(), rc: 0 }]).unwrap();
        let p = &plan.facts["packages"];
        assert_eq!(p["nginx"], json!([{"name": "nginx", "version": "1.22.1-9", "arch": "amd64", "category": "httpd", "source": "apt"}]));
        assert_eq!(p["libc6:i386"][0]["arch"], json!("i386"));
        assert_eq!(p["tzdata"][0]["version"], json!("2024a-0"));
        assert!(p.get("unzip").is_none() && p.get("old").is_none(), "removed packages are not installed");
        assert!(p.get("half").is_some(), "unpacked counts as installed, as for apt");
        assert_eq!(plan.facts["ansible_facts"]["packages"], *p);
        assert!(!plan.changed());
    }

    #[test]
    fn only_apt() {
        assert!(build(json!({"manager": ["auto"], "strategy": "all"}).as_object().unwrap()).is_ok());
        assert!(build(json!({"manager": "rpm"}).as_object().unwrap()).unwrap_err().to_string().contains("Unsupported package managers requested: rpm"));
    }
}
