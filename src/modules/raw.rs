//! `raw`: run a command line on the host as it is, with no module around it (Ansible's
//! way to bootstrap Python; nothing here needs Python, but playbooks have it). With
//! `executable`, the line goes to `executable -c`; without, to the connection's shell.
//! Always changed when it runs; a non-zero exit fails it ("non-zero return code"). The result
//! is Ansible's: `rc`, `stdout`, `stdout_lines`, `stderr`, `stderr_lines` (output as it came,
//! not stripped). Skipped in check mode, as in Ansible. Unlike Ansible (which warns and
//! ignores it), the task's `environment` is exported before the line runs.

use super::args::{self, opt_string};
use super::{sh_quote, Action, ActionOutput, CheckSupport, Module, ModuleError, ModuleTask, Plan, PrepareContext, Scope};
use serde::Deserialize;
use serde_json::{Map, Value};

pub struct RawModule;

const PARAMS: &[&str] = &["_raw_params", "executable"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    _raw_params: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    executable: Option<String>,
}

#[derive(Debug)]
struct RawTask {
    script: String,
    line: String,
}

impl Module for RawModule {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn free_form(&self) -> Option<&'static str> {
        Some("_raw_params")
    }
    fn prepare(&self, args: &Map<String, Value>, _ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build(args)?))
    }
}

fn build(args: &Map<String, Value>) -> Result<RawTask, ModuleError> {
    let a: Args = args::parse("raw", PARAMS, args)?;
    let line = a._raw_params.filter(|s| !s.trim().is_empty()).ok_or_else(|| ModuleError::Args("raw: no command given".into()))?;
    let script = match a.executable.filter(|e| !e.trim().is_empty()) {
        Some(exe) => format!("exec {} -c {}", sh_quote(&exe), sh_quote(&line)),
        None => line.clone(),
    };
    Ok(RawTask { script, line })
}

impl ModuleTask for RawTask {
    fn plan(&self, _probes: &[super::ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        plan.actions.push(Action::new(format!("run {}", self.line), self.script.clone(), Scope::Host).may_fail());
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        if let Some(out) = outputs.first() {
            super::command::fill_result(&mut plan, false, out.exit_code, &out.stdout_str(), &out.stderr_str());
            // Ansible's raw result has no empty `msg` on success.
            if plan.failed.is_none() {
                plan.result.remove("msg");
            }
        }
        plan.changed = Some(true);
        Ok(plan)
    }

    fn check_support(&self) -> CheckSupport {
        CheckSupport::SkipIfActions
    }

    fn check_skip_reason(&self) -> &'static str {
        "skipped in check mode: raw commands are not run"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_the_line_as_it_is_or_through_executable() {
        let t = build(json!({"_raw_params": "echo $HOME > /tmp/x"}).as_object().unwrap()).unwrap();
        let plan = t.plan(&[]).unwrap();
        assert_eq!(plan.actions[0].script, "echo $HOME > /tmp/x");
        assert!(plan.actions[0].may_fail);
        let t = build(json!({"_raw_params": "[[ -n $BASH ]]", "executable": "/bin/bash"}).as_object().unwrap()).unwrap();
        assert_eq!(t.plan(&[]).unwrap().actions[0].script, "exec /bin/bash -c '[[ -n $BASH ]]'");
        assert_eq!(t.check_support(), CheckSupport::SkipIfActions);
        assert!(build(json!({"executable": "/bin/sh"}).as_object().unwrap()).is_err());
        assert!(build(json!({"_raw_params": "x", "chdir": "/"}).as_object().unwrap()).is_err());
    }

    #[test]
    fn result_is_ansibles_with_output_unstripped() {
        let t = build(json!({"_raw_params": "echo hi"}).as_object().unwrap()).unwrap();
        let out = ActionOutput { stdout: b"hi\n".to_vec(), stderr: vec![], exit_code: 0 };
        let plan = t.finish(t.plan(&[]).unwrap(), &[out]).unwrap();
        assert_eq!(plan.result["stdout"], json!("hi\n"));
        assert_eq!(plan.result["stdout_lines"], json!(["hi"]));
        assert_eq!(plan.result["rc"], json!(0));
        assert!(plan.result.get("msg").is_none() && plan.changed() && plan.failed.is_none());
        let bad = ActionOutput { stdout: vec![], stderr: b"nope\n".to_vec(), exit_code: 2 };
        let plan = t.finish(t.plan(&[]).unwrap(), &[bad]).unwrap();
        assert_eq!(plan.failed.as_deref(), Some("non-zero return code"));
        assert_eq!(plan.result["stderr"], json!("nope\n"));
    }
}
