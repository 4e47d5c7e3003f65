//! `debug`: show a message (`msg`, default "Hello world!") or a variable (`var`, a bare
//! expression). No host access. `verbosity` is returned as `_verbosity` for the executor to
//! decide whether to show it.

use super::args;
use super::{Module, ModuleError, ModuleTask, Plan, PrepareContext, ProbeResult};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct DebugModule;

const PARAMS: &[&str] = &["msg", "var", "verbosity"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    msg: Option<Value>,
    #[serde(default)]
    var: Option<Value>,
    #[serde(default)]
    verbosity: Option<Value>,
}

#[derive(Debug)]
struct DebugTask {
    plan: Plan,
}

/// How a value is shown in a message: strings as is, anything else as pretty JSON.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    }
}

impl Module for DebugModule {
    fn name(&self) -> &'static str {
        "debug"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("debug", PARAMS, args)?;
        let mut plan = Plan::ok();
        let verbosity = match &a.verbosity {
            None | Some(Value::Null) => 0,
            Some(v) => args::scalar_string(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ModuleError::Args(format!("debug: verbosity must be an integer, got {v}"))
                })?,
        };
        plan.result.insert("_verbosity".into(), json!(verbosity));
        match (a.msg, a.var) {
            (Some(_), Some(_)) => {
                return Err(ModuleError::Args(
                    "debug: msg and var are mutually exclusive".into(),
                ))
            }
            (_, Some(var)) => {
                let (name, value) = match &var {
                    Value::String(expr) => {
                        let value = match ctx.templar.eval_expr(expr, ctx.vars) {
                            Ok(v) => v,
                            Err(e) if e.message.contains("undefined") => {
                                json!("VARIABLE IS NOT DEFINED!")
                            }
                            Err(e) => return Err(e.into()),
                        };
                        (expr.clone(), value)
                    }
                    // Already rendered by the executor (`var: "{{ x }}"`): show the value.
                    other => (display(other), other.clone()),
                };
                plan.msg = Some(format!("{name}: {}", display(&value)));
                plan.result.insert(name, value);
            }
            (msg, None) => {
                let msg = msg
                    .filter(|m| !m.is_null())
                    .unwrap_or_else(|| json!("Hello world!"));
                plan.msg = Some(display(&msg));
                plan.result.insert("msg".into(), msg);
            }
        }
        Ok(Box::new(DebugTask { plan }))
    }
}

impl ModuleTask for DebugTask {
    fn plan(&self, _probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        Ok(self.plan.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Templar, Vars};

    fn run(args: Value, vars: &Vars) -> Plan {
        let templar = Templar::new();
        let dir = std::path::Path::new("/tmp");
        let ctx = PrepareContext {
            templar: &templar,
            vars,
            host: "web1",
            role_path: None,
            playbook_dir: dir,
            run_as: "root",
        };
        DebugModule
            .prepare(args.as_object().unwrap(), &ctx)
            .unwrap()
            .plan(&[])
            .unwrap()
    }

    #[test]
    fn messages_and_variables() {
        let mut vars = Vars::new();
        vars.insert("result".into(), json!({"stdout_lines": ["a", "b"]}));
        let p = run(json!({}), &vars);
        assert_eq!(p.msg.as_deref(), Some("Hello world!"));
        let p = run(json!({"msg": ["x", 1], "verbosity": "2"}), &vars);
        assert_eq!(p.result["msg"], json!(["x", 1]));
        assert_eq!(p.result["_verbosity"], 2);
        let p = run(json!({"var": "result.stdout_lines"}), &vars);
        assert_eq!(p.result["result.stdout_lines"], json!(["a", "b"]));
        assert!(p.msg.unwrap().starts_with("result.stdout_lines: [\n"));
        let p = run(json!({"var": "nope"}), &vars);
        assert_eq!(p.result["nope"], "VARIABLE IS NOT DEFINED!");
        assert!(!p.changed());
    }
}
