//! `cron`: one job (or environment variable) in a user's crontab or in `/etc/cron.d/<cron_file>`,
//! marked with Ansible's `#Ansible: <name>` comment so crontabs managed by Ansible keep working.
//! The crontab is read with `crontab -l` (none = empty; a host without `crontab` yet is treated
//! as empty so check mode works before `cron` is installed) and written whole with `crontab -`.

use super::args::{self, opt_boolish, opt_string};
use super::common;
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct CronModule;

const PARAMS: &[&str] = &[
    "name",
    "minute",
    "hour",
    "day",
    "month",
    "weekday",
    "job",
    "value",
    "user",
    "state",
    "special_time",
    "disabled",
    "cron_file",
    "env",
    "backup",
    "insertafter",
    "insertbefore",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    minute: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    hour: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    day: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    month: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    weekday: Option<String>,
    #[serde(default, alias = "value")]
    job: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    special_time: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    disabled: Option<bool>,
    #[serde(default)]
    cron_file: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    env: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
    #[serde(default)]
    insertafter: Option<String>,
    #[serde(default)]
    insertbefore: Option<String>,
}

#[derive(Debug)]
struct CronTask {
    name: Option<String>,
    present: bool,
    /// The full line to have (job or `NAME=value`).
    line: String,
    env: bool,
    user: Option<String>,
    cron_file: Option<String>,
    insertafter: Option<String>,
    insertbefore: Option<String>,
}

module_impl!(CronModule, "cron");

fn build(args: &Map<String, Value>) -> Result<CronTask, ModuleError> {
    let a: Args = args::parse("cron", PARAMS, args)?;
    let _ = a.backup;
    let present = args::present_state("cron", a.state.as_deref())?;
    let env = a.env.unwrap_or(false);
    let name = a.name.filter(|n| !n.is_empty());
    if name.is_none() && (present || env) {
        return Err(ModuleError::Args("cron: name is required".into()));
    }
    let cron_file = a
        .cron_file
        .filter(|f| !f.is_empty())
        .map(|f| if f.starts_with('/') { f } else { format!("/etc/cron.d/{f}") });
    let user = a.user.filter(|u| !u.is_empty());
    let job = a.job.unwrap_or_default();
    if present && job.is_empty() {
        return Err(ModuleError::Args("cron: job is required with state=present".into()));
    }
    if job.contains('\n') {
        return Err(ModuleError::Args("cron: job must be a single line".into()));
    }
    let line = if env {
        // Ansible's `NAME="value"` (an unquoted line it finds differs, and is rewritten so)
        format!("{}=\"{job}\"", name.as_deref().unwrap_or(""))
    } else {
        let disabled = if a.disabled.unwrap_or(false) { "#" } else { "" };
        let who = if cron_file.is_some() {
            format!("{} ", user.as_deref().unwrap_or("root"))
        } else {
            String::new()
        };
        match a.special_time.as_deref() {
            Some(s) => {
                const SPECIAL: &[&str] = &["annually", "daily", "hourly", "monthly", "reboot", "weekly", "yearly"];
                if !SPECIAL.contains(&s) {
                    return Err(ModuleError::Args(format!(
                        "cron: special_time must be one of {}, got '{s}'",
                        SPECIAL.join(", ")
                    )));
                }
                if [&a.minute, &a.hour, &a.day, &a.month, &a.weekday].iter().any(|x| x.is_some()) {
                    return Err(ModuleError::Args(
                        "cron: special_time and minute/hour/day/month/weekday are mutually exclusive".into(),
                    ));
                }
                format!("{disabled}@{s} {who}{job}")
            }
            None => {
                let f = |x: &Option<String>| x.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "*".into());
                format!(
                    "{disabled}{} {} {} {} {} {who}{job}",
                    f(&a.minute),
                    f(&a.hour),
                    f(&a.day),
                    f(&a.month),
                    f(&a.weekday)
                )
            }
        }
    };
    Ok(CronTask {
        name,
        present,
        line,
        env,
        user,
        cron_file,
        insertafter: a.insertafter,
        insertbefore: a.insertbefore,
    })
}

const MARKER: &str = "#Ansible: ";

