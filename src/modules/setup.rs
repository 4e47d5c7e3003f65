//! `setup` (`gather_facts` as a module): gather the host's facts again, or for the first time
//! in a play with `gather_facts: false`. The same script and parser as the play's own fact
//! gathering (one probe, no actions, so it also runs in check mode); the facts it returns join
//! the host's facts, and `filter` keeps only the names matching its shell-style patterns
//! (`ansible_distribution*`), as Ansible's does.
//!
//! `gather_subset` and `gather_timeout` are accepted: the facts here are one short script, so
//! every subset is the whole set. Custom facts (`fact_path`, `ansible_local`) are not read.

use super::args;
use super::{Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope};
use crate::executor::facts;
use serde::Deserialize;
use serde_json::{Map, Value};

pub struct SetupModule;

const PARAMS: &[&str] = &["filter", "gather_subset", "gather_timeout", "fact_path"];

/// Where Ansible looks for custom facts unless told otherwise (the only value accepted).
const DEFAULT_FACT_PATH: &str = "/etc/ansible/facts.d";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    gather_subset: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    gather_timeout: Option<Value>,
    #[serde(default)]
    fact_path: Option<String>,
}

#[derive(Debug)]
struct SetupTask {
    filter: Vec<globset::GlobMatcher>,
}

impl Module for SetupModule {
    fn name(&self) -> &'static str {
        "setup"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["gather_facts"]
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, _ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("setup", PARAMS, args)?;
        if let Some(p) = a.fact_path.as_deref().filter(|p| p.trim_end_matches('/') != DEFAULT_FACT_PATH) {
            return Err(ModuleError::Args(format!("setup: custom facts are not read, so fact_path '{p}' would be ignored")));
        }
        let patterns: Vec<String> = match a.filter {
            None | Some(Value::Null) => vec![],
            Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| ModuleError::Args(format!("setup: filter patterns must be strings, got {v}")))).collect::<Result<_, _>>()?,
            Some(other) => return Err(ModuleError::Args(format!("setup: filter must be a pattern or a list of them, got {other}"))),
        };
        let filter = patterns
            .iter()
            .map(|p| globset::GlobBuilder::new(p).literal_separator(false).build().map(|g| g.compile_matcher()).map_err(|e| ModuleError::Args(format!("setup: filter '{p}': {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(Box::new(SetupTask { filter }))
    }
}

impl SetupTask {
    /// Whether the fact `name` (`ansible_distribution`) is kept. Ansible matches the pattern
    /// against the name with its `ansible_` prefix, and without it for patterns that have none.
    fn keeps(&self, name: &str) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|g| g.is_match(name) || name.strip_prefix("ansible_").is_some_and(|bare| g.is_match(bare)))
    }
}

impl ModuleTask for SetupTask {
    fn probes(&self) -> Vec<Probe> {
        // The facts may say anything about the host: stale after any change.
        vec![Probe::new(format!("{}{}", facts::FACTS_SCRIPT, facts::MOUNTS_SCRIPT), Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("setup: missing probe".into()))?;
        if r.rc != 0 {
            return Err(ModuleError::Failed(format!("gathering facts failed (exit {}): {}", r.rc, r.stderr.trim())));
        }
        let mut gathered = facts::parse(&r.stdout);
        gathered.shift_remove("ansible_facts");
        let mut plan = Plan::ok();
        let mut bare = Map::new();
        for (name, value) in gathered {
            if self.keeps(&name) {
                if let Some(b) = name.strip_prefix("ansible_") {
                    bare.insert(b.to_string(), value.clone());
                }
                plan.facts.insert(name, value);
            }
        }
        // The `ansible_facts` namespace: merged into the host's by the executor.
        plan.facts.insert("ansible_facts".into(), Value::Object(bare));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::apply;
    use serde_json::json;

    fn task(args: Value) -> Result<Box<dyn ModuleTask>, ModuleError> {
        crate::modules::testutil::prepare(&SetupModule, args, std::path::Path::new("."))
    }

    #[test]
    fn gathers_this_machines_facts_with_and_without_a_filter() {
        let all = apply(task(json!({})).unwrap().as_ref());
        assert!(all.actions.is_empty() && all.failed.is_none());
        let distribution = all.facts["ansible_distribution"].clone();
        assert!(distribution.is_string() && distribution != "", "{:?}", all.facts);
        assert_eq!(all.facts["ansible_facts"]["distribution"], distribution);
        assert!(all.facts.contains_key("ansible_hostname") && all.facts.contains_key("ansible_date_time"));

        // A pattern with the prefix, one without it, and a list.
        for filter in [json!("ansible_distribution*"), json!("distribution*"), json!(["ansible_distribution", "ansible_distribution_*"])] {
            let some = apply(task(json!({"filter": filter})).unwrap().as_ref());
            let names: Vec<&String> = some.facts.keys().collect();
            assert!(names.iter().all(|n| n.starts_with("ansible_distribution") || *n == "ansible_facts"), "{filter}: {names:?}");
            assert!(some.facts.contains_key("ansible_distribution_major_version"), "{filter}: {names:?}");
            assert_eq!(some.facts["ansible_facts"]["distribution"], distribution);
            assert!(some.facts["ansible_facts"].get("hostname").is_none());
        }
        let none = apply(task(json!({"filter": "no_such_fact"})).unwrap().as_ref());
        assert_eq!(none.facts.keys().collect::<Vec<_>>(), ["ansible_facts"]);
        assert_eq!(none.facts["ansible_facts"], json!({}));
    }

    #[test]
    fn refuses_what_it_would_ignore() {
        assert!(task(json!({"gather_subset": ["!all", "min"], "gather_timeout": 10, "fact_path": "/etc/ansible/facts.d/"})).is_ok());
        let e = task(json!({"fact_path": "/srv/facts"})).err().unwrap().to_string();
        assert!(e.contains("fact_path '/srv/facts'"), "{e}");
        let e = task(json!({"filter": {"a": 1}})).err().unwrap().to_string();
        assert!(e.contains("filter must be"), "{e}");
        let e = task(json!({"fiter": "x"})).err().unwrap().to_string();
        assert!(e.contains("unsupported parameter 'fiter'"), "{e}");
    }

    #[test]
    fn a_failed_gathering_fails_the_task() {
        let t = task(json!({})).unwrap();
        let e = t.plan(&[ProbeResult { rc: 2, stdout: String::new(), stderr: "boom".into() }]).unwrap_err().to_string();
        assert!(e.contains("exit 2") && e.contains("boom"), "{e}");
    }
}
