//! `wait_for`: wait until a TCP port accepts (or refuses) connections, a file exists (or
//! holds a pattern, or is gone), a port has no connections left, or just for some seconds.
//!
//! The wait is one action: a shell loop on the host (`delay`, then a check every `sleep`
//! seconds until `timeout`), so it costs one round trip however long it waits. It changes
//! nothing: the task is never `changed`. Connections are opened with bash's `/dev/tcp` (bash
//! is on every Debian host), so no Python or `nc` is needed; patterns are searched with
//! `grep -P` (Perl-compatible, as close to Python's `re` as a host has), and the match groups
//! come from the matched text on the controller.
//!
//! Differences from Ansible: in check mode the wait is skipped (the service it waits for was
//! not restarted either), like a command; on a port, `search_regex` is matched line by line
//! as data arrives; `drained` counts connections with `ss`.

use super::args::{self, opt_string};
use super::{sh_quote, Action, ActionOutput, CheckSupport, ModuleError, ModuleTask, Plan, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct WaitForModule;

const PARAMS: &[&str] = &[
    "host",
    "port",
    "path",
    "state",
    "timeout",
    "delay",
    "sleep",
    "connect_timeout",
    "search_regex",
    "exclude_hosts",
    "active_connection_states",
    "msg",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    host: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    port: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    timeout: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    delay: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    sleep: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    connect_timeout: Option<String>,
    #[serde(default)]
    search_regex: Option<String>,
    #[serde(default, deserialize_with = "args::opt_list")]
    exclude_hosts: Option<Vec<String>>,
    #[serde(default, deserialize_with = "args::opt_list")]
    active_connection_states: Option<Vec<String>>,
    #[serde(default)]
    msg: Option<String>,
}

/// What is waited for.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// Nothing: just `timeout` seconds.
    Time,
    Port { host: String, port: u16 },
    Path(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Port open / file present (`started` and `present` are the same).
    Up,
    /// Port closed / file gone (`stopped` and `absent`).
    Down,
    /// No active connections on the port.
    Drained,
}

#[derive(Debug)]
struct WaitTask {
    target: Target,
    state: State,
    state_name: String,
    timeout: u64,
    delay: u64,
    sleep: u64,
    connect_timeout: u64,
    search_regex: Option<String>,
    exclude_hosts: Vec<String>,
    /// `ss` state names for `drained`.
    active_states: Vec<&'static str>,
    msg: Option<String>,
}

module_impl!(WaitForModule, "wait_for");

fn seconds(name: &str, v: Option<&str>, default: u64) -> Result<u64, ModuleError> {
    match v {
        None => Ok(default),
        Some(s) => s.trim().parse::<f64>().ok().filter(|x| *x >= 0.0).map(|x| x.ceil() as u64).ok_or_else(|| ModuleError::Args(format!("wait_for: {name} must be a number of seconds, got '{s}'"))),
    }
}

/// Ansible's connection state names, as `ss` spells them.
fn ss_state(s: &str) -> Result<&'static str, ModuleError> {
    Ok(match s.trim().to_ascii_uppercase().as_str() {
        "ESTABLISHED" => "established",
        "FIN_WAIT1" => "fin-wait-1",
        "FIN_WAIT2" => "fin-wait-2",
        "SYN_RECV" => "syn-recv",
        "SYN_SENT" => "syn-sent",
        "TIME_WAIT" => "time-wait",
        other => return Err(ModuleError::Args(format!("wait_for: unknown active_connection_state ({other}) defined"))),
    })
}

