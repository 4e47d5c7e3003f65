//! `debconf`: preseed a package's debconf answer (before installing it, or to reconfigure),
//! decided as Ansible's module decides.
//!
//! The probe is `debconf-show <name>` (`question: value` lines); the answer is set with
//! `debconf-set-selections` (`-u` with `unseen`), the line on its stdin. As Ansible compares:
//! a `boolean` in lower case, a `multiselect` given as a list sorted against the stored
//! comma-separated choices, anything else as text. Without `question`, the task only reads the
//! package's answers (`current`). Results: `current`, `previous`, `msg`, and the diff of the
//! question's value.
//!
//! Differences from Ansible: a `password` is read through debconf's own Perl modules (no
//! `debconf-get-selections`, i.e. no `debconf-utils`, needed), and its value is never shown:
//! results and diffs say `********` (Ansible only advises `no_log`). A number given as the
//! value compares as text (Ansible sees `80` and `"80"` as different and changes every run).

use super::args::{self, opt_boolish, opt_string};
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope, REDACTED};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct DebconfModule;

const PARAMS: &[&str] = &["name", "pkg", "question", "selection", "setting", "vtype", "value", "answer", "unseen"];

const VTYPES: &[&str] = &["boolean", "error", "multiselect", "note", "password", "seen", "select", "string", "text", "title"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, alias = "pkg", deserialize_with = "opt_string")]
    name: Option<String>,
    #[serde(default, alias = "selection", alias = "setting", deserialize_with = "opt_string")]
    question: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    vtype: Option<String>,
    #[serde(default, alias = "answer")]
    value: Option<Value>,
    #[serde(default, deserialize_with = "opt_boolish")]
    unseen: Option<bool>,
}

/// The answer wanted, as it is compared.
#[derive(Debug, Clone, PartialEq)]
enum Wanted {
    Text(String),
    /// A multiselect given as a list: compared sorted.
    Choices(Vec<String>),
}

#[derive(Debug)]
struct Question {
    name: String,
    vtype: String,
    value: Wanted,
}

#[derive(Debug)]
struct DebconfTask {
    package: String,
    question: Option<Question>,
    unseen: bool,
}

module_impl!(DebconfModule, "debconf");

/// A scalar as Python's `to_text` writes it (`true` -> `True`, numbers as written).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn build(args: &Map<String, Value>) -> Result<DebconfTask, ModuleError> {
    let a: Args = args::parse("debconf", PARAMS, args)?;
    let package = a.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| ModuleError::Args("debconf: name is required".into()))?;
    if let Some(v) = a.vtype.as_deref().filter(|v| !VTYPES.contains(v)) {
        return Err(ModuleError::Args(format!("debconf: vtype must be one of {}, got '{v}'", VTYPES.join(", "))));
    }
    let given = [a.question.is_some(), a.vtype.is_some(), a.value.is_some()];
    if given.contains(&true) && given.contains(&false) {
        let missing: Vec<&str> = ["question", "vtype", "value"].iter().zip(given).filter(|(_, g)| !g).map(|(n, _)| *n).collect();
        return Err(ModuleError::Args(format!("debconf: parameters are required together: question, vtype, value (missing {})", missing.join(", "))));
    }
    let question = match (a.question, a.vtype, a.value) {
        (Some(name), Some(vtype), Some(value)) => {
            let value = match (&value, vtype.as_str()) {
                (Value::Array(items), "multiselect") => {
                    let mut v: Vec<String> = items.iter().map(text).collect();
                    v.sort();
                    Wanted::Choices(v)
                }
                (Value::Array(_) | Value::Object(_), _) => return Err(ModuleError::Args(format!("debconf: value must be text for vtype {vtype} (a list only for multiselect)"))),
                (v, "boolean") => Wanted::Text(text(v).to_lowercase()),
                (v, _) => Wanted::Text(text(v)),
            };
            Some(Question { name, vtype, value })
        }
        _ => None,
    };
    Ok(DebconfTask { package, question, unseen: a.unseen.unwrap_or(false) })
}

/// Separates `debconf-show`'s lines from the stored password in the probe's output.
const PASSWORD_MARK: &str = "@@provision-debconf-password@@";

/// `debconf-show` lines into question -> value, as Ansible reads them.
fn selections(out: &str) -> Map<String, Value> {
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim_start().trim_start_matches('*').trim().to_string(), json!(v.trim())))
        .collect()
}

impl DebconfTask {
    fn password(&self) -> bool {
        self.question.as_ref().is_some_and(|q| q.vtype == "password")
    }
}

