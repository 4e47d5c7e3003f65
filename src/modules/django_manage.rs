//! `django_manage` (community.general.django_manage): run a Django `manage.py` command in a
//! project, with its virtualenv, settings and Python path, and tell from its output whether
//! it changed anything, as Ansible does: `migrate` when it applied a migration, `collectstatic`
//! when it copied or linked a file, `loaddata`/`flush` when objects were installed,
//! `createcachetable` unless the table existed; any other command is not a change.
//!
//! The command runs every time (Ansible's behaviour: Django alone knows what is pending), as
//! the task's user, from `project_path`, with `<virtualenv>/bin` first on `PATH` and
//! `VIRTUAL_ENV` set; `manage.py` is run by the virtualenv's `python` (else `python`, else
//! `python3`), so it needs no execute bit. `--noinput` is added to the commands that would
//! otherwise ask (`flush`, `migrate`, `test`, `collectstatic`, `syncdb`).
//!
//! Differences from Ansible: a missing virtualenv is an error (never created here: the `pip`
//! module does that); in check mode the task is skipped (Ansible's module has no check mode
//! either).

use super::args::{self, opt_boolish};
use super::{sh_quote, Action, ActionOutput, CheckSupport, ModuleError, ModuleTask, Plan, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct DjangoManageModule;

const PARAMS: &[&str] = &[
    "command",
    "project_path",
    "app_path",
    "chdir",
    "settings",
    "pythonpath",
    "python_path",
    "virtualenv",
    "virtual_env",
    "apps",
    "cache_table",
    "clear",
    "database",
    "failfast",
    "fail_fast",
    "fixtures",
    "skip",
    "merge",
    "link",
    "testrunner",
    "test_runner",
    "ack_venv_creation_deprecation",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    command: String,
    #[serde(alias = "app_path", alias = "chdir")]
    project_path: String,
    #[serde(default)]
    settings: Option<String>,
    #[serde(default, alias = "python_path")]
    pythonpath: Option<String>,
    #[serde(default, alias = "virtual_env")]
    virtualenv: Option<String>,
    #[serde(default)]
    apps: Option<String>,
    #[serde(default)]
    cache_table: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    clear: Option<bool>,
    #[serde(default)]
    database: Option<String>,
    #[serde(default, alias = "fail_fast", deserialize_with = "opt_boolish")]
    failfast: Option<bool>,
    #[serde(default)]
    fixtures: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    skip: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    merge: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    link: Option<bool>,
    #[serde(default, alias = "test_runner")]
    testrunner: Option<String>,
    #[serde(default, rename = "ack_venv_creation_deprecation", deserialize_with = "opt_boolish")]
    _ack: Option<bool>,
}

#[derive(Debug)]
struct DjangoTask {
    /// The command's first word (`migrate`), which decides the options and the change test.
    name: String,
    /// Every argument after `manage.py`.
    argv: Vec<String>,
    project_path: String,
    virtualenv: Option<String>,
    settings: Option<String>,
    pythonpath: Option<String>,
}

module_impl!(DjangoManageModule, "django_manage");

/// The options a command accepts among the module's own (Ansible's `command_allowed_param_map`).
fn allowed(command: &str) -> Option<&'static [&'static str]> {
    Some(match command {
        "cleanup" | "validate" | "check" => &[],
        "createcachetable" => &["cache_table", "database"],
        "flush" | "syncdb" => &["database"],
        "loaddata" => &["database", "fixtures"],
        "test" => &["failfast", "testrunner", "apps"],
        "migrate" => &["apps", "skip", "merge", "database"],
        "collectstatic" => &["clear", "link"],
        _ => return None,
    })
}

const NOINPUT: &[&str] = &["flush", "syncdb", "migrate", "test", "collectstatic"];