fn build(args: &Map<String, Value>) -> Result<WaitTask, ModuleError> {
    let a: Args = args::parse("wait_for", PARAMS, args)?;
    let state_name = a.state.clone().unwrap_or_else(|| "started".into());
    let state = match state_name.as_str() {
        "started" | "present" => State::Up,
        "stopped" | "absent" => State::Down,
        "drained" => State::Drained,
        s => return Err(ModuleError::Args(format!("wait_for: state must be one of started, stopped, present, absent, drained; got '{s}'"))),
    };
    let port = match a.port.as_deref() {
        None => None,
        Some(p) => Some(p.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| ModuleError::Args(format!("wait_for: port '{p}' is not a TCP port")))?),
    };
    let target = match (port, a.path) {
        (Some(_), Some(_)) => return Err(ModuleError::Args("wait_for: port and path are mutually exclusive".into())),
        (Some(port), None) => Target::Port { host: a.host.clone().unwrap_or_else(|| "127.0.0.1".into()), port },
        (None, Some(path)) => Target::Path(path),
        (None, None) => Target::Time,
    };
    if matches!(target, Target::Path(_)) && state_name == "stopped" {
        return Err(ModuleError::Args("wait_for: state=stopped should only be used for checking a port".into()));
    }
    if a.exclude_hosts.is_some() && state != State::Drained {
        return Err(ModuleError::Args("wait_for: exclude_hosts should only be with state=drained".into()));
    }
    match (&target, state) {
        (Target::Path(_), State::Drained) => return Err(ModuleError::Args("wait_for: state=drained should only be used for checking a port".into())),
        (Target::Time, State::Drained) => return Err(ModuleError::Args("wait_for: state=drained needs a port".into())),
        _ => {}
    }
    if a.search_regex.is_some() && (state != State::Up || target == Target::Time) {
        return Err(ModuleError::Args("wait_for: search_regex is for a port or a file being waited for (state started or present)".into()));
    }
    if let Some(r) = &a.search_regex {
        // The controller extracts the groups from the match: the pattern must compile here too.
        super::lineinfile::py_regex("wait_for", "search_regex", r)?;
    }
    let default_states = ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "SYN_RECV", "SYN_SENT", "TIME_WAIT"];
    let active_states = match &a.active_connection_states {
        Some(v) => v.iter().map(|s| ss_state(s)).collect::<Result<Vec<_>, _>>()?,
        None => default_states.iter().map(|s| ss_state(s)).collect::<Result<Vec<_>, _>>()?,
    };
    Ok(WaitTask {
        target,
        state,
        state_name,
        timeout: seconds("timeout", a.timeout.as_deref(), 300)?,
        delay: seconds("delay", a.delay.as_deref(), 0)?,
        sleep: seconds("sleep", a.sleep.as_deref(), 1)?.max(1),
        connect_timeout: seconds("connect_timeout", a.connect_timeout.as_deref(), 5)?.max(1),
        search_regex: a.search_regex,
        exclude_hosts: a.exclude_hosts.unwrap_or_default(),
        active_states,
        msg: a.msg,
    })
}

/// The line the wait script prints before the matched text, when there is one.
const MATCH_MARK: &str = "@@provision-wait-for-match@@";

impl WaitTask {
    /// A shell condition that holds when the host is in the state waited for.
    fn check(&self) -> String {
        let ct = self.connect_timeout;
        match (&self.target, self.state) {
            (Target::Time, _) => "false".into(),
            (Target::Path(p), State::Up) => match &self.search_regex {
                None => format!("[ -e {} ]", sh_quote(p)),
                // -z: the whole file is one record, so a pattern may span lines; (?m) gives `^`
                // and `$` Python's MULTILINE meaning.
                Some(r) => format!("[ -r {p} ] && grep -qzP -- {re} {p} 2>/dev/null", p = sh_quote(p), re = sh_quote(&format!("(?m){r}"))),
            },
            (Target::Path(p), _) => format!("[ ! -e {} ]", sh_quote(p)),
            (Target::Port { host, port }, State::Up) => match &self.search_regex {
                None => format!("timeout {ct} bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' _ {} {port} 2>/dev/null", sh_quote(host)),
                Some(r) => format!(
                    "timeout {ct} bash -c 'exec 3<>\"/dev/tcp/$1/$2\" || exit 1; while IFS= read -r -t \"$3\" line <&3 || [ -n \"$line\" ]; do printf \"%s\\n\" \"$line\" | grep -qP -- \"$4\" && {{ printf \"%s\\n%s\\n\" {mark} \"$line\"; exit 0; }}; done; exit 1' _ {} {port} {ct} {re}",
                    sh_quote(host),
                    mark = MATCH_MARK,
                    re = sh_quote(r)
                ),
            },
            (Target::Port { host, port }, State::Down) => format!("! timeout {ct} bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' _ {} {port} 2>/dev/null", sh_quote(host)),
            (Target::Port { port, .. }, State::Drained) => {
                let states: Vec<String> = self.active_states.iter().map(|s| format!("state {s}")).collect();
                // `ss -H`: no header; the peer is the last column. Excluded peers don't count.
                format!(
                    "[ \"$(ss -Htn {} '( sport = :{port} )' | awk -v ex={} 'BEGIN {{ n = split(ex, e, \" \") }} {{ peer = $NF; sub(/:[0-9]+$/, \"\", peer); gsub(/[][]/, \"\", peer); sub(/^::ffff:/, \"\", peer); for (i = 1; i <= n; i++) if (peer == e[i]) next; c++ }} END {{ print c + 0 }}')\" = 0 ]",
                    states.join(" "),
                    sh_quote(&self.exclude_hosts.join(" "))
                )
            }
        }
    }

