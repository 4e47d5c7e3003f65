//! `tempfile`: create a temporary file or directory on the host with `mktemp` (mode 0600 /
//! 0700, named `<prefix><8 random characters><suffix>` in `path`, else `$TMPDIR` or `/tmp`, as
//! Python's `mkstemp`/`mkdtemp` name them) and register its `path` with the file's owner, mode,
//! state and size, as Ansible's module returns them. Always changed; like Ansible's module
//! (no check mode support) it is skipped in check mode.

use super::args::{self, opt_string};
use super::{sh_quote, Action, ActionOutput, CheckSupport, ModuleError, ModuleTask, Plan, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct TempfileModule;

const PARAMS: &[&str] = &["state", "path", "prefix", "suffix"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    path: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    prefix: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    suffix: Option<String>,
}

#[derive(Debug)]
struct TempfileTask {
    directory: bool,
    path: Option<String>,
    prefix: String,
    suffix: String,
}

module_impl!(TempfileModule, "tempfile");

fn build(args: &Map<String, Value>) -> Result<TempfileTask, ModuleError> {
    let a: Args = args::parse("tempfile", PARAMS, args)?;
    let directory = match a.state.as_deref().unwrap_or("file") {
        "file" => false,
        "directory" => true,
        s => return Err(ModuleError::Args(format!("tempfile: value of state must be one of: file, directory, got: {s}"))),
    };
    let prefix = a.prefix.unwrap_or_else(|| "ansible.".into());
    let suffix = a.suffix.unwrap_or_default();
    for (name, v) in [("prefix", &prefix), ("suffix", &suffix)] {
        if v.contains('/') {
            return Err(ModuleError::Args(format!("tempfile: {name} must be a valid file name component, got '{v}'")));
        }
    }
    Ok(TempfileTask { directory, path: a.path.filter(|p| !p.is_empty()), prefix, suffix })
}

impl TempfileTask {
    fn script(&self) -> String {
        let dir = match &self.path {
            Some(p) => sh_quote(p),
            None => "\"${TMPDIR:-/tmp}\"".into(),
        };
        let mut cmd = format!("mktemp{} -p {dir}", if self.directory { " -d" } else { "" });
        if !self.suffix.is_empty() {
            cmd.push_str(&format!(" --suffix={}", sh_quote(&self.suffix)));
        }
        cmd.push_str(&format!(" -- {}", sh_quote(&format!("{}XXXXXXXX", self.prefix))));
        format!("p=$({cmd}) || exit\nprintf '%s\\n' \"$p\"\nstat -c '%u|%g|%U|%G|%a|%s' -- \"$p\"")
    }
}

impl ModuleTask for TempfileTask {
    fn plan(&self, _probes: &[super::ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        let what = if self.directory { "directory" } else { "file" };
        plan.actions.push(Action::new(format!("create a temporary {what}"), self.script(), Scope::Nothing));
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let Some(out) = outputs.first().filter(|o| o.exit_code == 0) else { return Ok(plan) };
        let text = out.stdout_str();
        let mut lines = text.lines();
        let (Some(path), Some(stat)) = (lines.next(), lines.next()) else {
            return Err(ModuleError::Probe(format!("tempfile: mktemp printed '{}'", text.trim())));
        };
        let f: Vec<&str> = stat.split('|').collect();
        let [uid, gid, owner, group, mode, size] = f[..] else {
            return Err(ModuleError::Probe(format!("tempfile: stat printed '{stat}'")));
        };
        let num = |s: &str| s.parse::<u64>().map(|n| json!(n)).unwrap_or_else(|_| json!(s));
        plan.result.insert("path".into(), json!(path));
        plan.result.insert("uid".into(), num(uid));
        plan.result.insert("gid".into(), num(gid));
        plan.result.insert("owner".into(), json!(owner));
        plan.result.insert("group".into(), json!(group));
        plan.result.insert("mode".into(), json!(format!("{:0>4}", mode)));
        plan.result.insert("state".into(), json!(if self.directory { "directory" } else { "file" }));
        plan.result.insert("size".into(), num(size));
        Ok(plan)
    }

    fn check_support(&self) -> CheckSupport {
        CheckSupport::SkipIfActions
    }

    fn check_skip_reason(&self) -> &'static str {
        "remote module (tempfile) does not support check mode"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(args: Value) -> TempfileTask {
        build(args.as_object().unwrap()).unwrap()
    }

    #[test]
    fn mktemp_names_it_as_python_does() {
        let t = task(json!({}));
        assert!(t.script().starts_with("p=$(mktemp -p \"${TMPDIR:-/tmp}\" -- ansible.XXXXXXXX) || exit\n"), "{}", t.script());
        let t = task(json!({"state": "directory", "path": "/srv/work dir", "prefix": "build-", "suffix": ".d"}));
        assert!(t.script().starts_with("p=$(mktemp -d -p '/srv/work dir' --suffix=.d -- build-XXXXXXXX) || exit\n"), "{}", t.script());
        // The script runs as written: a real file, then a real directory.
        for (t, kind) in [(task(json!({"path": "/tmp", "prefix": "prov-test."})), "file"), (task(json!({"state": "directory", "path": "/tmp", "suffix": ".x"})), "directory")] {
            let out = std::process::Command::new("sh").arg("-c").arg(t.script()).output().unwrap();
            let plan = t.finish(t.plan(&[]).unwrap(), &[ActionOutput { stdout: out.stdout, stderr: out.stderr, exit_code: out.status.code().unwrap() }]).unwrap();
            let path = plan.result["path"].as_str().unwrap().to_string();
            assert_eq!(plan.result["state"], json!(kind));
            assert_eq!(plan.result["mode"], json!(if kind == "file" { "0600" } else { "0700" }));
            assert!(std::path::Path::new(&path).exists());
            let name = std::path::Path::new(&path).file_name().unwrap().to_str().unwrap().to_string();
            assert_eq!(name.len(), if kind == "file" { "prov-test.".len() + 8 } else { "ansible.".len() + 8 + 2 }, "{name}");
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir(&path));
        }
    }

    #[test]
    fn always_changed_never_in_check_mode_and_refuses_paths_in_names() {
        let t = task(json!({}));
        assert!(t.plan(&[]).unwrap().changed());
        assert_eq!(t.check_support(), CheckSupport::SkipIfActions);
        assert!(build(json!({"prefix": "a/b"}).as_object().unwrap()).unwrap_err().to_string().contains("prefix must be a valid file name component"));
        assert!(build(json!({"state": "link"}).as_object().unwrap()).is_err());
    }
}
