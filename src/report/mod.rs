//! Events and reporters. Hosts run independently; every host emits events for every task
//! slot it passes, and the human reporter prints them in play order (`TASK [...]` followed by
//! each host's line) as soon as every host has passed that slot, so output reads like Ansible's
//! linear strategy while no host ever waits for another. `--output json` prints each event as
//! one JSON line immediately.

use crate::modules::Diff;
use anstyle::{AnsiColor, Style};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;

/// Ordering key of a task slot within a play: (task index, handler pass, handler index).
/// Handlers flushed at `meta: flush_handlers` of task T get (T, 1, h); end-of-play handlers
/// get (tasks.len(), 1, h).
pub type SlotKey = (usize, usize, usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl From<&Diff> for DiffOut {
    fn from(d: &Diff) -> Self {
        match d {
            Diff::Text { path, before, after } => DiffOut { path: Some(path.clone()), field: None, before: before.clone(), after: after.clone() },
            Diff::Field { name, before, after } => DiffOut { path: None, field: Some(name.clone()), before: Some(before.clone()), after: Some(after.clone()) },
        }
    }
}

/// One host's result for one task (or one loop item).
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    pub host: String,
    pub status: Status,
    /// Loop item label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<DiffOut>,
    /// What would be / was done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    pub ignored: bool,
    /// An ignored failure whose result says it changed something (a failing `command`):
    /// Ansible counts it `changed` as well as `ignored`.
    #[serde(skip)]
    pub changed: bool,
    /// A failure a block's `rescue` takes over (counted `rescued`, not `failed`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rescued: bool,
    /// Full registered result (shown with -v).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub result: Value,
    /// Counts in the recap (false for individual loop items; the summary line counts).
    #[serde(skip)]
    pub counts: bool,
    /// The task says `diff: true`: its diffs are shown without `--diff`.
    #[serde(skip)]
    pub show_diff: bool,
}

