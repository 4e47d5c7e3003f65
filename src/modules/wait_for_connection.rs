//! `wait_for_connection`: wait until the host can be logged in to and runs a command.
//!
//! Ansible tries its `ping` module (Python) every `sleep` seconds, resetting the connection
//! between tries, until `timeout`. Here the try is `true` over the host's connection, logged
//! in again after a try that failed or gave no answer within `connect_timeout` (see
//! [`super::Wait`]); nothing needs Python. `delay` seconds pass before the first try. The
//! task is never changed; its result has `elapsed`. In check mode it is skipped, as in
//! Ansible.
//!
//! Use it after a task that restarts the host's network or SSH server, after a reboot
//! started some other way than the `reboot` module, or as the first task of a play with
//! `gather_facts: false` for hosts still booting: a host that can't be logged in to when
//! such a play starts is not unreachable, the task logs in once it answers (the login user is
//! then the one the connection variables name, or the local user, as `ssh` would pick).

use super::args::{self, opt_string};
use super::{Action, CheckSupport, ModuleError, ModuleTask, Plan, Scope, Wait};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub struct WaitForConnectionModule;

const PARAMS: &[&str] = &["connect_timeout", "delay", "sleep", "timeout"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    connect_timeout: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    delay: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    sleep: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    timeout: Option<String>,
}

#[derive(Debug)]
struct WaitForConnectionTask {
    wait: Wait,
}

module_impl!(WaitForConnectionModule, "wait_for_connection");

/// Whole seconds, as Ansible's `int()` reads them.
fn seconds(name: &str, v: Option<&str>, default: u64) -> Result<u64, ModuleError> {
    match v {
        None => Ok(default),
        Some(s) => s.trim().parse::<u64>().map_err(|_| ModuleError::Args(format!("wait_for_connection: {name} must be a whole number of seconds, got '{s}'"))),
    }
}

fn build(args: &Map<String, Value>) -> Result<WaitForConnectionTask, ModuleError> {
    let a: Args = args::parse("wait_for_connection", PARAMS, args)?;
    Ok(WaitForConnectionTask {
        wait: Wait {
            delay: Duration::from_secs(seconds("delay", a.delay.as_deref(), 0)?),
            sleep: Duration::from_secs(seconds("sleep", a.sleep.as_deref(), 1)?.max(1)),
            timeout: Duration::from_secs(seconds("timeout", a.timeout.as_deref(), 600)?),
            connect_timeout: Some(Duration::from_secs(seconds("connect_timeout", a.connect_timeout.as_deref(), 5)?.max(1))),
            test: "true".into(),
            what: "the host to answer".into(),
        },
    })
}

impl ModuleTask for WaitForConnectionTask {
    fn plan(&self, _probes: &[super::ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        // An action that is only the wait (no command of its own); it changes nothing.
        plan.actions.push(Action::new("wait for the host to answer", "", Scope::Nothing).then_wait(self.wait.clone()));
        plan.changed = Some(false);
        plan.result.insert("elapsed".into(), json!(0));
        Ok(plan)
    }

    fn check_support(&self) -> CheckSupport {
        CheckSupport::SkipIfActions
    }

    fn check_skip_reason(&self) -> &'static str {
        "skipped in check mode (nothing was done that the host could be waited for after)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_wait_with_ansibles_defaults_and_no_change() {
        let t = build(json!({}).as_object().unwrap()).unwrap();
        assert!(t.probes().is_empty());
        let plan = t.plan(&[]).unwrap();
        assert!(!plan.changed());
        let a = &plan.actions[0];
        assert!(a.script.is_empty());
        let w = a.wait.as_ref().unwrap();
        assert_eq!((w.delay, w.sleep, w.timeout, w.connect_timeout), (Duration::ZERO, Duration::from_secs(1), Duration::from_secs(600), Some(Duration::from_secs(5))));
        assert_eq!(w.test, "true");
        assert_eq!(t.check_support(), CheckSupport::SkipIfActions);
    }

    #[test]
    fn options_are_whole_seconds() {
        let t = build(json!({"delay": "3", "sleep": 0, "timeout": 30, "connect_timeout": 2}).as_object().unwrap()).unwrap();
        let w = &t.wait;
        assert_eq!((w.delay, w.sleep, w.timeout, w.connect_timeout), (Duration::from_secs(3), Duration::from_secs(1), Duration::from_secs(30), Some(Duration::from_secs(2))));
        assert!(build(json!({"timeout": "1.5"}).as_object().unwrap()).is_err());
        assert!(build(json!({"port": 22}).as_object().unwrap()).is_err());
    }
}
