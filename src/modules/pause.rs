//! `pause`: wait `seconds` or `minutes` (whole numbers as Ansible reads them: `1.7` is 1,
//! `"2"` is 2, under 1 is 1), with Ansible's result (`start`, `stop`, `delta`, `stdout`
//! "Paused for N seconds", `user_input: ''`, `echo`, never changed).
//!
//! Where the wait happens: Ansible waits on the controller, once per batch of hosts. Modules
//! here never run anything themselves and the executor has no controller-side wait a module
//! could ask for, so the wait is one action, `sleep` on the host, that also reads the host's
//! clock before and after (the times are shown in the controller's time zone, in Python's
//! `datetime` format). What that changes, against Ansible:
//! - every host of the play waits, at the same time (hosts don't wait for each other here),
//!   so the play waits about once; Ansible pauses once for the batch and registers and shows
//!   the result for its first host only. `run_once: true` gives Ansible's single pause (the
//!   batch meets there, one host waits, all get its result);
//! - in check mode nothing runs on hosts, so it doesn't wait (Ansible does): the task is ok,
//!   with `start`, `stop` and `delta` null;
//! - one SSH round trip per host.
//!
//! `prompt` (or no time at all) asks for input. When stdin is not a terminal Ansible warns
//! "Not waiting for response to prompt as stdin is not interactive" and goes on at once with
//! `user_input: ''`: so does this module (no action, no round trip; the warning is the task's
//! message and in `warnings`). At a terminal, reading an answer is not supported: the task is
//! refused rather than going past a gate someone meant to confirm.

use super::args::{self, opt_boolish, opt_string};
use super::{
    Action, ActionOutput, Module, ModuleError, ModuleTask, Plan, PrepareContext, ProbeResult,
    Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::io::IsTerminal;

pub struct PauseModule;

const PARAMS: &[&str] = &["seconds", "minutes", "prompt", "echo"];

/// Ansible's warning when it would prompt but stdin is not a terminal.
const NOT_INTERACTIVE: &str = "Not waiting for response to prompt as stdin is not interactive";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    seconds: Option<Value>,
    #[serde(default)]
    minutes: Option<Value>,
    #[serde(default, deserialize_with = "opt_string")]
    prompt: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    echo: Option<bool>,
}

/// The unit the pause was given in: `stdout` reports the time waited in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Minutes,
}

#[derive(Debug)]
struct PauseTask {
    /// Whole seconds to wait (at least 1); None: no time given, it would prompt.
    seconds: Option<u64>,
    unit: Unit,
    echo: bool,
}

impl Module for PauseModule {
    fn name(&self) -> &'static str {
        "pause"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build(args, std::io::stdin().is_terminal())?))
    }
}

/// A number as Python's `int()` reads it (Ansible's type for `seconds` and `minutes`):
/// numbers truncated toward zero, strings only if they hold a whole number.
fn python_int(name: &str, v: &Value) -> Result<i64, ModuleError> {
    let bad = |kind: &str, detail: String| {
        ModuleError::Args(format!(
            "pause: argument '{name}' is of type {kind} and we were unable to convert to int: {detail}"
        ))
    };
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i64))
            .ok_or_else(|| bad("float", format!("cannot convert {n} to integer"))),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => s.trim().parse().map_err(|_| {
            bad("str", format!("invalid literal for int() with base 10: '{s}'"))
        }),
        Value::Array(_) => Err(bad("list", "not a number".into())),
        _ => Err(bad("dict", "not a number".into())),
    }
}

/// `interactive`: whether the controller's stdin is a terminal (a prompt would wait there).
fn build(args: &Map<String, Value>, interactive: bool) -> Result<PauseTask, ModuleError> {
    let a: Args = args::parse("pause", PARAMS, args)?;
    let given = |v: Option<Value>| v.filter(|v| !v.is_null());
    let (seconds, unit) = match (given(a.seconds), given(a.minutes)) {
        (Some(_), Some(_)) => {
            return Err(ModuleError::Args(
                "pause: parameters are mutually exclusive: minutes|seconds".into(),
            ))
        }
        (Some(s), None) => (Some(python_int("seconds", &s)?), Unit::Seconds),
        (None, Some(m)) => (Some(python_int("minutes", &m)?.saturating_mul(60)), Unit::Minutes),
        // Ansible reports a prompt's time in minutes.
        (None, None) => (None, Unit::Minutes),
    };
    if seconds.is_none() && interactive {
        return Err(ModuleError::Args(format!(
            "pause: waiting for an answer at the terminal{} is not supported; give seconds or minutes",
            a.prompt.map(|p| format!(" ('{p}')")).unwrap_or_default()
        )));
    }
    Ok(PauseTask {
        seconds: seconds.map(|s| s.max(1) as u64),
        unit,
        echo: a.echo.unwrap_or(true),
    })
}