impl CronTask {
    fn label(&self) -> String {
        match (&self.cron_file, &self.user) {
            (Some(f), _) => f.clone(),
            (None, Some(u)) => format!("crontab for {u}"),
            (None, None) => "crontab".into(),
        }
    }

    /// New crontab lines from the current ones (None: no change).
    fn edit(&self, cur: &str) -> Option<String> {
        let mut lines: Vec<String> = cur.lines().map(str::to_string).collect();
        let orig = lines.clone();
        if self.env {
            let prefix = format!("{}=", self.name.as_deref().unwrap_or(""));
            let idx = lines.iter().position(|l| l.starts_with(&prefix));
            match (idx, self.present) {
                (Some(i), true) => lines[i] = self.line.clone(),
                (Some(i), false) => {
                    lines.remove(i);
                }
                (None, true) => {
                    let at = if let Some(after) = &self.insertafter {
                        lines
                            .iter()
                            .position(|l| l.starts_with(&format!("{after}=")))
                            .map(|i| i + 1)
                            .unwrap_or(0)
                    } else if let Some(before) = &self.insertbefore {
                        lines.iter().position(|l| l.starts_with(&format!("{before}="))).unwrap_or(0)
                    } else {
                        0
                    };
                    lines.insert(at, self.line.clone());
                }
                (None, false) => {}
            }
        } else {
            let marker = self.name.as_ref().map(|n| format!("{MARKER}{n}"));
            let idx = marker.as_ref().and_then(|m| lines.iter().position(|l| l == m));
            match (idx, self.present) {
                (Some(i), true) => {
                    if i + 1 < lines.len() {
                        lines[i + 1] = self.line.clone();
                    } else {
                        lines.push(self.line.clone());
                    }
                }
                (Some(i), false) => {
                    let end = (i + 2).min(lines.len());
                    lines.drain(i..end);
                }
                (None, true) => {
                    lines.push(marker.unwrap_or_default());
                    lines.push(self.line.clone());
                }
                (None, false) => {
                    if self.name.is_none() {
                        // absent by job only: remove exact job lines
                        lines.retain(|l| l != &self.line);
                    }
                }
            }
        }
        if lines == orig {
            return None;
        }
        let mut s = lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        Some(s)
    }
}