fn build(args: &Map<String, Value>) -> Result<DjangoTask, ModuleError> {
    let a: Args = args::parse("django_manage", PARAMS, args)?;
    let mut argv = shlex::split(&a.command).ok_or_else(|| ModuleError::Args(format!("django_manage: unbalanced quotes in command '{}'", a.command)))?;
    let Some(name) = argv.first().cloned() else {
        return Err(ModuleError::Args("django_manage: command is empty".into()));
    };
    let given: Vec<(&str, bool)> = vec![
        ("apps", a.apps.is_some()),
        ("cache_table", a.cache_table.is_some()),
        ("clear", a.clear == Some(true)),
        ("database", a.database.is_some()),
        ("failfast", a.failfast == Some(true)),
        ("fixtures", a.fixtures.is_some()),
        ("skip", a.skip == Some(true)),
        ("merge", a.merge == Some(true)),
        ("link", a.link == Some(true)),
        ("testrunner", a.testrunner.is_some()),
    ];
    let ok = allowed(&name).unwrap_or(&[]);
    if let Some((p, _)) = given.iter().find(|(p, set)| *set && !ok.contains(p)) {
        return Err(ModuleError::Args(format!("django_manage: {p} param is incompatible with command={name}")));
    }
    if name == "loaddata" && a.fixtures.is_none() {
        return Err(ModuleError::Args("django_manage: loaddata requires fixtures".into()));
    }
    if name == "createcachetable" && a.cache_table.is_none() {
        return Err(ModuleError::Args("django_manage: createcachetable requires cache_table".into()));
    }
    if NOINPUT.contains(&name.as_str()) && !argv.iter().any(|w| w == "--noinput" || w == "--no-input") {
        argv.push("--noinput".into());
    }
    if let Some(s) = &a.settings {
        argv.push(format!("--settings={s}"));
    }
    if let Some(p) = &a.pythonpath {
        argv.push(format!("--pythonpath={p}"));
    }
    if let Some(d) = &a.database {
        argv.push(format!("--database={d}"));
    }
    if let Some(t) = &a.testrunner {
        argv.push(format!("--testrunner={t}"));
    }
    for (flag, set) in [("clear", a.clear), ("failfast", a.failfast), ("skip", a.skip), ("merge", a.merge), ("link", a.link)] {
        if set == Some(true) {
            argv.push(format!("--{flag}"));
        }
    }
    // These go last, space-separated words as Ansible splits them.
    for v in [&a.apps, &a.cache_table, &a.fixtures].into_iter().flatten() {
        argv.extend(v.split_whitespace().map(str::to_string));
    }
    Ok(DjangoTask { name, argv, project_path: a.project_path, virtualenv: a.virtualenv, settings: a.settings, pythonpath: a.pythonpath })
}

/// Did the command change anything, from its output (Ansible's `*_filter_output` and
/// `*_check_changed`)?
fn changed(command: &str, out: &str) -> bool {
    let installed = |l: &str| l.contains("Installed") && !l.contains("Installed 0 object");
    match command {
        "migrate" => out.lines().any(|l| l.contains("Migrating forwards ") || installed(l) || l.contains("Applying")),
        "collectstatic" => out.lines().any(|l| !l.is_empty() && !l.contains("0 static files")),
        "loaddata" | "flush" => out.lines().any(installed),
        "syncdb" => out.lines().any(|l| l.contains("Creating table ") || installed(l)),
        "createcachetable" => !out.contains("already exists"),
        _ => false,
    }
}

impl DjangoTask {
    fn script(&self) -> String {
        let mut s = format!("cd {} || exit 3\n", sh_quote(&self.project_path));
        if let Some(v) = &self.virtualenv {
            let v = sh_quote(v);
            s.push_str(&format!(
                "[ -x {v}/bin/python ] || {{ echo \"django_manage: no virtualenv at \"{v} >&2; exit 3; }}\n\
                 export VIRTUAL_ENV={v} PATH={v}/bin:\"$PATH\"\n"
            ));
        }
        s.push_str("[ -f manage.py ] || { echo \"django_manage: no manage.py in $(pwd)\" >&2; exit 3; }\n");
        s.push_str("py=python; command -v python >/dev/null 2>&1 || py=python3\n");
        let args: Vec<String> = self.argv.iter().map(|a| sh_quote(a)).collect();
        s.push_str(&format!("exec \"$py\" manage.py {}\n", args.join(" ")));
        s
    }
}

