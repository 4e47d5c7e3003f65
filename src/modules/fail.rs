//! `fail`: fail the task with `msg` (default "Failed as requested from task").

use super::args;
use super::{Module, ModuleError, ModuleTask, Plan, PrepareContext, ProbeResult};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct FailModule;

const PARAMS: &[&str] = &["msg"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    msg: Option<Value>,
}

#[derive(Debug)]
struct FailTask {
    msg: Value,
}

impl Module for FailModule {
    fn name(&self) -> &'static str {
        "fail"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("fail", PARAMS, args)?;
        let msg = a
            .msg
            .filter(|m| !m.is_null())
            .unwrap_or_else(|| json!("Failed as requested from task"));
        Ok(Box::new(FailTask { msg }))
    }
}

impl ModuleTask for FailTask {
    fn plan(&self, _probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        plan.failed = Some(match &self.msg {
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        });
        plan.result.insert("msg".into(), self.msg.clone());
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_with_message() {
        let p = FailTask { msg: json!("boom") }.plan(&[]).unwrap();
        assert_eq!(p.failed.as_deref(), Some("boom"));
        let t = FailModule;
        let templar = crate::template::Templar::new();
        let vars = crate::template::Vars::new();
        let ctx = PrepareContext {
            templar: &templar,
            vars: &vars,
            host: "h",
            role_path: None,
            playbook_dir: std::path::Path::new("/tmp"),
            run_as: "root",
        };
        let p = t.prepare(&Map::new(), &ctx).unwrap().plan(&[]).unwrap();
        assert_eq!(p.failed.as_deref(), Some("Failed as requested from task"));
    }
}