impl ModuleTask for CronTask {
    fn probes(&self) -> Vec<Probe> {
        if let Some(f) = &self.cron_file {
            return vec![common::file_probe(f, true)];
        }
        let u = self.user.as_ref().map(|u| format!(" -u {}", sh_quote(u))).unwrap_or_default();
        let s = format!(
            "command -v crontab >/dev/null 2>&1 || {{ echo 'crontab|missing'; exit 0; }}\necho 'crontab|yes'\n\
             if crontab -l{u} >/dev/null 2>&1; then crontab -l{u}; else e=$(crontab -l{u} 2>&1 >/dev/null); \
             case \"$e\" in *'no crontab'*) ;; *) echo \"$e\" >&2; exit 1;; esac; fi"
        );
        vec![Probe::new(s, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("missing cron probe".into()))?;
        let mut plan = Plan::ok();
        if let Some(name) = &self.name {
            plan.result.insert(if self.env { "envs" } else { "jobs" }.into(), json!([name]));
        }
        if let Some(f) = &self.cron_file {
            let st = common::parse_file_state(r)?;
            if !st.exists() && !self.present {
                return Ok(plan);
            }
            let cur = st.text().unwrap_or_default();
            if let Some(new) = self.edit(&cur) {
                if new.trim().is_empty() {
                    plan.diffs.push(Diff::Text {
                        path: f.clone(),
                        before: Some(cur),
                        after: None,
                    });
                    plan.actions.push(Action::new(
                        format!("remove {f}"),
                        format!("rm -f -- {}", sh_quote(f)),
                        Scope::path(f.as_str()),
                    ));
                } else {
                    plan.diffs.push(common::content_diff(f, &st, new.as_bytes()));
                    plan.actions.push(common::write_file_action(
                        f,
                        new.as_bytes(),
                        Some("root"),
                        Some("root"),
                        Some(0o644),
                        None,
                    ));
                }
            }
            return Ok(plan);
        }
        if r.rc != 0 {
            return Err(ModuleError::Failed(format!("cannot read crontab: {}", r.stderr.trim())));
        }
        let (first, cur) = r.stdout.split_once('\n').unwrap_or((r.stdout.as_str(), ""));
        let cur = if first.starts_with("crontab|") { cur } else { r.stdout.as_str() };
        if let Some(new) = self.edit(cur) {
            plan.diffs.push(Diff::Text {
                path: self.label(),
                before: Some(cur.to_string()),
                after: Some(new.clone()),
            });
            let u = self.user.as_ref().map(|u| format!(" -u {}", sh_quote(u))).unwrap_or_default();
            plan.actions
                .push(Action::new(format!("update {}", self.label()), format!("crontab{u} -"), Scope::Host).with_stdin(new.into_bytes()));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ok, run_probe};
    use super::*;

    #[test]
    fn adds_updates_removes_jobs() {
        let t = build(
            json!({"name": "backup", "minute": 0, "hour": "3", "job": "/usr/local/bin/backup", "user": "postgres"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t.plan(&[ok("crontab|yes\n")]).unwrap();
        assert_eq!(p.actions[0].script, "crontab -u postgres -");
        assert_eq!(
            p.actions[0].stdin.as_deref(),
            Some(&b"#Ansible: backup\n0 3 * * * /usr/local/bin/backup\n"[..])
        );
        let cur = "MAILTO=x\n#Ansible: backup\n0 3 * * * /usr/local/bin/backup\n";
        assert!(t.plan(&[ok(&format!("crontab|yes\n{cur}"))]).unwrap().actions.is_empty());
        let t2 = build(
            json!({"name": "backup", "special_time": "daily", "job": "/usr/local/bin/backup", "disabled": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t2.plan(&[ok(&format!("crontab|yes\n{cur}"))]).unwrap();
        assert_eq!(
            p.actions[0].stdin.as_deref(),
            Some(&b"MAILTO=x\n#Ansible: backup\n#@daily /usr/local/bin/backup\n"[..])
        );
        let t3 = build(json!({"name": "backup", "state": "absent"}).as_object().unwrap()).unwrap();
        let p = t3.plan(&[ok(&format!("crontab|yes\n{cur}"))]).unwrap();
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"MAILTO=x\n"[..]));
        // missing crontab command: treated as empty
        assert_eq!(t.plan(&[ok("crontab|missing\n")]).unwrap().actions.len(), 1);
    }

    #[test]
    fn env_and_cron_file() {
        let t = build(json!({"name": "PATH", "job": "/usr/bin:/bin", "env": true}).as_object().unwrap()).unwrap();
        let p = t.plan(&[ok("crontab|yes\n#Ansible: x\n* * * * * y\n")]).unwrap();
        assert_eq!(
            p.actions[0].stdin.as_deref(),
            Some(&b"PATH=\"/usr/bin:/bin\"\n#Ansible: x\n* * * * * y\n"[..])
        );
        // as Ansible: the quoted line is right, an unquoted one is rewritten quoted
        assert!(t.plan(&[ok("crontab|yes\nPATH=\"/usr/bin:/bin\"\n")]).unwrap().actions.is_empty());
        let p = t.plan(&[ok("crontab|yes\nA=1\nPATH=/usr/bin:/bin\n")]).unwrap();
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"A=1\nPATH=\"/usr/bin:/bin\"\n"[..]));
        let t = build(
            json!({"name": "clean", "cron_file": "app", "user": "www-data", "minute": "*/5", "job": "run"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert_eq!(
            p.actions[0].stdin.as_deref(),
            Some(&b"#Ansible: clean\n*/5 * * * * www-data run\n"[..])
        );
        assert!(p.actions[0].script.contains("/etc/cron.d/app"));
    }

    #[test]
    fn probe_runs_here() {
        let t = build(json!({"name": "x", "job": "true"}).as_object().unwrap()).unwrap();
        let r = run_probe(&t.probes()[0].script);
        assert_eq!(r.rc, 0, "{}", r.stderr);
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn cron_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run(
            "command -v crontab >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q cron >/dev/null",
            None,
        );
        let t = build(
            json!({"name": "mstest", "minute": "*/5", "job": "echo hi", "user": "root"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed());
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let t = build(json!({"name": "mstest", "state": "absent", "user": "root"}).as_object().unwrap()).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
    }
}