impl ModuleTask for DebconfTask {
    fn probes(&self) -> Vec<Probe> {
        let mut script = format!("debconf-show {}", sh_quote(&self.package));
        if let Some(q) = self.question.as_ref().filter(|_| self.password()) {
            // What debconf-get-selections would print, from debconf's own database modules.
            script.push_str(&format!(
                " || exit\necho {PASSWORD_MARK}\nperl -MDebconf::Db -MDebconf::Question -e 'Debconf::Db->load(readonly => \"true\"); my $q = Debconf::Question->get($ARGV[0]); print $q->value if defined $q && defined $q->value' {}",
                sh_quote(&q.name)
            ));
        }
        vec![Probe::new(script, Scope::Paths(vec!["/var/cache/debconf".into()]))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let p = probes.first().ok_or_else(|| ModuleError::Probe("debconf: no probe result".into()))?;
        if p.rc != 0 {
            return Ok(Plan { failed: Some(p.stderr.trim().to_string()), ..Plan::ok() });
        }
        let (shown, stored_password) = match p.stdout.split_once(&format!("{PASSWORD_MARK}\n")) {
            Some((shown, pw)) => (shown, Some(pw.to_string())),
            None => (p.stdout.as_str(), None),
        };
        let prev = selections(shown);
        let mut plan = Plan::ok();
        plan.result.insert("msg".into(), json!(""));
        let Some(q) = &self.question else {
            plan.result.insert("current".into(), Value::Object(prev));
            return Ok(plan);
        };
        let existing = prev.get(&q.name).and_then(Value::as_str).map(str::to_string);
        let changed = match (&existing, &q.value) {
            (None, _) => true,
            (Some(e), Wanted::Text(v)) => {
                let e = match q.vtype.as_str() {
                    "boolean" => e.to_lowercase(),
                    "password" => stored_password.clone().unwrap_or_default(),
                    _ => e.clone(),
                };
                &e != v
            }
            (Some(e), Wanted::Choices(v)) => {
                let mut e: Vec<String> = e.split(',').map(|c| c.trim().to_string()).collect();
                e.sort();
                &e != v
            }
        };
        let shown_value = |v: &str| if self.password() { REDACTED.to_string() } else { v.to_string() };
        let value = match &q.value {
            Wanted::Text(v) => v.clone(),
            Wanted::Choices(v) => v.join(", "),
        };
        if !changed {
            let current = if self.password() { json!({&q.name: REDACTED}) } else { Value::Object(prev) };
            plan.result.insert("current".into(), current);
            return Ok(plan);
        }
        let before = existing.clone().unwrap_or_default();
        plan.result.insert("current".into(), json!({&q.name: shown_value(&value)}));
        plan.result.insert("previous".into(), json!({&q.name: shown_value(&before)}));
        plan.diffs.push(Diff::Field { name: format!("{} {}", self.package, q.name), before: shown_value(&before), after: shown_value(&value) });
        let script = if self.unseen { "debconf-set-selections -u" } else { "debconf-set-selections" };
        let line = format!("{} {} {} {}", self.package, q.name, q.vtype, value);
        let summary = format!("set {} {} = {}", self.package, q.name, shown_value(&value));
        plan.actions.push(Action::new(summary, script, Scope::Paths(vec!["/var/cache/debconf".into()])).with_stdin(line.into_bytes()));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(args: Value) -> DebconfTask {
        build(args.as_object().unwrap()).unwrap()
    }

    fn shown(out: &str) -> ProbeResult {
        ProbeResult { stdout: out.into(), stderr: String::new(), rc: 0 }
    }

    const TZDATA: &str = "  tzdata/Zones/Etc: UTC\n* tzdata/Areas: Etc\n  tzdata/Zones/Europe:\n";

    #[test]
    fn sets_a_new_or_different_answer_once() {
        let t = task(json!({"name": "tzdata", "question": "tzdata/Areas", "vtype": "select", "value": "Europe"}));
        assert_eq!(t.probes()[0].script, "debconf-show tzdata");
        let plan = t.plan(&[shown(TZDATA)]).unwrap();
        assert_eq!(plan.actions[0].script, "debconf-set-selections");
        assert_eq!(plan.actions[0].stdin.as_deref(), Some(&b"tzdata tzdata/Areas select Europe"[..]));
        assert_eq!(plan.result["previous"], json!({"tzdata/Areas": "Etc"}));
        assert_eq!(plan.result["current"], json!({"tzdata/Areas": "Europe"}));
        assert_eq!(plan.diffs, vec![Diff::Field { name: "tzdata tzdata/Areas".into(), before: "Etc".into(), after: "Europe".into() }]);
        let done = t.plan(&[shown(&TZDATA.replace("Areas: Etc", "Areas: Europe"))]).unwrap();
        assert!(done.actions.is_empty());
        assert_eq!(done.result["current"]["tzdata/Zones/Etc"], json!("UTC"));
        // A question the package doesn't have yet (preseeding before the install).
        let t = task(json!({"name": "postfix", "question": "postfix/mailname", "vtype": "string", "value": "mail.example.org", "unseen": true}));
        let plan = t.plan(&[shown("")]).unwrap();
        assert_eq!(plan.actions[0].script, "debconf-set-selections -u");
        assert_eq!(plan.result["previous"], json!({"postfix/mailname": ""}));
    }

    #[test]
    fn booleans_and_multiselects_compare_as_ansible_does() {
        let t = task(json!({"name": "p", "question": "p/flag", "vtype": "boolean", "value": true}));
        assert!(t.plan(&[shown("* p/flag: true\n")]).unwrap().actions.is_empty());
        assert_eq!(t.plan(&[shown("* p/flag: false\n")]).unwrap().actions[0].stdin.as_deref(), Some(&b"p p/flag boolean true"[..]));
        let t = task(json!({"name": "locales", "question": "locales/locales_to_be_generated", "vtype": "multiselect", "value": ["fr_FR.UTF-8 UTF-8", "en_US.UTF-8 UTF-8"]}));
        assert!(t.plan(&[shown("* locales/locales_to_be_generated: en_US.UTF-8 UTF-8, fr_FR.UTF-8 UTF-8\n")]).unwrap().actions.is_empty());
        let plan = t.plan(&[shown("* locales/locales_to_be_generated: en_US.UTF-8 UTF-8\n")]).unwrap();
        assert_eq!(plan.actions[0].stdin.as_deref(), Some(&b"locales locales/locales_to_be_generated multiselect en_US.UTF-8 UTF-8, fr_FR.UTF-8 UTF-8"[..]));
        // A number compares as text.
        let t = task(json!({"name": "p", "question": "p/port", "vtype": "string", "value": 80}));
        assert!(t.plan(&[shown("* p/port: 80\n")]).unwrap().actions.is_empty());
    }

    #[test]
    fn passwords_are_read_from_debconf_and_never_shown() {
        let t = task(json!({"name": "mysql-server", "question": "mysql-server/root_password", "vtype": "password", "value": "s3cret"}));
        let script = &t.probes()[0].script;
        assert!(script.contains("Debconf::Question->get($ARGV[0])") && script.ends_with(" mysql-server/root_password"), "{script}");
        let out = |pw: &str| shown(&format!("* mysql-server/root_password: (password omitted)\n{PASSWORD_MARK}\n{pw}"));
        assert!(t.plan(&[out("s3cret")]).unwrap().actions.is_empty());
        let plan = t.plan(&[out("old")]).unwrap();
        assert_eq!(plan.actions[0].stdin.as_deref(), Some(&b"mysql-server mysql-server/root_password password s3cret"[..]));
        let shown_text = format!("{:?} {:?} {}", plan.diffs, plan.result, plan.actions[0].summary);
        assert!(!shown_text.contains("s3cret") && !shown_text.contains("old"), "{shown_text}");
        assert!(shown_text.contains(REDACTED));
    }

    #[test]
    fn without_a_question_it_reads_and_refuses_half_given_answers() {
        let t = task(json!({"pkg": "tzdata"}));
        let plan = t.plan(&[shown(TZDATA)]).unwrap();
        assert!(plan.actions.is_empty());
        assert_eq!(plan.result["current"], json!({"tzdata/Zones/Etc": "UTC", "tzdata/Areas": "Etc", "tzdata/Zones/Europe": ""}));
        let err = |a: Value| build(a.as_object().unwrap()).unwrap_err().to_string();
        assert!(err(json!({"name": "p", "question": "p/q", "value": "x"})).contains("missing vtype"));
        assert!(err(json!({"name": "p", "question": "p/q", "vtype": "choice", "value": "x"})).contains("vtype must be one of"));
        assert!(err(json!({"question": "p/q"})).contains("name is required"));
        let failed = t.plan(&[ProbeResult { stdout: String::new(), stderr: "debconf-show: not found\n".into(), rc: 127 }]).unwrap();
        assert_eq!(failed.failed.as_deref(), Some("debconf-show: not found"));
    }
}
