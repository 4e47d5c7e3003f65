//! `getent`: read a name service database on the host (`passwd`, `group`, `hosts`,
//! `services`...) into the fact `getent_<database>`: each entry's first field maps to its other
//! fields (a key listed more than once maps to a list of them), as Ansible's module builds it.
//! Colon-separated databases (`passwd`, `shadow`, `group`, `gshadow`) split at `:`, the
//! others at whitespace, unless `split` says. Also `ansible_facts.getent_<database>`. A probe, so it runs in check mode too; a
//! missing `key` fails the task unless `fail_key: false` (then the key maps to null).

use super::args::{self, opt_boolish, opt_string};
use super::{sh_quote, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct GetentModule;

const PARAMS: &[&str] = &["database", "key", "service", "split", "fail_key"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    database: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    key: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    service: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    split: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    fail_key: Option<bool>,
}

#[derive(Debug)]
struct GetentTask {
    database: String,
    key: Option<String>,
    service: Option<String>,
    /// None: whitespace.
    split: Option<String>,
    fail_key: bool,
}

module_impl!(GetentModule, "getent");

fn build(args: &Map<String, Value>) -> Result<GetentTask, ModuleError> {
    let a: Args = args::parse("getent", PARAMS, args)?;
    let database = a.database.filter(|d| !d.trim().is_empty()).ok_or_else(|| ModuleError::Args("getent: database is required".into()))?;
    let split = a.split.or_else(|| matches!(database.as_str(), "passwd" | "shadow" | "group" | "gshadow").then(|| ":".to_string()));
    Ok(GetentTask { database, key: a.key, service: a.service, split, fail_key: a.fail_key.unwrap_or(true) })
}

/// Python's `str.split(sep)` (`None`: runs of whitespace, no empty ends).
fn split_record<'a>(line: &'a str, sep: Option<&str>) -> Vec<&'a str> {
    match sep {
        Some(s) if !s.is_empty() => line.split(s).collect(),
        _ => line.split_whitespace().collect(),
    }
}

impl ModuleTask for GetentTask {
    fn probes(&self) -> Vec<Probe> {
        let mut cmd = format!("getent {}", sh_quote(&self.database));
        if let Some(k) = &self.key {
            cmd.push(' ');
            cmd.push_str(&sh_quote(k));
        }
        if let Some(s) = &self.service {
            cmd.push_str(&format!(" -s {}", sh_quote(s)));
        }
        // The databases change with users, groups and /etc files: any change makes it stale.
        vec![Probe::new(cmd, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let p = probes.first().ok_or_else(|| ModuleError::Probe("getent: no probe result".into()))?;
        let tree = format!("getent_{}", self.database);
        let mut entries = Map::new();
        let mut plan = Plan::ok();
        let msg = match p.rc {
            0 => {
                let mut seen: std::collections::HashMap<String, usize> = Default::default();
                for line in p.stdout.lines() {
                    let record = split_record(line, self.split.as_deref());
                    let Some(first) = record.first() else { continue };
                    let rest = json!(record[1..]);
                    let n = seen.entry(first.to_string()).or_insert(0);
                    *n += 1;
                    match (*n, entries.get_mut(*first)) {
                        (1, _) | (_, None) => {
                            entries.insert(first.to_string(), rest);
                        }
                        (2, Some(prev)) => *prev = json!([prev.clone(), rest]),
                        (_, Some(Value::Array(list))) => list.push(rest),
                        (_, Some(_)) => {}
                    }
                }
                plan.facts.insert("ansible_facts".into(), json!({&tree: entries}));
                plan.facts.insert(tree, Value::Object(entries));
                return Ok(plan);
            }
            1 => "Missing arguments, or database unknown.",
            2 => {
                let msg = "One or more supplied key could not be found in the database.";
                if !self.fail_key {
                    if let Some(k) = &self.key {
                        entries.insert(k.clone(), Value::Null);
                    }
                    plan.facts.insert("ansible_facts".into(), json!({&tree: entries}));
                    plan.facts.insert(tree, Value::Object(entries));
                    plan.msg = Some(msg.into());
                    return Ok(plan);
                }
                msg
            }
            3 => "Enumeration not supported on this database.",
            127 => return Err(ModuleError::Failed(format!("getent: not found on the host: {}", p.stderr.trim()))),
            _ => "Unexpected failure!",
        };
        plan.failed = Some(msg.into());
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(args: Value) -> GetentTask {
        build(args.as_object().unwrap()).unwrap()
    }

    fn out(stdout: &str, rc: i32) -> ProbeResult {
        ProbeResult { stdout: stdout.into(), stderr: String::new(), rc }
    }

    #[test]
    fn passwd_entries_split_at_colons() {
        let t = task(json!({"database": "passwd", "key": "root"}));
        assert_eq!(t.probes()[0].script, "getent passwd root");
        let plan = t.plan(&[out("root:x:0:0:root:/root:/bin/bash\n", 0)]).unwrap();
        assert_eq!(plan.facts["getent_passwd"], json!({"root": ["x", "0", "0", "root", "/root", "/bin/bash"]}));
        assert_eq!(plan.facts["ansible_facts"], json!({"getent_passwd": plan.facts["getent_passwd"]}));
        assert!(!plan.changed() && plan.failed.is_none());
    }

    #[test]
    fn other_databases_split_at_whitespace_and_repeated_keys_make_lists() {
        let t = task(json!({"database": "services", "service": "files"}));
        assert_eq!(t.probes()[0].script, "getent services -s files");
        let plan = t.plan(&[out("ssh                   22/tcp\nhttp   80/tcp www\nssh 22/udp\nssh 2222/tcp\n", 0)]).unwrap();
        assert_eq!(plan.facts["getent_services"], json!({"ssh": [["22/tcp"], ["22/udp"], ["2222/tcp"]], "http": ["80/tcp", "www"]}));
        let t = task(json!({"database": "hosts", "split": ","}));
        assert_eq!(t.plan(&[out("a,b,c\n", 0)]).unwrap().facts["getent_hosts"], json!({"a": ["b", "c"]}));
    }

    #[test]
    fn missing_keys_and_databases_as_ansible_reports_them() {
        let t = task(json!({"database": "passwd", "key": "nobody-here"}));
        assert_eq!(t.plan(&[out("", 2)]).unwrap().failed.as_deref(), Some("One or more supplied key could not be found in the database."));
        let t = task(json!({"database": "passwd", "key": "nobody-here", "fail_key": false}));
        let plan = t.plan(&[out("", 2)]).unwrap();
        assert!(plan.failed.is_none());
        assert_eq!(plan.facts["getent_passwd"], json!({"nobody-here": null}));
        assert_eq!(plan.msg.as_deref(), Some("One or more supplied key could not be found in the database."));
        let t = task(json!({"database": "nosuchdb"}));
        assert_eq!(t.plan(&[out("", 1)]).unwrap().failed.as_deref(), Some("Missing arguments, or database unknown."));
        assert_eq!(t.plan(&[out("", 3)]).unwrap().failed.as_deref(), Some("Enumeration not supported on this database."));
        assert!(build(json!({"key": "root"}).as_object().unwrap()).is_err());
    }
}
