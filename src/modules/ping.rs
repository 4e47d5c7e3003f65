//! `ping`: check that the host can be logged in to and runs a command; the result is
//! `ping: <data>` (default `pong`). Ansible's module also proves a usable Python; nothing here
//! needs Python, so the proof is one shell command on the host (a probe: it runs in check
//! mode too, as Ansible's does). `data: crash` fails the task, as Ansible's module raises.

use super::args::{self, opt_string};
use super::{ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct PingModule;

const PARAMS: &[&str] = &["data"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    data: Option<String>,
}

#[derive(Debug)]
struct PingTask {
    data: String,
    /// Makes each ping's probe its own, so no ping answers from another's cached result.
    nonce: u64,
}

module_impl!(PingModule, "ping");

fn build(args: &Map<String, Value>) -> Result<PingTask, ModuleError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let a: Args = args::parse("ping", PARAMS, args)?;
    Ok(PingTask { data: a.data.unwrap_or_else(|| "pong".into()), nonce: NEXT.fetch_add(1, Ordering::Relaxed) })
}

impl ModuleTask for PingTask {
    fn probes(&self) -> Vec<Probe> {
        vec![Probe::new(format!("echo pong # ping {}", self.nonce), Scope::Nothing)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let p = probes.first().ok_or_else(|| ModuleError::Probe("ping: no probe result".into()))?;
        if p.rc != 0 || p.stdout.trim() != "pong" {
            return Err(ModuleError::Probe(format!("ping: the host did not answer (exit {}): {}", p.rc, p.stderr.trim())));
        }
        let mut plan = Plan::ok();
        if self.data == "crash" {
            plan.failed = Some("boom".into());
            return Ok(plan);
        }
        plan.result.insert("ping".into(), json!(self.data));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(out: &str, rc: i32) -> ProbeResult {
        ProbeResult { stdout: out.into(), stderr: String::new(), rc }
    }

    #[test]
    fn pongs_with_the_data_given() {
        let t = build(json!({}).as_object().unwrap()).unwrap();
        let plan = t.plan(&[answer("pong\n", 0)]).unwrap();
        assert_eq!(plan.result["ping"], json!("pong"));
        assert!(!plan.changed() && plan.failed.is_none());
        let t = build(json!({"data": "hello"}).as_object().unwrap()).unwrap();
        assert_eq!(t.plan(&[answer("pong\n", 0)]).unwrap().result["ping"], json!("hello"));
    }

    #[test]
    fn each_ping_asks_the_host_itself() {
        let (a, b) = (build(&Map::new()).unwrap(), build(&Map::new()).unwrap());
        assert_ne!(a.probes()[0].script, b.probes()[0].script);
        assert!(a.plan(&[answer("", 127)]).is_err());
    }

    #[test]
    fn crash_fails_as_ansible_does() {
        let t = build(json!({"data": "crash"}).as_object().unwrap()).unwrap();
        assert_eq!(t.plan(&[answer("pong\n", 0)]).unwrap().failed.as_deref(), Some("boom"));
        assert!(build(json!({"date": 1}).as_object().unwrap()).is_err());
    }
}
