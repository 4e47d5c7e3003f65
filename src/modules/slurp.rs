//! `slurp`: read a file from the host into the result (`content` base64, `encoding`, `source`).
//! Read-only: one probe, no actions; fails when the file is missing, a directory or unreadable.

use super::args;
use super::{
    sh_quote, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct SlurpModule;

const PARAMS: &[&str] = &["src", "path"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "path")]
    src: String,
}

#[derive(Debug)]
struct SlurpTask {
    src: String,
}

impl Module for SlurpModule {
    fn name(&self) -> &'static str {
        "slurp"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("slurp", PARAMS, args)?;
        Ok(Box::new(SlurpTask { src: a.src }))
    }
}

impl ModuleTask for SlurpTask {
    fn probes(&self) -> Vec<Probe> {
        let s = format!(
            "p={}\nif [ -d \"$p\" ]; then echo dir; elif [ ! -e \"$p\" ]; then echo missing; elif [ ! -r \"$p\" ]; then echo unreadable; else echo ok; base64 -w0 < \"$p\" || exit 1; echo; fi\n",
            sh_quote(&self.src)
        );
        vec![Probe::new(s, Scope::path(&self.src))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes
            .first()
            .ok_or_else(|| ModuleError::Probe("slurp: missing probe".into()))?;
        if r.rc != 0 {
            return Err(ModuleError::Failed(format!(
                "cannot read {}: {}",
                self.src,
                r.stderr.trim()
            )));
        }
        let mut lines = r.stdout.lines();
        let mut plan = Plan::ok();
        match lines.next().unwrap_or("").trim() {
            "ok" => {
                plan.result
                    .insert("content".into(), json!(lines.next().unwrap_or("").trim()));
                plan.result.insert("encoding".into(), json!("base64"));
                plan.result.insert("source".into(), json!(self.src));
            }
            "dir" => {
                plan.failed = Some(format!(
                    "source is a directory and must be a file: {}",
                    self.src
                ))
            }
            "missing" => plan.failed = Some(format!("file not found: {}", self.src)),
            "unreadable" => plan.failed = Some(format!("file is not readable: {}", self.src)),
            other => return Err(ModuleError::Probe(format!("slurp: '{other}'"))),
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::apply;

    #[test]
    fn reads_files_and_fails_on_missing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "hello\n").unwrap();
        let t = SlurpTask {
            src: f.display().to_string(),
        };
        let p = apply(&t);
        assert_eq!(p.result["content"], "aGVsbG8K");
        assert_eq!(p.result["encoding"], "base64");
        assert!(p.failed.is_none());
        let t = SlurpTask {
            src: dir.path().join("nope").display().to_string(),
        };
        assert!(apply(&t).failed.unwrap().starts_with("file not found"));
        let t = SlurpTask {
            src: dir.path().display().to_string(),
        };
        assert!(apply(&t).failed.unwrap().contains("directory"));
        std::fs::write(&f, "").unwrap();
        let t = SlurpTask {
            src: f.display().to_string(),
        };
        assert_eq!(apply(&t).result["content"], "");
    }
}