/// A moment as Python's `str(datetime.datetime.now())` writes it, in the controller's time
/// zone (microseconds left out when zero, as Python does).
fn python_datetime(t: chrono::DateTime<chrono::Utc>) -> String {
    let local = t.with_timezone(&chrono::Local);
    if local.timestamp_subsec_micros() == 0 {
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

/// `date +%s.%N` output as a moment.
fn parse_epoch(line: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let (secs, frac) = line.trim().split_once('.')?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    chrono::DateTime::from_timestamp(secs.parse().ok()?, digits.parse().ok()?)
}

impl PauseTask {
    /// Ansible's `stdout`: the time waited, in the unit given, rounded to hundredths and
    /// written as Python writes a float (`2.0`, `0.02`).
    fn stdout(&self, waited: f64) -> String {
        let (n, unit) = match self.unit {
            Unit::Seconds => (waited, "seconds"),
            Unit::Minutes => (waited / 60.0, "minutes"),
        };
        format!("Paused for {:?} {unit}", (n * 100.0).round() / 100.0)
    }

    /// Start, stop, delta and stdout of a pause that went from `start` to `stop`.
    fn record(&self, plan: &mut Plan, start: chrono::DateTime<chrono::Utc>, stop: chrono::DateTime<chrono::Utc>) {
        let waited = (stop - start).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        plan.result.insert("start".into(), json!(python_datetime(start)));
        plan.result.insert("stop".into(), json!(python_datetime(stop)));
        plan.result.insert("delta".into(), json!(waited.trunc() as u64));
        plan.result.insert("stdout".into(), json!(self.stdout(waited)));
    }
}

impl ModuleTask for PauseTask {
    fn plan(&self, _probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        // Ansible's result before the wait; `finish` fills in the times.
        for (k, v) in [("rc", json!(0)), ("stdout", json!("")), ("stderr", json!("")), ("start", Value::Null), ("stop", Value::Null), ("delta", Value::Null), ("echo", json!(self.echo)), ("user_input", json!(""))] {
            plan.result.insert(k.into(), v);
        }
        plan.changed = Some(false);
        match self.seconds {
            None => {
                // Not interactive (see `build`): Ansible warns and goes on at once.
                let now = chrono::Utc::now();
                self.record(&mut plan, now, now);
                plan.result.insert("warnings".into(), json!([NOT_INTERACTIVE]));
                plan.msg = Some(NOT_INTERACTIVE.into());
            }
            Some(s) => {
                let script = format!("date +%s.%N\nsleep {s}\ndate +%s.%N\n");
                plan.actions.push(Action::new(format!("wait {s} seconds (on the host)"), script, Scope::Nothing));
            }
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let Some(o) = outputs.first().filter(|o| o.exit_code == 0) else { return Ok(plan) };
        let out = o.stdout_str();
        let mut stamps = out.lines().map(parse_epoch);
        match (stamps.next().flatten(), stamps.next().flatten()) {
            (Some(start), Some(stop)) => self.record(&mut plan, start, stop),
            _ => return Err(ModuleError::Failed(format!("pause: cannot read the host's clock from {:?}", out.trim()))),
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::{apply, assert_sh_syntax};

    fn task(v: Value) -> Result<PauseTask, ModuleError> {
        build(v.as_object().unwrap(), false)
    }

    fn seconds_of(v: Value) -> Option<u64> {
        task(v).unwrap().seconds
    }

    #[test]
    fn times_are_read_as_pythons_int_and_at_least_one_second() {
        assert_eq!(seconds_of(json!({"seconds": 3})), Some(3));
        assert_eq!(seconds_of(json!({"seconds": " 2 "})), Some(2));
        assert_eq!(seconds_of(json!({"seconds": 1.7})), Some(1));
        assert_eq!(seconds_of(json!({"seconds": -3})), Some(1));
        assert_eq!(seconds_of(json!({"seconds": 0})), Some(1));
        assert_eq!(seconds_of(json!({"minutes": "2"})), Some(120));
        // Ansible truncates the minutes first: 0.02 minutes is 0, so one second.
        assert_eq!(seconds_of(json!({"minutes": 0.02})), Some(1));
        assert_eq!(seconds_of(json!({"prompt": "go?", "seconds": null})), None);
        let e = task(json!({"seconds": "1.5"})).unwrap_err();
        assert_eq!(e.to_string(), "pause: argument 'seconds' is of type str and we were unable to convert to int: invalid literal for int() with base 10: '1.5'");
        for bad in [json!({"seconds": 1, "minutes": 1}), json!({"seconds": [1]}), json!({"seconds": 1, "foo": 1})] {
            assert!(matches!(task(bad.clone()), Err(ModuleError::Args(_))), "{bad}");
        }
    }

    #[test]
    fn a_timed_pause_is_one_sleep_that_reads_the_clock_around_it() {
        let t = task(json!({"seconds": 1, "prompt": "ignored when timed", "echo": "no"})).unwrap();
        let p = t.plan(&[]).unwrap();
        assert_eq!(p.actions.len(), 1);
        let a = &p.actions[0];
        assert_eq!((a.summary.as_str(), &a.touches, a.may_fail), ("wait 1 seconds (on the host)", &Scope::Nothing, false));
        assert_sh_syntax(&a.script);
        assert!(!p.changed());
        // Before it ran (check mode stops here): Ansible's fields, no times.
        assert_eq!(p.result["start"], Value::Null);
        assert_eq!((&p.result["echo"], &p.result["user_input"], &p.result["rc"]), (&json!(false), &json!(""), &json!(0)));
        let started = std::time::Instant::now();
        let done = apply(&t);
        assert!(started.elapsed() >= std::time::Duration::from_secs(1));
        assert_eq!(done.result["delta"], 1);
        assert!(done.result["stdout"].as_str().unwrap().starts_with("Paused for 1.0"), "{}", done.result["stdout"]);
        let start = done.result["start"].as_str().unwrap();
        assert_eq!((start.len(), &start[4..5], &start[19..20]), (26, "-", "."), "{start}");
        assert!(!done.changed() && done.failed.is_none());
    }

    #[test]
    fn results_are_written_as_ansible_writes_them() {
        let t = task(json!({"minutes": 1})).unwrap();
        let at = |s: &str| parse_epoch(s).unwrap();
        let mut p = t.plan(&[]).unwrap();
        t.record(&mut p, at("1700000000.5"), at("1700000061.250000001"));
        assert_eq!((&p.result["delta"], &p.result["stdout"]), (&json!(60), &json!("Paused for 1.01 minutes")));
        assert!(p.result["start"].as_str().unwrap().ends_with(":20.500000"), "{}", p.result["start"]);
        let t = task(json!({"seconds": 2})).unwrap();
        assert_eq!(t.stdout(2.0004), "Paused for 2.0 seconds");
        assert_eq!(python_datetime(at("1700000000.0")).len(), 19, "no microseconds when zero");
        let out = ActionOutput { stdout: b"garbage\n".to_vec(), stderr: vec![], exit_code: 0 };
        assert!(t.finish(t.plan(&[]).unwrap(), &[out]).is_err());
    }

    #[test]
    fn a_prompt_without_a_terminal_warns_and_goes_on() {
        for args in [json!({"prompt": "Deploy?", "echo": false}), json!({})] {
            let p = task(args).unwrap().plan(&[]).unwrap();
            assert!(p.actions.is_empty());
            assert_eq!(p.msg.as_deref(), Some(NOT_INTERACTIVE));
            assert_eq!(p.result["warnings"], json!([NOT_INTERACTIVE]));
            assert_eq!((&p.result["delta"], &p.result["stdout"], &p.result["user_input"]), (&json!(0), &json!("Paused for 0.0 minutes"), &json!("")));
            assert_eq!(p.result["start"], p.result["stop"]);
        }
        // At a terminal an answer would be read: refused, not skipped past.
        let e = build(json!({"prompt": "Deploy?"}).as_object().unwrap(), true).unwrap_err();
        assert!(e.to_string().contains("('Deploy?') is not supported"), "{e}");
        assert!(build(json!({"seconds": 1}).as_object().unwrap(), true).is_ok());
    }
}