impl ModuleTask for DjangoTask {
    fn plan(&self, _probes: &[super::ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        plan.actions.push(Action::new(format!("manage.py {}", self.argv.join(" ")), self.script(), Scope::Host).may_fail());
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let Some(o) = outputs.first() else {
            return Ok(plan);
        };
        let (out, err) = (o.stdout_str(), o.stderr_str());
        plan.result.insert("cmd".into(), json!(format!("./manage.py {}", self.argv.join(" "))));
        plan.result.insert("out".into(), json!(out));
        plan.result.insert("name".into(), json!(self.name));
        plan.result.insert("project_path".into(), json!(self.project_path));
        plan.result.insert("app_path".into(), json!(self.project_path));
        plan.result.insert("settings".into(), json!(self.settings));
        plan.result.insert("virtualenv".into(), json!(self.virtualenv));
        plan.result.insert("pythonpath".into(), json!(self.pythonpath));
        if o.exit_code != 0 {
            plan.failed = Some(if o.exit_code == 3 && err.starts_with("django_manage: ") {
                err.trim().to_string()
            } else {
                format!("{}: {}", self.name, if err.trim().is_empty() { out.trim() } else { err.trim() })
            });
            plan.changed = Some(false);
            return Ok(plan);
        }
        plan.changed = Some(changed(&self.name, &out));
        Ok(plan)
    }

    fn check_support(&self) -> CheckSupport {
        CheckSupport::SkipIfActions
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{apply, assert_sh_syntax};
    use super::*;

    fn task(v: Value) -> DjangoTask {
        build(v.as_object().unwrap()).unwrap()
    }

    fn err(v: Value) -> String {
        build(v.as_object().unwrap()).unwrap_err().to_string()
    }

    #[test]
    fn builds_the_command_line_as_ansible_does() {
        let t = task(json!({"command": "migrate", "app_path": "/srv/app", "settings": "site.prod", "database": "default", "apps": "series other"}));
        assert_eq!(t.argv, ["migrate", "--noinput", "--settings=site.prod", "--database=default", "series", "other"]);
        let t = task(json!({"command": "collectstatic", "project_path": "/a", "clear": "yes", "link": true}));
        assert_eq!(t.argv, ["collectstatic", "--noinput", "--clear", "--link"]);
        let t = task(json!({"command": "createsuperuser --username=admin --email 'a b@x'", "chdir": "/a", "pythonpath": "/lib"}));
        assert_eq!(t.argv, ["createsuperuser", "--username=admin", "--email", "a b@x", "--pythonpath=/lib"]);
        assert_eq!(task(json!({"command": "loaddata", "project_path": "/a", "fixtures": "one.json two.json"})).argv, ["loaddata", "one.json", "two.json"]);
        assert_eq!(task(json!({"command": "test", "project_path": "/a", "failfast": true, "testrunner": "x.Runner"})).argv, ["test", "--noinput", "--testrunner=x.Runner", "--failfast"]);
        assert_eq!(task(json!({"command": "migrate --no-input", "project_path": "/a"})).argv, ["migrate", "--no-input"]);
    }

    #[test]
    fn refuses_what_ansible_refuses() {
        assert!(err(json!({"command": "collectstatic", "project_path": "/a", "database": "x"})).contains("database param is incompatible with command=collectstatic"));
        assert!(err(json!({"command": "shell", "project_path": "/a", "apps": "x"})).contains("apps param is incompatible"));
        assert!(err(json!({"command": "loaddata", "project_path": "/a"})).contains("requires fixtures"));
        assert!(err(json!({"command": "createcachetable", "project_path": "/a"})).contains("requires cache_table"));
        assert!(err(json!({"command": "migrate"})).contains("project_path"));
        assert!(err(json!({"command": "  ", "project_path": "/a"})).contains("empty"));
        assert!(err(json!({"command": "migrate", "project_path": "/a", "bogus": 1})).contains("bogus"));
    }

    #[test]
    fn tells_changes_from_the_output() {
        assert!(changed("migrate", "Operations to perform:\n  Apply all migrations: series\nRunning migrations:\n  Applying series.0001_initial... OK\n"));
        assert!(!changed("migrate", "Operations to perform:\n  Apply all migrations: series\nRunning migrations:\n  No migrations to apply.\n"));
        assert!(changed("collectstatic", "\n12 static files copied to '/srv/static'.\n"));
        assert!(!changed("collectstatic", "\n0 static files copied to '/srv/static', 12 unmodified.\n"));
        assert!(changed("loaddata", "Installed 3 object(s) from 1 fixture(s)\n"));
        assert!(!changed("loaddata", "Installed 0 object(s) from 1 fixture(s)\n"));
        assert!(!changed("createcachetable", "Cache table 'cache' already exists.\n"));
        assert!(changed("createcachetable", ""));
        assert!(!changed("check", "System check identified no issues (0 silenced).\n"));
    }

    #[test]
    fn runs_manage_py_with_the_virtualenv_here() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        // A stand-in virtualenv whose python reports what it was given.
        std::fs::create_dir_all(root.join("venv/bin")).unwrap();
        std::fs::write(root.join("venv/bin/python"), "#!/bin/sh\necho \"venv=$VIRTUAL_ENV args=$*\"\necho '  Applying series.0001_initial... OK'\n").unwrap();
        std::process::Command::new("chmod").arg("+x").arg(root.join("venv/bin/python")).status().unwrap();
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("app/manage.py"), "").unwrap();
        let venv = root.join("venv").display().to_string();
        let t = task(json!({"command": "migrate", "project_path": root.join("app").display().to_string(), "virtualenv": venv}));
        assert_sh_syntax(&t.script());
        let p = apply(&t);
        assert!(p.failed.is_none(), "{:?}", p.failed);
        assert!(p.changed());
        assert_eq!(p.result["out"], json!(format!("venv={venv} args=manage.py migrate --noinput\n  Applying series.0001_initial... OK\n")));
        // No virtualenv there, no manage.py there: said plainly.
        let p = apply(&task(json!({"command": "check", "project_path": root.join("app").display().to_string(), "virtualenv": "/nonexistent"})));
        assert_eq!(p.failed.as_deref(), Some("django_manage: no virtualenv at /nonexistent"));
        let p = apply(&task(json!({"command": "check", "project_path": venv, "virtualenv": venv})));
        assert!(p.failed.as_deref().is_some_and(|f| f.starts_with("django_manage: no manage.py in ")), "{:?}", p.failed);
        // A failing command: its error, not changed.
        std::fs::write(root.join("venv/bin/python"), "#!/bin/sh\necho 'CommandError: no such app' >&2\nexit 1\n").unwrap();
        let p = apply(&task(json!({"command": "migrate nosuch", "project_path": root.join("app").display().to_string(), "virtualenv": venv})));
        assert_eq!(p.failed.as_deref(), Some("migrate: CommandError: no such app"));
        assert!(!p.changed());
    }
}