    fn timeout_message(&self) -> String {
        if let Some(m) = &self.msg {
            return m.clone();
        }
        match (&self.target, self.state) {
            (Target::Time, _) => String::new(),
            (Target::Path(p), State::Up) => match &self.search_regex {
                Some(r) => format!("Timeout when waiting for search string {r} in {p}"),
                None => format!("Timeout when waiting for file {p}"),
            },
            (Target::Path(p), _) => format!("Timeout when waiting for {p} to be absent."),
            (Target::Port { host, port }, State::Up) => match &self.search_regex {
                Some(r) => format!("Timeout when waiting for search string {r} in {host}:{port}"),
                None => format!("Timeout when waiting for {host}:{port}"),
            },
            (Target::Port { host, port }, State::Down) => format!("Timeout when waiting for {host}:{port} to stop."),
            (Target::Port { host, port }, State::Drained) => format!("Timeout when waiting for {host}:{port} to drain"),
        }
    }

    fn summary(&self) -> String {
        let what = match &self.target {
            Target::Time => return format!("wait {} s", self.timeout),
            Target::Path(p) => p.clone(),
            Target::Port { host, port } => format!("{host}:{port}"),
        };
        let state = match self.state {
            State::Up if self.search_regex.is_some() => "to match",
            State::Up => match self.target {
                Target::Path(_) => "to exist",
                _ => "to accept connections",
            },
            State::Down => match self.target {
                Target::Path(_) => "to be absent",
                _ => "to stop",
            },
            State::Drained => "to drain",
        };
        format!("wait for {what} {state} (up to {} s)", self.timeout)
    }

    fn script(&self) -> String {
        let mut s = String::from("start=$(date +%s)\n");
        if self.delay > 0 {
            s.push_str(&format!("sleep {}\n", self.delay));
        }
        if self.target == Target::Time {
            s.push_str(&format!("sleep {}\necho \"elapsed=$(( $(date +%s) - start ))\"\n", self.timeout));
            return s;
        }
        let needs = match (&self.target, self.state) {
            (Target::Port { .. }, State::Drained) => "ss",
            (Target::Port { .. }, _) => "bash",
            (Target::Path(_), _) if self.search_regex.is_some() => "grep",
            _ => "",
        };
        if !needs.is_empty() {
            s.push_str(&format!("command -v {needs} >/dev/null 2>&1 || {{ echo 'wait_for: {needs} is not installed on the host' >&2; exit 3; }}\n"));
        }
        if self.search_regex.is_some() && matches!(self.target, Target::Path(_)) {
            s.push_str("printf x | grep -qzP x 2>/dev/null || { echo 'wait_for: search_regex needs grep -P on the host' >&2; exit 3; }\n");
        }
        let capture = matches!(self.target, Target::Port { .. }) && self.search_regex.is_some();
        let check = if capture { format!("out=$({})", self.check()) } else { self.check() };
        s.push_str(&format!(
            "end=$(( start + {timeout} ))\n\
             while :; do\n\
             \x20 if {check}; then\n\
             \x20   echo \"elapsed=$(( $(date +%s) - start ))\"\n",
            timeout = self.timeout,
        ));
        if capture {
            s.push_str("    printf '%s\\n' \"$out\"\n");
        } else if let (Target::Path(p), Some(r)) = (&self.target, &self.search_regex) {
            // The matched text, for the groups (the first match; NUL-terminated by -z).
            s.push_str(&format!("    echo {MATCH_MARK}; grep -ozP -- {} {} 2>/dev/null | head -c 65536 | tr -d '\\000'\n", sh_quote(&format!("(?m){r}")), sh_quote(p)));
        }
        s.push_str(&format!(
            "    exit 0\n\
             \x20 fi\n\
             \x20 [ \"$(date +%s)\" -ge \"$end\" ] && {{ echo \"elapsed=$(( $(date +%s) - start ))\"; exit 1; }}\n\
             \x20 sleep {}\n\
             done\n",
            self.sleep
        ));
        s
    }
}

