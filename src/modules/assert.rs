//! `assert`: evaluate conditions (`that`, a string or a list, like `when:`); fail with
//! `fail_msg` (alias `msg`) naming the first false one, else "All assertions passed".

use super::args::{self, opt_boolish};
use super::{Module, ModuleError, ModuleTask, Plan, PrepareContext, ProbeResult};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct AssertModule;

const PARAMS: &[&str] = &["that", "fail_msg", "msg", "success_msg", "quiet"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    that: Value,
    #[serde(default, alias = "msg")]
    fail_msg: Option<Value>,
    #[serde(default)]
    success_msg: Option<Value>,
    #[serde(default, deserialize_with = "opt_boolish")]
    quiet: Option<bool>,
}

#[derive(Debug)]
struct AssertTask {
    plan: Plan,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Module for AssertModule {
    fn name(&self) -> &'static str {
        "assert"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("assert", PARAMS, args)?;
        let conditions: Vec<Value> = match a.that {
            Value::Array(v) => v,
            Value::Null => return Err(ModuleError::Args("assert: 'that' is required".into())),
            other => vec![other],
        };
        let mut plan = Plan::ok();
        for c in &conditions {
            let ok = match c {
                // The executor renders arguments first: `that: "{{ x }}"` arrives as a value.
                Value::String(expr) => ctx.templar.eval_condition(expr, ctx.vars)?,
                other => args::truthy(other).unwrap_or(
                    !matches!(other, Value::Array(a) if a.is_empty())
                        && !matches!(other, Value::Object(o) if o.is_empty()),
                ),
            };
            if !ok {
                let msg = a
                    .fail_msg
                    .as_ref()
                    .map(text)
                    .unwrap_or_else(|| "Assertion failed".into());
                plan.failed = Some(msg.clone());
                plan.result.insert("assertion".into(), c.clone());
                plan.result.insert("evaluated_to".into(), json!(false));
                plan.result
                    .insert("msg".into(), a.fail_msg.clone().unwrap_or(json!(msg)));
                return Ok(Box::new(AssertTask { plan }));
            }
        }
        let msg = a
            .success_msg
            .as_ref()
            .map(text)
            .unwrap_or_else(|| "All assertions passed".into());
        if !a.quiet.unwrap_or(false) {
            plan.msg = Some(msg.clone());
        }
        plan.result.insert("msg".into(), json!(msg));
        Ok(Box::new(AssertTask { plan }))
    }
}

impl ModuleTask for AssertTask {
    fn plan(&self, _probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        Ok(self.plan.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Templar, Vars};

    fn run(args: Value) -> Plan {
        let templar = Templar::new();
        let mut vars = Vars::new();
        vars.insert("x".into(), json!(3));
        let ctx = PrepareContext {
            templar: &templar,
            vars: &vars,
            host: "h",
            role_path: None,
            playbook_dir: std::path::Path::new("/tmp"),
            run_as: "root",
        };
        AssertModule
            .prepare(args.as_object().unwrap(), &ctx)
            .unwrap()
            .plan(&[])
            .unwrap()
    }

    #[test]
    fn passes_and_fails() {
        let p = run(json!({"that": ["x == 3", "x > 1"]}));
        assert!(p.failed.is_none());
        assert_eq!(p.msg.as_deref(), Some("All assertions passed"));
        let p = run(json!({"that": ["x == 3", "x > 5"], "fail_msg": "too small"}));
        assert_eq!(p.failed.as_deref(), Some("too small"));
        assert_eq!(p.result["assertion"], "x > 5");
        let p = run(json!({"that": "x is defined and y is not defined", "msg": "m"}));
        assert!(p.failed.is_none());
        let p = run(json!({"that": false}));
        assert_eq!(p.failed.as_deref(), Some("Assertion failed"));
        let p = run(json!({"that": "x == 3", "quiet": true, "success_msg": "fine"}));
        assert!(p.msg.is_none());
        assert_eq!(p.result["msg"], "fine");
    }
}
