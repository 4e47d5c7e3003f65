//! `group`: a local group (getent group; groupadd/groupmod/groupdel).

use super::args::{self, opt_boolish, opt_string};
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct GroupModule;

const PARAMS: &[&str] = &["name", "gid", "system", "state", "non_unique", "local", "force"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    #[serde(default, deserialize_with = "opt_string")]
    gid: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    system: Option<bool>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    non_unique: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    local: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force: Option<bool>,
}

#[derive(Debug)]
struct GroupTask {
    name: String,
    gid: Option<u32>,
    system: bool,
    present: bool,
    non_unique: bool,
    force: bool,
}

module_impl!(GroupModule, "group");

fn build(args: &Map<String, Value>) -> Result<GroupTask, ModuleError> {
    let a: Args = args::parse("group", PARAMS, args)?;
    let present = args::present_state("group", a.state.as_deref())?;
    let name = args::account_name("group", &a.name, &[':', ' ', '\n'])?;
    let gid = args::opt_id("group", "gid", a.gid.as_deref())?;
    let _ = a.local;
    Ok(GroupTask {
        name,
        gid,
        system: a.system.unwrap_or(false),
        present,
        non_unique: a.non_unique.unwrap_or(false),
        force: a.force.unwrap_or(false),
    })
}

/// `getent group NAME` line, if any: (gid, members).
fn parse(r: &ProbeResult) -> Result<Option<(u32, String)>, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!("cannot read group: {}", r.stderr.trim())));
    }
    let line = r.stdout.lines().find(|l| l.starts_with("group|"));
    match line {
        None => Ok(None),
        Some(l) => {
            let f: Vec<&str> = l["group|".len()..].split(':').collect();
            if f.len() < 3 {
                return Err(ModuleError::Probe(format!("group line '{l}'")));
            }
            let gid = f[2].parse().map_err(|_| ModuleError::Probe(format!("group line '{l}'")))?;
            Ok(Some((gid, f.get(3).unwrap_or(&"").to_string())))
        }
    }
}

impl ModuleTask for GroupTask {
    fn probes(&self) -> Vec<Probe> {
        let n = sh_quote(&self.name);
        // getent exits 2 when the group does not exist: that is an answer, not a failure.
        vec![Probe::new(
            format!("if e=$(getent group -- {n}); then printf 'group|%s\\n' \"$e\"; else echo absent; fi"),
            Scope::Host,
        )]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let cur = parse(probes.first().ok_or_else(|| ModuleError::Probe("missing group probe".into()))?)?;
        let mut plan = Plan::ok();
        let n = sh_quote(&self.name);
        plan.result.insert("name".into(), json!(self.name));
        plan.result
            .insert("state".into(), json!(if self.present { "present" } else { "absent" }));
        match (&cur, self.present) {
            (None, true) => {
                let mut cmd = "groupadd".to_string();
                if let Some(g) = self.gid {
                    cmd.push_str(&format!(" -g {g}"));
                    if self.non_unique {
                        cmd.push_str(" -o");
                    }
                }
                if self.system {
                    cmd.push_str(" -r");
                }
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "absent".into(),
                    after: "present".into(),
                });
                if let Some(g) = self.gid {
                    plan.diffs.push(Diff::Field {
                        name: "gid".into(),
                        before: String::new(),
                        after: g.to_string(),
                    });
                    plan.result.insert("gid".into(), json!(g));
                }
                plan.result.insert("system".into(), json!(self.system));
                // When no gid is asked for, `finish` reports the one the system picked.
                let script = format!("{cmd} -- {n}\ngetent group -- {n} | cut -d: -f3");
                plan.actions
                    .push(Action::new(format!("create group {}", self.name), script, Scope::Host));
            }
            (Some((gid, _)), true) => {
                plan.result.insert("gid".into(), json!(gid));
                if let Some(g) = self.gid.filter(|g| g != gid) {
                    plan.diffs.push(Diff::Field {
                        name: "gid".into(),
                        before: gid.to_string(),
                        after: g.to_string(),
                    });
                    let o = if self.non_unique { " -o" } else { "" };
                    plan.actions.push(Action::new(
                        format!("change gid of group {}", self.name),
                        format!("groupmod -g {g}{o} -- {n}"),
                        Scope::Host,
                    ));
                    plan.result.insert("gid".into(), json!(g));
                }
            }
            (Some(_), false) => {
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "present".into(),
                    after: "absent".into(),
                });
                let f = if self.force { " -f" } else { "" };
                plan.actions.push(Action::new(
                    format!("remove group {}", self.name),
                    format!("groupdel{f} -- {n}"),
                    Scope::Host,
                ));
            }
            (None, false) => {}
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[super::ActionOutput]) -> Result<Plan, ModuleError> {
        if self.present && self.gid.is_none() {
            if let Some(g) = outputs
                .first()
                .and_then(|o| o.stdout_str().trim().lines().last().and_then(|l| l.trim().parse::<u32>().ok()))
            {
                plan.result.insert("gid".into(), json!(g));
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
pub(crate) fn tests_build(v: Value) -> Box<dyn ModuleTask> {
    Box::new(build(v.as_object().unwrap()).unwrap())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ok, run_probe};
    use super::*;

    fn task(v: Value) -> GroupTask {
        build(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn creates_modifies_removes() {
        let t = task(json!({"name": "deploy", "gid": "1500", "system": true}));
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert!(p.actions[0].script.starts_with("groupadd -g 1500 -r -- deploy"));
        assert!(t.plan(&[ok("group|deploy:x:1500:\n")]).unwrap().actions.is_empty());
        let p = t.plan(&[ok("group|deploy:x:999:alice\n")]).unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "gid".into(),
                before: "999".into(),
                after: "1500".into()
            }]
        );
        let t = task(json!({"name": "deploy", "state": "absent"}));
        assert_eq!(
            t.plan(&[ok("group|deploy:x:1500:\n")]).unwrap().actions[0].script,
            "groupdel -- deploy"
        );
        assert!(t.plan(&[ok("absent\n")]).unwrap().actions.is_empty());
    }

    #[test]
    fn probe_runs_here() {
        let t = task(json!({"name": "root"}));
        assert_eq!(run_probe(&t.probes()[0].script).stdout, "group|root:x:0:\n");
        let t = task(json!({"name": "no-such-group-xyz"}));
        let r = run_probe(&t.probes()[0].script);
        assert_eq!((r.rc, r.stdout.as_str()), (0, "absent\n"));
    }
}