impl TaskResult {
    /// A result with only a status and a message (connection, facts, play-level failures).
    pub fn new(host: &str, status: Status, msg: Option<String>) -> TaskResult {
        TaskResult { host: host.to_string(), status, item: None, msg, diffs: vec![], actions: vec![], ignored: false, changed: false, rescued: false, result: Value::Null, counts: true, show_diff: false }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PlayStart { play: usize, name: String, hosts: Vec<String>, check: bool },
    /// A task slot begins (sent by a host when it starts the slot; printed once). In JSON,
    /// `slot` ([`SlotKey`]) ties a task's results to it: names needn't be unique.
    Task { play: usize, #[serde(rename = "slot")] key: SlotKey, name: String, handler: bool, location: String },
    /// A host's result of slot `key` (`[0, 0, 0]`: connection and facts).
    Result { play: usize, #[serde(rename = "slot")] key: SlotKey, task: String, #[serde(flatten)] result: TaskResult },
    /// Host finished the slot `key` (results may follow for the slot before this).
    #[serde(skip)]
    Passed { play: usize, host: String, key: SlotKey },
    /// Host is done with the play (finished, failed or unreachable).
    HostDone { play: usize, host: String },
    /// The run ends after this play: a batch lost every host, or a failure was fatal
    /// (`any_errors_fatal`, `max_fail_percentage`). Later plays don't start.
    NoMoreHosts { play: usize },
    Warning { host: Option<String>, msg: String },
    /// A task's attempt didn't meet its `until` (or failed, with `retries` alone): it runs
    /// again after its `delay`. Printed at once, as Ansible's "FAILED - RETRYING" line.
    Retry { play: usize, #[serde(rename = "slot")] key: SlotKey, host: String, task: String, retries_left: u32 },
    Recap { stats: BTreeMap<String, HostStats> },
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HostStats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
    /// Commands sent to the host (facts, probe batches, actions): SSH round trips.
    pub round_trips: u32,
}

impl HostStats {
    pub fn count(&mut self, r: &TaskResult) {
        if !r.counts {
            return;
        }
        match r.status {
            Status::Ok => self.ok += 1,
            Status::Changed => {
                self.ok += 1;
                self.changed += 1
            }
            Status::Skipped => self.skipped += 1,
            Status::Failed if r.ignored => {
                self.ignored += 1;
                self.ok += 1;
                self.changed += u32::from(r.changed)
            }
            Status::Failed if r.rescued => self.rescued += 1,
            Status::Failed => self.failed += 1,
            Status::Unreachable if r.ignored => {
                self.ignored += 1;
                self.ok += 1
            }
            Status::Unreachable => self.unreachable += 1,
        }
    }
}

pub trait Reporter: Send {
    fn event(&mut self, e: Event);
    fn finish(&mut self) {}
}

/// What a failure's result says beyond its message, indented under its `FAILED!` line (Ansible
/// prints the result; `-vv` prints the whole result instead): the assertion that was false,
/// a command's exit code and output (at most the last 20 lines of each stream).
fn failure_details(result: &Value) -> String {
    if let Some(a) = result.get("assertion").and_then(Value::as_str) {
        return format!("\n    assertion: {a}");
    }
    let Some(rc) = result.get("rc").and_then(Value::as_i64) else { return String::new() };
    let mut out = format!("\n    rc: {rc}");
    for stream in ["stderr", "stdout"] {
        let text = result.get(stream).and_then(Value::as_str).unwrap_or("").trim_end();
        if text.is_empty() {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        let shown = &lines[lines.len().saturating_sub(20)..];
        out.push_str(&format!("\n    {stream}:"));
        if shown.len() < lines.len() {
            out.push_str(&format!(" ({} earlier lines not shown)", lines.len() - shown.len()));
        }
        for l in shown {
            out.push_str(&format!("\n      {l}"));
        }
    }
    out
}

/// Options of the human reporter.
#[derive(Debug, Clone, Copy, Default)]
pub struct HumanOptions {
    pub diff: bool,
    pub verbosity: u8,
    pub check: bool,
}

/// Ansible-like output.
pub struct HumanReporter<W: Write + Send> {
    out: W,
    opts: HumanOptions,
    play: Option<usize>,
    /// Hosts of the current play still running -> last slot they passed.
    progress: BTreeMap<String, Option<SlotKey>>,
    /// Buffered slots: key -> (header, results in arrival order).
    pending: BTreeMap<SlotKey, Slot>,
    /// Slots whose header is out already (printed early for a retry line).
    headers_out: std::collections::BTreeSet<SlotKey>,
}

/// A buffered slot: its header (name, is a handler) and its results in arrival order.
type Slot = (Option<(String, bool)>, Vec<(String, TaskResult)>);

fn paint(style: Style, s: &str) -> String {
    format!("{}{}{}", style.render(), s, style.render_reset())
}

fn green() -> Style {
    Style::new().fg_color(Some(AnsiColor::Green.into()))
}
fn yellow() -> Style {
    Style::new().fg_color(Some(AnsiColor::Yellow.into()))
}
fn red() -> Style {
    Style::new().fg_color(Some(AnsiColor::Red.into()))
}
fn cyan() -> Style {
    Style::new().fg_color(Some(AnsiColor::Cyan.into()))
}
fn magenta() -> Style {
    Style::new().fg_color(Some(AnsiColor::Magenta.into()))
}

pub fn banner(title: &str) -> String {
    let width: usize = 79;
    let stars = width.saturating_sub(title.chars().count() + 1).max(3);
    format!("{title} {}", "*".repeat(stars))
}

/// Render diffs like Ansible's --diff: unified text diffs, and before/after for attributes.
pub fn render_diffs(diffs: &[DiffOut]) -> String {
    let mut s = String::new();
    let fields: Vec<&DiffOut> = diffs.iter().filter(|d| d.field.is_some()).collect();
    if !fields.is_empty() {
        s.push_str("--- before\n+++ after\n");
        for d in &fields {
            let name = d.field.as_deref().unwrap_or("");
            s.push_str(&paint(red(), &format!("-  {name}: {}", d.before.as_deref().unwrap_or(""))));
            s.push('\n');
            s.push_str(&paint(green(), &format!("+  {name}: {}", d.after.as_deref().unwrap_or(""))));
            s.push('\n');
        }
    }
    for d in diffs.iter().filter(|d| d.path.is_some()) {
        let path = d.path.as_deref().unwrap_or("");
        let before = d.before.as_deref().unwrap_or("");
        let after = d.after.as_deref().unwrap_or("");
        let bh = if d.before.is_some() { format!("before: {path}") } else { "before: (absent)".to_string() };
        let ah = if d.after.is_some() { format!("after: {path}") } else { "after: (absent)".to_string() };
        let diff = similar::TextDiff::from_lines(before, after);
        let text = diff.unified_diff().context_radius(3).header(&bh, &ah).to_string();
        for line in text.lines() {
            let styled = if line.starts_with("+++") || line.starts_with("---") {
                line.to_string()
            } else if line.starts_with('+') {
                paint(green(), line)
            } else if line.starts_with('-') {
                paint(red(), line)
            } else if line.starts_with("@@") {
                paint(cyan(), line)
            } else {
                line.to_string()
            };
            s.push_str(&styled);
            s.push('\n');
        }
        if !after.is_empty() && !after.ends_with('\n') {
            s.push_str("\\ No newline at end of file\n");
        }
    }
    s
}

impl<W: Write + Send> HumanReporter<W> {
    pub fn new(out: W, opts: HumanOptions) -> Self {
        HumanReporter { out, opts, play: None, progress: BTreeMap::new(), pending: BTreeMap::new(), headers_out: Default::default() }
    }

    fn line(&mut self, s: &str) {
        let _ = writeln!(self.out, "{s}");
    }

    fn print_result(&mut self, r: &TaskResult) {
        let item = r.item.as_ref().map(|i| format!(" => (item={i})")).unwrap_or_default();
        let (word, style) = match r.status {
            Status::Ok => ("ok", green()),
            Status::Changed => ("changed", yellow()),
            Status::Skipped => ("skipping", cyan()),
            Status::Failed => ("failed", red()),
            Status::Unreachable => ("fatal", red()),
        };
        if (self.opts.diff || r.show_diff) && !r.diffs.is_empty() {
            let d = render_diffs(&r.diffs);
            let _ = write!(self.out, "{d}");
        }
        let mut text = format!("{word}: [{}]{item}", r.host);
        match r.status {
            Status::Unreachable => {
                text = format!("fatal: [{}]{item}: UNREACHABLE! => {}", r.host, r.msg.clone().unwrap_or_default());
                if r.ignored {
                    text.push_str("\n...ignoring");
                }
            }
            Status::Failed => {
                text = format!("fatal: [{}]{item}: FAILED! => {}", r.host, r.msg.clone().unwrap_or_default());
                if self.opts.verbosity < 2 {
                    text.push_str(&failure_details(&r.result));
                }
                if r.ignored {
                    text.push_str("\n...ignoring");
                }
            }
            Status::Skipped => {
                // A false condition is the usual reason and stays quiet, like Ansible; any other
                // reason (check mode could not predict, command not run) is worth showing.
                if let Some(m) = &r.msg {
                    if self.opts.verbosity > 0 || !m.starts_with("Conditional result was False") {
                        text.push_str(&format!(" => {m}"));
                    }
                }
            }
            _ => {
                if let Some(m) = &r.msg {
                    if m.contains('\n') {
                        text.push_str(&format!(" => \n{m}"));
                    } else {
                        text.push_str(&format!(" => {m}"));
                    }
                }
            }
        }
        if self.opts.verbosity >= 1 && matches!(r.status, Status::Changed | Status::Ok) && !r.actions.is_empty() {
            for a in &r.actions {
                text.push_str(&format!("\n    - {a}"));
            }
        }
        if self.opts.verbosity >= 2 && !r.result.is_null() {
            text.push_str(&format!("\n{}", serde_json::to_string_pretty(&r.result).unwrap_or_default()));
        }
        let painted = paint(style, &text);
        self.line(&painted);
    }

    fn print_header(&mut self, (name, handler): &(String, bool)) {
        self.line("");
        let title = if *handler { format!("RUNNING HANDLER [{name}]") } else { format!("TASK [{name}]") };
        self.line(&banner(&title));
    }

    /// Print every buffered slot that all running hosts have passed.
    fn flush_ready(&mut self, all: bool) {
        while let Some((&key, _)) = self.pending.iter().next() {
            let ready = all || self.progress.values().all(|p| p.is_some_and(|k| k >= key));
            if !ready {
                break;
            }
            let (header, results) = self.pending.remove(&key).unwrap_or_default();
            if let Some(h) = header.filter(|_| !self.headers_out.remove(&key)) {
                self.print_header(&h);
            }
            for (_, r) in results {
                self.print_result(&r);
            }
        }
    }
}

impl<W: Write + Send> Reporter for HumanReporter<W> {
    fn event(&mut self, e: Event) {
        match e {
            Event::PlayStart { play, name, hosts, check } => {
                self.flush_ready(true);
                self.play = Some(play);
                self.progress = hosts.iter().map(|h| (h.clone(), None)).collect();
                self.line("");
                let title = if check { format!("PLAY [{name}] (check mode)") } else { format!("PLAY [{name}]") };
                self.line(&banner(&title));
                if hosts.is_empty() {
                    self.line(&paint(magenta(), "skipping: no hosts matched"));
                }
            }
            Event::Task { key, name, handler, .. } => {
                let slot = self.pending.entry(key).or_default();
                if slot.0.is_none() {
                    slot.0 = Some((name, handler));
                }
            }
            Event::Result { key, task, result, .. } => {
                self.pending.entry(key).or_default().1.push((task, result));
            }
            Event::Passed { host, key, .. } => {
                if let Some(p) = self.progress.get_mut(&host) {
                    *p = Some(key);
                }
                self.flush_ready(false);
            }
            Event::HostDone { host, .. } => {
                self.progress.remove(&host);
                self.flush_ready(false);
            }
            Event::NoMoreHosts { .. } => {
                self.flush_ready(true);
                self.line("");
                self.line(&banner("NO MORE HOSTS LEFT"));
            }
            Event::Retry { key, host, task, retries_left, .. } => {
                // Under its task's header when every slot before it is out (as Ansible shows
                // it), else at once: a retry line is news of a wait in progress.
                if self.pending.keys().next() == Some(&key) && !self.headers_out.contains(&key) {
                    if let Some(h) = self.pending.get(&key).and_then(|s| s.0.clone()) {
                        self.print_header(&h);
                        self.headers_out.insert(key);
                    }
                }
                let _ = writeln!(self.out, "{}", paint(red(), &format!("FAILED - RETRYING: [{host}]: {task} ({retries_left} retries left).")));
            }
            Event::Warning { host, msg } => {
                let text = match host {
                    Some(h) => format!("[WARNING]: [{h}] {msg}"),
                    None => format!("[WARNING]: {msg}"),
                };
                let _ = writeln!(self.out, "{}", paint(magenta(), &text));
            }
            Event::Recap { stats } => {
                self.flush_ready(true);
                self.line("");
                self.line(&banner("PLAY RECAP"));
                for (host, s) in &stats {
                    let host_style = if s.failed > 0 || s.unreachable > 0 {
                        red()
                    } else if s.changed > 0 {
                        yellow()
                    } else {
                        green()
                    };
                    let host_col = paint(host_style, &format!("{host:<26}"));
                    // Ansible's layout: `label=%-4d` columns.
                    let num = |n: u32, st: Style, label: &str| {
                        let t = format!("{label}={n:<4}");
                        if n > 0 {
                            paint(st, &t)
                        } else {
                            t
                        }
                    };
                    let line = format!(
                        "{host_col}: {} {} {} {} {} {} {}",
                        num(s.ok, green(), "ok"),
                        num(s.changed, yellow(), "changed"),
                        num(s.unreachable, red(), "unreachable"),
                        num(s.failed, red(), "failed"),
                        num(s.skipped, cyan(), "skipped"),
                        num(s.rescued, green(), "rescued"),
                        num(s.ignored, magenta(), "ignored"),
                    );
                    let line = if self.opts.verbosity >= 1 { format!("{} round_trips={}", line.trim_end(), s.round_trips) } else { line };
                    self.line(line.trim_end());
                }
                self.line("");
            }
        }
        let _ = self.out.flush();
    }

    fn finish(&mut self) {
        self.flush_ready(true);
        let _ = self.out.flush();
    }
}

/// One JSON object per line.
pub struct JsonReporter<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonReporter<W> {
    pub fn new(out: W) -> Self {
        JsonReporter { out }
    }
}

impl<W: Write + Send> Reporter for JsonReporter<W> {
    fn event(&mut self, e: Event) {
        if matches!(e, Event::Passed { .. }) {
            return;
        }
        if let Ok(s) = serde_json::to_string(&e) {
            let _ = writeln!(self.out, "{s}");
            let _ = self.out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(host: &str, status: Status) -> TaskResult {
        TaskResult::new(host, status, None)
    }

    #[test]
    fn prints_slots_in_order_once_every_host_passed_them() {
        let mut buf = Vec::new();
        {
            let mut r = HumanReporter::new(&mut buf, HumanOptions::default());
            r.event(Event::PlayStart { play: 0, name: "web".into(), hosts: vec!["a".into(), "b".into()], check: false });
            for (h, k) in [("a", 0), ("a", 1)] {
                r.event(Event::Task { play: 0, key: (k, 0, 0), name: format!("t{k}"), handler: false, location: String::new() });
                r.event(Event::Result { play: 0, key: (k, 0, 0), task: format!("t{k}"), result: res(h, Status::Changed) });
                r.event(Event::Passed { play: 0, host: h.into(), key: (k, 0, 0) });
            }
            r.event(Event::Result { play: 0, key: (0, 0, 0), task: "t0".into(), result: res("b", Status::Ok) });
            r.event(Event::Passed { play: 0, host: "b".into(), key: (0, 0, 0) });
            r.event(Event::HostDone { play: 0, host: "b".into() });
            let mut stats = BTreeMap::new();
            stats.insert("a".to_string(), HostStats { ok: 2, changed: 2, ..Default::default() });
            r.event(Event::Recap { stats });
        }
        let text = String::from_utf8(buf).unwrap();
        let plain = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap().replace_all(&text, "").to_string();
        let t0 = plain.find("TASK [t0]").unwrap();
        let b0 = plain.find("ok: [b]").unwrap();
        let t1 = plain.find("TASK [t1]").unwrap();
        assert!(t0 < b0 && b0 < t1, "{plain}");
        assert!(plain.contains("PLAY RECAP"));
        assert!(plain.contains("ok=2") && plain.contains("changed=2") && plain.contains("failed=0"), "{plain}");
    }

    #[test]
    fn a_retry_line_comes_under_its_task_header_printed_once() {
        let mut buf = Vec::new();
        {
            let mut r = HumanReporter::new(&mut buf, HumanOptions::default());
            r.event(Event::PlayStart { play: 0, name: "p".into(), hosts: vec!["a".into(), "b".into()], check: false });
            r.event(Event::Task { play: 0, key: (1, 0, 0), name: "wait".into(), handler: false, location: String::new() });
            r.event(Event::Retry { play: 0, key: (1, 0, 0), host: "a".into(), task: "wait".into(), retries_left: 2 });
            r.event(Event::Task { play: 0, key: (1, 0, 0), name: "wait".into(), handler: false, location: String::new() });
            for h in ["a", "b"] {
                r.event(Event::Result { play: 0, key: (1, 0, 0), task: "wait".into(), result: res(h, Status::Ok) });
                r.event(Event::Passed { play: 0, host: h.into(), key: (1, 0, 0) });
            }
        }
        let plain = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap().replace_all(&String::from_utf8(buf).unwrap(), "").to_string();
        assert_eq!(plain.matches("TASK [wait]").count(), 1, "{plain}");
        let (header, retry, ok) = (plain.find("TASK [wait]").unwrap(), plain.find("FAILED - RETRYING: [a]: wait (2 retries left).").unwrap(), plain.find("ok: [a]").unwrap());
        assert!(header < retry && retry < ok, "{plain}");
    }

    #[test]
    fn a_failed_command_shows_its_exit_code_and_output() {
        let mut buf = Vec::new();
        {
            let mut r = HumanReporter::new(&mut buf, HumanOptions::default());
            r.event(Event::PlayStart { play: 0, name: "p".into(), hosts: vec!["a".into()], check: false });
            r.event(Event::Task { play: 0, key: (1, 0, 0), name: "ls".into(), handler: false, location: String::new() });
            let mut failed = TaskResult::new("a", Status::Failed, Some("non-zero return code".into()));
            let many: String = (1..=25).map(|i| format!("line {i}\n")).collect();
            failed.result = serde_json::json!({"rc": 2, "stderr": "ls: cannot access '/nope': No such file or directory", "stdout": many});
            r.event(Event::Result { play: 0, key: (1, 0, 0), task: "ls".into(), result: failed });
            r.event(Event::HostDone { play: 0, host: "a".into() });
            r.event(Event::Recap { stats: BTreeMap::new() });
        }
        let text = String::from_utf8(buf).unwrap();
        let plain = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap().replace_all(&text, "").to_string();
        assert!(plain.contains("fatal: [a]: FAILED! => non-zero return code\n    rc: 2\n    stderr:\n      ls: cannot access '/nope': No such file or directory\n    stdout: (5 earlier lines not shown)\n      line 6\n"), "{plain}");
        assert!(plain.contains("      line 25\n") && !plain.contains("line 5\n"), "{plain}");
        // not a command: the message alone, or with the false assertion
        assert_eq!(failure_details(&serde_json::json!({"msg": "x"})), "");
        assert_eq!(failure_details(&serde_json::json!({"msg": "Assertion failed", "assertion": "x > 1", "evaluated_to": false})), "\n    assertion: x > 1");
    }

    #[test]
    fn renders_text_and_field_diffs() {
        let d = vec![
            DiffOut { path: None, field: Some("mode".into()), before: Some("0755".into()), after: Some("0750".into()) },
            DiffOut { path: Some("/etc/x".into()), field: None, before: Some("a\nb\n".into()), after: Some("a\nc\n".into()) },
        ];
        let s = render_diffs(&d);
        assert!(s.contains("mode: 0755") && s.contains("mode: 0750"));
        assert!(s.contains("--- before: /etc/x") && s.contains("+c"), "{s}");
    }
}
