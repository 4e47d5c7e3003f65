//! `set_fact`: set host variables from the (already rendered) arguments. Takes arbitrary keys,
//! so `params()` is empty (the argument check is skipped) and `prepare` accepts every key except
//! `cacheable` (ignored). Like Ansible, the strings yes/no/true/false become booleans.

use super::args::truthy;
use super::{Module, ModuleError, ModuleTask, Plan, PrepareContext, ProbeResult};
use serde_json::{Map, Value};

pub struct SetFactModule;

#[derive(Debug)]
struct SetFactTask {
    facts: Map<String, Value>,
}

impl Module for SetFactModule {
    fn name(&self) -> &'static str {
        "set_fact"
    }
    fn params(&self) -> &'static [&'static str] {
        &[]
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let mut facts = Map::new();
        for (k, v) in args {
            if k == "cacheable" {
                continue;
            }
            if !crate::template::is_identifier(k) {
                return Err(ModuleError::Args(format!("set_fact: the variable name '{k}' is not valid. Variables must start with a letter or underscore character, and contain only letters, numbers and underscores.")));
            }
            let v = match v {
                Value::String(s)
                    if matches!(
                        s.to_ascii_lowercase().as_str(),
                        "yes" | "no" | "true" | "false"
                    ) =>
                {
                    Value::Bool(truthy(v).unwrap_or(false))
                }
                other => other.clone(),
            };
            facts.insert(k.clone(), v);
        }
        if facts.is_empty() {
            return Err(ModuleError::Args(
                "set_fact: no key/value pairs provided, at least one is required".into(),
            ));
        }
        Ok(Box::new(SetFactTask { facts }))
    }
}

impl ModuleTask for SetFactTask {
    fn plan(&self, _probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        Ok(Plan {
            facts: self.facts.clone(),
            ..Plan::ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Templar, Vars};
    use serde_json::json;

    fn prep(args: Value) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let templar = Templar::new();
        let vars = Vars::new();
        let ctx = PrepareContext {
            templar: &templar,
            vars: &vars,
            host: "h",
            role_path: None,
            playbook_dir: std::path::Path::new("/tmp"),
            run_as: "root",
        };
        SetFactModule.prepare(args.as_object().unwrap(), &ctx)
    }

    #[test]
    fn facts_from_arguments() {
        let p = prep(json!({"a": 1, "flag": "yes", "s": "text", "cacheable": true}))
            .unwrap()
            .plan(&[])
            .unwrap();
        assert_eq!(
            Value::Object(p.facts.clone()),
            json!({"a": 1, "flag": true, "s": "text"})
        );
        assert!(!p.changed());
        assert!(prep(json!({"bad-name": 1})).is_err());
        assert!(prep(json!({})).is_err());
    }
}