impl ModuleTask for WaitTask {
    fn plan(&self, _probes: &[super::ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        plan.actions.push(Action::new(self.summary(), self.script(), Scope::Nothing).may_fail());
        // Waiting changes nothing.
        plan.changed = Some(false);
        plan.result.insert("state".into(), json!(self.state_name));
        match &self.target {
            Target::Port { port, .. } => {
                plan.result.insert("port".into(), json!(port));
            }
            Target::Path(p) => {
                plan.result.insert("path".into(), json!(p));
            }
            Target::Time => {}
        }
        if let Some(r) = &self.search_regex {
            plan.result.insert("search_regex".into(), json!(r));
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let Some(o) = outputs.first() else {
            return Ok(plan);
        };
        let stdout = o.stdout_str();
        let elapsed = stdout.lines().find_map(|l| l.strip_prefix("elapsed=")).and_then(|e| e.trim().parse::<u64>().ok()).unwrap_or(0);
        plan.result.insert("elapsed".into(), json!(elapsed));
        match o.exit_code {
            0 => {}
            1 => {
                plan.failed = Some(self.timeout_message());
                return Ok(plan);
            }
            _ => {
                let err = o.stderr_str();
                plan.failed = Some(if err.trim().is_empty() { format!("wait_for: the wait stopped with exit code {}", o.exit_code) } else { err.trim().to_string() });
                return Ok(plan);
            }
        }
        if let (Some(r), Some((_, matched))) = (&self.search_regex, stdout.split_once(&format!("{MATCH_MARK}\n"))) {
            let re = super::lineinfile::py_regex("wait_for", "search_regex", &format!("(?m){r}"))?;
            let (mut groups, mut named) = (Vec::new(), Map::new());
            if let Some(c) = re.captures(matched) {
                for i in 1..c.len() {
                    groups.push(c.get(i).map_or(Value::Null, |m| json!(m.as_str())));
                }
                for name in re.capture_names().flatten() {
                    named.insert(name.to_string(), c.name(name).map_or(Value::Null, |m| json!(m.as_str())));
                }
            }
            plan.result.insert("match_groups".into(), Value::Array(groups));
            plan.result.insert("match_groupdict".into(), Value::Object(named));
        }
        Ok(plan)
    }

    fn check_support(&self) -> CheckSupport {
        CheckSupport::SkipIfActions
    }

    fn check_skip_reason(&self) -> &'static str {
        "skipped in check mode: no change was made to wait for"
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{apply, assert_sh_syntax, sh};
    use super::*;

    fn task(v: Value) -> WaitTask {
        build(v.as_object().unwrap()).unwrap()
    }

    fn err(v: Value) -> String {
        build(v.as_object().unwrap()).unwrap_err().to_string()
    }

    #[test]
    fn arguments_as_ansible_takes_them() {
        let t = task(json!({"port": "8000", "timeout": 30}));
        assert_eq!(t.target, Target::Port { host: "127.0.0.1".into(), port: 8000 });
        assert_eq!((t.state, t.timeout, t.delay, t.sleep, t.connect_timeout), (State::Up, 30, 0, 1, 5));
        assert_eq!(task(json!({"path": "/x", "state": "absent"})).state, State::Down);
        assert_eq!(task(json!({"port": 80, "state": "drained", "active_connection_states": ["ESTABLISHED"]})).active_states, ["established"]);
        assert_eq!(task(json!({"timeout": 2})).target, Target::Time);
        assert!(err(json!({"port": 80, "path": "/x"})).contains("mutually exclusive"));
        assert!(err(json!({"port": 70000})).contains("not a TCP port"));
        assert!(err(json!({"path": "/x", "state": "drained"})).contains("only be used for checking a port"));
        assert!(err(json!({"port": 80, "state": "stopped", "search_regex": "x"})).contains("search_regex"));
        assert!(err(json!({"path": "/x", "search_regex": "("})).contains("invalid search_regex"));
        assert!(err(json!({"port": 80, "timeout": "soon"})).contains("number of seconds"));
        assert!(err(json!({"port": 80, "state": "up"})).contains("state must be"));
        assert!(err(json!({"port": 80, "bogus": 1})).contains("bogus"));
        assert!(err(json!({"path": "/x", "state": "stopped"})).contains("state=stopped should only be used for checking a port"));
        assert!(err(json!({"port": 80, "exclude_hosts": ["a"]})).contains("exclude_hosts should only be with state=drained"));
        assert!(err(json!({"port": 80, "state": "drained", "active_connection_states": ["CLOSE_WAIT"]})).contains("unknown active_connection_state (CLOSE_WAIT)"));
    }

    #[test]
    fn one_never_changed_action_whose_scripts_parse() {
        for v in [
            json!({"port": 22}),
            json!({"port": 22, "host": "db 1", "state": "stopped", "delay": 2}),
            json!({"port": 22, "host": "db 1", "state": "absent"}),
            json!({"port": 22, "search_regex": "OpenSSH"}),
            json!({"port": 22, "state": "drained", "exclude_hosts": "10.0.0.1,::1"}),
            json!({"path": "/tmp/x"}),
            json!({"path": "/tmp/it's", "search_regex": "ready (?P<n>\\d+)"}),
            json!({"path": "/tmp/x", "state": "absent"}),
            json!({"timeout": 1}),
        ] {
            let t = task(v.clone());
            let p = t.plan(&[]).unwrap();
            assert_eq!(p.actions.len(), 1, "{v}");
            assert!(!p.changed(), "{v}");
            assert!(p.actions[0].may_fail && p.actions[0].touches == Scope::Nothing);
            assert_sh_syntax(&p.actions[0].script);
            let out = std::process::Command::new("bash").arg("-n").arg("-c").arg(&p.actions[0].script).status().unwrap();
            assert!(out.success(), "{v}");
        }
        assert_eq!(task(json!({"port": 22})).plan(&[]).unwrap().result["port"], 22);
        assert_eq!(task(json!({"path": "/p"})).plan(&[]).unwrap().result["state"], "started");
    }

    #[test]
    fn timeouts_fail_with_ansibles_messages_or_msg() {
        let fin = |t: &WaitTask, rc: i32, err: &str| {
            let o = ActionOutput { stdout: b"elapsed=3\n".to_vec(), stderr: err.as_bytes().to_vec(), exit_code: rc };
            t.finish(t.plan(&[]).unwrap(), &[o]).unwrap()
        };
        let p = fin(&task(json!({"port": 8000})), 1, "");
        assert_eq!(p.failed.as_deref(), Some("Timeout when waiting for 127.0.0.1:8000"));
        assert_eq!(p.result["elapsed"], 3);
        assert_eq!(fin(&task(json!({"path": "/run/x", "state": "absent"})), 1, "").failed.as_deref(), Some("Timeout when waiting for /run/x to be absent."));
        assert_eq!(fin(&task(json!({"port": 80, "state": "stopped", "msg": "web still up"})), 1, "").failed.as_deref(), Some("web still up"));
        assert_eq!(fin(&task(json!({"port": 80})), 3, "wait_for: bash is not installed on the host\n").failed.as_deref(), Some("wait_for: bash is not installed on the host"));
        assert!(fin(&task(json!({"port": 80})), 0, "").failed.is_none());
    }

    #[test]
    fn waits_here_for_files_patterns_ports_and_time() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("log");
        let fs = f.display().to_string();
        // The file appears and then holds the pattern after a while: the wait sees both.
        let writer = std::thread::spawn({
            let f = f.clone();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(600));
                std::fs::write(&f, "starting\n").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(900));
                std::fs::write(&f, "starting\nlistening on port 8123\n").unwrap();
            }
        });
        let p = apply(&task(json!({"path": fs, "search_regex": "^listening on port (?P<port>\\d+)$", "timeout": 20})));
        writer.join().unwrap();
        assert!(p.failed.is_none(), "{:?}", p.failed);
        assert_eq!(p.result["match_groups"], json!(["8123"]));
        assert_eq!(p.result["match_groupdict"], json!({"port": "8123"}));
        assert!(p.result["elapsed"].as_u64().unwrap() >= 1);
        // Gone already: no wait. Never there within the timeout: a failure.
        assert!(apply(&task(json!({"path": format!("{fs}.none"), "state": "absent"}))).failed.is_none());
        let p = apply(&task(json!({"path": format!("{fs}.none"), "timeout": 1})));
        assert_eq!(p.failed, Some(format!("Timeout when waiting for file {fs}.none")));
        // A port: listening, then its banner matched; a closed one is stopped.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                use std::io::Write;
                let mut s = s;
                let _ = s.write_all(b"hello\nSSH-2.0-Test_9.2\n");
            }
        });
        assert!(apply(&task(json!({"port": port, "timeout": 5}))).failed.is_none());
        let p = apply(&task(json!({"port": port, "search_regex": "SSH-(\\d)", "timeout": 5})));
        assert!(p.failed.is_none(), "{:?}", p.failed);
        assert_eq!(p.result["match_groups"], json!(["2"]));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(apply(&task(json!({"port": closed, "state": "stopped", "timeout": 5}))).failed.is_none());
        assert!(apply(&task(json!({"port": closed, "timeout": 1, "connect_timeout": 1}))).failed.is_some());
        // Drained: a connection held for a while, closed by the client first (its side's
        // TIME_WAIT is not on the server's port).
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::Read;
            let (mut s, _) = l.accept().unwrap();
            let _ = s.read_to_end(&mut Vec::new());
        });
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let p = apply(&task(json!({"port": port, "state": "drained", "timeout": 1})));
        assert_eq!(p.failed, Some(format!("Timeout when waiting for 127.0.0.1:{port} to drain")));
        assert!(apply(&task(json!({"port": port, "state": "drained", "timeout": 1, "exclude_hosts": ["127.0.0.1"]}))).failed.is_none(), "the only peer is excluded");
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1200));
            drop(client);
        });
        let p = apply(&task(json!({"port": port, "state": "drained", "timeout": 20})));
        assert!(p.failed.is_none(), "{:?}", p.failed);
        assert!(p.result["elapsed"].as_u64().unwrap() >= 1);
        server.join().unwrap();
        // Just time.
        let (rc, out, _) = sh(&task(json!({"timeout": 1})).script(), None);
        assert_eq!((rc, out.trim()), (0, "elapsed=1"));
    }
}

/// Real-host checks: `MS_TESTHOST=<port> MS_KNOWN_HOSTS=<file> cargo test --lib -- --ignored wait_for`.
#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    /// The task's one action run on the test host, then finished as the executor does.
    fn wait_on_host(v: Value) -> Plan {
        let t = build(v.as_object().unwrap()).unwrap();
        let p = testhost::plan(&t);
        let out = testhost::run(&p.actions[0].script, None);
        t.finish(p, &[out]).unwrap()
    }

    #[test]
    #[ignore]
    fn wait_for_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        // sshd's banner, read through bash's /dev/tcp on the host.
        let p = wait_on_host(json!({"port": 22, "search_regex": "OpenSSH_(?P<major>\\d+)", "timeout": 10}));
        assert!(p.failed.is_none(), "{:?}", p.failed);
        assert!(p.result["match_groupdict"]["major"].as_str().is_some_and(|m| m.parse::<u32>().is_ok()), "{:?}", p.result);
        assert!(wait_on_host(json!({"port": 1, "state": "stopped", "timeout": 5})).failed.is_none());
        // A file written a moment later, and a pattern in it.
        testhost::run("rm -f /tmp/wf-ready; (sleep 2; echo 'state: ready' > /tmp/wf-ready) >/dev/null 2>&1 &", None);
        let p = wait_on_host(json!({"path": "/tmp/wf-ready", "search_regex": "state: (\\w+)", "timeout": 20}));
        assert!(p.failed.is_none(), "{:?}", p.failed);
        assert_eq!(p.result["match_groups"], json!(["ready"]));
        assert!(p.result["elapsed"].as_u64().unwrap() >= 1, "{:?}", p.result);
        // sshd has this session's connection open: not drained within a second.
        let p = wait_on_host(json!({"port": 22, "state": "drained", "timeout": 1}));
        assert_eq!(p.failed.as_deref(), Some("Timeout when waiting for 127.0.0.1:22 to drain"));
        testhost::run("rm -f /tmp/wf-ready", None);
    }
}
