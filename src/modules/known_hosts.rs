//! `known_hosts`: a host's key in an SSH `known_hosts` file on the host (before a `git`
//! clone over SSH, say), decided as Ansible's module decides.
//!
//! One probe reads the file (`path`, default `~/.ssh/known_hosts` of the user the task runs
//! as); the lines for `name` are found here as `ssh-keygen -F` finds them (plain names,
//! `[host]:port`, comma lists, wildcards, hashed `|1|salt|hash` names). Then, as Ansible:
//! - `present`: a line with the same key (the host field compared too; a hashed key against a
//!   hashed line compares the key only) leaves the file alone; else the first line with a key
//!   of the same type is replaced, or the key is appended. `hash_host` writes the name hashed
//!   with a fresh salt.
//! - `absent` with a `key`: the line holding it (or the first key of its type) is removed;
//!   without a `key`: every line for the host, with `ssh-keygen -R` (which keeps
//!   `<path>.old`), as Ansible does.
//!
//! The file is rewritten atomically, keeping its owner and mode (a new one gets the umask's
//! mode and the task user's ownership); its folder must exist. Differences: the diff of an
//! `absent` without `key` shows the lines removed (Ansible's shows none), and the file
//! `ssh-keygen -R` wrote gets its owner back (with Ansible it becomes the task user's).

use super::args::{self, opt_boolish, opt_string};
use super::common::{self, FileKind, FileState};
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct KnownHostsModule;

const PARAMS: &[&str] = &["name", "host", "key", "path", "hash_host", "state"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, alias = "host", deserialize_with = "opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    key: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    path: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    hash_host: Option<bool>,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug)]
struct KnownHostsTask {
    /// Lowercased, as Ansible looks it up.
    host: String,
    /// The line to have (hashed already with `hash_host`), ending in a newline.
    key: Option<String>,
    /// As given (`~` expanded on the host).
    path: String,
    hash_host: bool,
    present: bool,
}

module_impl!(KnownHostsModule, "known_hosts");

/// A key line's fields, as Ansible's `normalize_known_hosts_key` keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyLine {
    marker: Option<String>,
    hosts: String,
    key_type: String,
    key: String,
}

fn parse_line(line: &str) -> Option<KeyLine> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.first()? {
        m if m.starts_with('@') => Some(KeyLine { marker: Some(m.to_string()), hosts: f.get(1)?.to_string(), key_type: f.get(2)?.to_string(), key: f.get(3)?.to_string() }),
        _ => Some(KeyLine { marker: None, hosts: f[0].to_string(), key_type: f.get(1)?.to_string(), key: f.get(2)?.to_string() }),
    }
}

/// The key line with its host field hashed (`|1|salt|hash`, HMAC-SHA1 of `host` under a fresh
/// 20-byte salt), as `ssh-keygen -H` and Ansible's `hash_host` write it.
fn hash_host_key(host: &str, key: &str, salt: &[u8; 20]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt).expect("any key size");
    mac.update(host.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    let hashed = format!("|1|{}|{}", b64.encode(salt), b64.encode(mac.finalize().into_bytes()));
    let mut parts: Vec<&str> = key.split_whitespace().collect();
    let i = usize::from(parts.first().is_some_and(|p| p.starts_with('@')));
    if i < parts.len() {
        parts[i] = &hashed;
    }
    parts.join(" ")
}

fn build(args: &Map<String, Value>) -> Result<KnownHostsTask, ModuleError> {
    let a: Args = args::parse("known_hosts", PARAMS, args)?;
    let present = args::present_state("known_hosts", a.state.as_deref())?;
    let host = a.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| ModuleError::Args("known_hosts: name is required".into()))?.to_lowercase();
    let hash_host = a.hash_host.unwrap_or(false);
    let key = match a.key.filter(|k| !k.trim().is_empty()) {
        None if present => return Err(ModuleError::Args("known_hosts: No key specified when adding a host".into())),
        None => None,
        Some(k) => {
            let parsed = parse_line(k.trim()).ok_or_else(|| ModuleError::Args(format!("known_hosts: key must be a known_hosts line ('host keytype base64key'), got '{}'", k.trim())))?;
            if regex::Regex::new(r"\S+(\s+)?,(\s+)?").expect("static regex").is_match(&host) {
                return Err(ModuleError::Args("known_hosts: Comma separated list of names is not supported. Please pass a single name to lookup in the known_hosts file.".into()));
            }
            if !crate::connection::known_hosts::host_matches(&parsed.hosts, &host) {
                return Err(ModuleError::Args("known_hosts: Host parameter does not match hashed host field in supplied key".into()));
            }
            let k = if hash_host { hash_host_key(&host, &k, &rand::random()) } else { k };
            Some(if k.ends_with('\n') { k } else { format!("{k}\n") })
        }
    };
    Ok(KnownHostsTask { host, key, path: a.path.unwrap_or_else(|| "~/.ssh/known_hosts".into()), hash_host, present })
}

/// `path` as a shell word, `~` and `~user` expanded on the host (as Ansible's `type='path'`).
fn path_word(path: &str) -> String {
    if path == "~" {
        return "\"$HOME\"".into();
    }
    if let Some(rest) = path.strip_prefix("~/") {
        return format!("\"$HOME\"/{}", sh_quote(rest));
    }
    if let Some(after) = path.strip_prefix('~') {
        let (user, rest) = after.split_once('/').unwrap_or((after, ""));
        if !user.is_empty() && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            let home = format!("\"$(getent passwd {} | cut -d: -f6)\"", sh_quote(user));
            return if rest.is_empty() { home } else { format!("{home}/{}", sh_quote(rest)) };
        }
    }
    sh_quote(path)
}

/// What Ansible's `search_for_host_key` answers: is the host in the file, must the key be
/// replaced or added, and the (1-based) line of a key of the same type.
fn search(host: &str, key: Option<&str>, content: &str) -> (bool, bool, Option<usize>) {
    let matches: Vec<(usize, KeyLine)> = content
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|(i, l)| parse_line(l).map(|k| (i + 1, k)))
        .filter(|(_, k)| crate::connection::known_hosts::host_matches(&k.hosts, host))
        .collect();
    if matches.is_empty() {
        return (false, false, None);
    }
    let Some(key) = key else { return (true, false, None) };
    let Some(mut wanted) = parse_line(key.trim()) else { return (true, true, None) };
    for (line, found) in matches {
        let special = found.marker.as_deref().is_some_and(|m| m.starts_with("@cert-authority") || m.starts_with("@revoke"));
        if special {
            if wanted == found {
                return (true, false, Some(line));
            }
            continue;
        }
        if wanted.hosts.starts_with("|1|") && found.hosts.starts_with("|1|") {
            // Don't change the host's hash if it is hashed already.
            wanted.hosts = found.hosts.clone();
        }
        if wanted == found {
            return (true, false, Some(line));
        }
        if wanted.key_type == found.key_type {
            return (true, true, Some(line));
        }
    }
    (true, true, None)
}

const PATH_MARK: &str = "path|";

impl ModuleTask for KnownHostsTask {
    fn probes(&self) -> Vec<Probe> {
        let reads = if self.path.starts_with('/') { Scope::path(&self.path) } else { Scope::Host };
        vec![Probe::new(format!("p={}\nprintf '{PATH_MARK}%s\\n' \"$p\"\n{}", path_word(&self.path), common::stat_lines(true)), reads)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let p = probes.first().ok_or_else(|| ModuleError::Probe("known_hosts: no probe result".into()))?;
        let (first, rest) = p.stdout.split_once('\n').unwrap_or((p.stdout.as_str(), ""));
        let path = first.strip_prefix(PATH_MARK).ok_or_else(|| ModuleError::Probe(format!("known_hosts: '{first}'")))?.to_string();
        let st: FileState = common::parse_file_state(&ProbeResult { stdout: rest.to_string(), ..p.clone() })?;
        let mut plan = Plan::ok();
        for (k, v) in [("name", json!(self.host)), ("key", json!(self.key.as_deref().map(str::trim_end))), ("path", json!(path)), ("hash_host", json!(self.hash_host)), ("state", json!(if self.present { "present" } else { "absent" }))] {
            plan.result.insert(k.into(), v);
        }
        let before = match st.kind {
            FileKind::Absent => None,
            FileKind::File => Some(st.text().ok_or_else(|| ModuleError::Failed(format!("known_hosts: {path} is too big or not text")))?),
            _ => return Err(ModuleError::Failed(format!("known_hosts: {path} is not a regular file ({})", st.kind.name()))),
        };
        let (found, replace_or_add, found_line) = match &before {
            None => (false, false, None),
            Some(text) => search(&self.host, self.key.as_deref(), text),
        };
        if !self.present && found_line.is_none() && self.key.is_some() {
            return Ok(plan);
        }
        if !(replace_or_add || self.present != found) {
            return Ok(plan);
        }
        let text = before.clone().unwrap_or_default();
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        if !self.present && self.key.is_none() {
            // Every line for the host goes, as `ssh-keygen -R` removes them.
            lines.retain(|l| l.trim_start().starts_with('#') || parse_line(l).is_none_or(|k| !crate::connection::known_hosts::host_matches(&k.hosts, &self.host)));
            let after: String = lines.concat();
            plan.diffs.push(Diff::Text { path: path.clone(), before: before.clone(), after: Some(after) });
            // ssh-keygen writes a new file as the task's user: the owner is put back.
            let script = format!("ssh-keygen -R {h} -f {p} >/dev/null && chown {}:{} {p}", st.uid, st.gid, h = sh_quote(&self.host), p = sh_quote(&path));
            plan.actions.push(Action::new(format!("remove {} from {path}", self.host), script, Scope::path(&path)));
            return Ok(plan);
        }
        if let Some(n) = found_line.filter(|n| (replace_or_add || !self.present) && (1..=lines.len()).contains(n)) {
            lines.remove(n - 1);
        }
        let mut after: String = lines.concat();
        if self.present {
            after.push_str(self.key.as_deref().unwrap_or(""));
        }
        plan.diffs.push(common::content_diff(&path, &st, after.as_bytes()));
        let (owner, group) = match before {
            Some(_) => (Some(st.uid.to_string()), Some(st.gid.to_string())),
            None => (None, None),
        };
        let existing = before.as_ref().map(|_| st.mode);
        let mut action = common::write_file_action(&path, after.as_bytes(), owner.as_deref(), group.as_deref(), None, existing);
        action.summary = if self.present { format!("add {} to {path}", self.host) } else { format!("remove {} from {path}", self.host) };
        plan.actions.push(action);
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ4Zn3rV7z8Qd4r0k8o3c2QnXx0y3yqk0e2fY1m5m1aB";
    const RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7";

    fn task(args: Value) -> KnownHostsTask {
        build(args.as_object().unwrap()).unwrap()
    }

    fn file(path: &str, content: Option<&str>) -> ProbeResult {
        let b64 = base64::engine::general_purpose::STANDARD;
        let stdout = match content {
            None => format!("{PATH_MARK}{path}\nabsent\n"),
            Some(c) => format!("{PATH_MARK}{path}\nfile|deploy|deploy|1000|1000|600|{}|0\ncontent\n{}\n", c.len(), b64.encode(c)),
        };
        ProbeResult { stdout, stderr: String::new(), rc: 0 }
    }

    fn written(plan: &Plan) -> String {
        String::from_utf8(plan.actions[0].stdin.clone().unwrap()).unwrap()
    }

    #[test]
    fn appends_a_new_host_and_creates_the_file() {
        let t = task(json!({"name": "GitHub.com", "key": format!("github.com ssh-ed25519 {ED}")}));
        assert!(t.probes()[0].script.starts_with("p=\"$HOME\"/.ssh/known_hosts\n"));
        let plan = t.plan(&[file("/home/deploy/.ssh/known_hosts", None)]).unwrap();
        assert_eq!(written(&plan), format!("github.com ssh-ed25519 {ED}\n"));
        // A new file: the umask's mode, the task user's ownership.
        assert!(!plan.actions[0].script.contains("chown") && plan.actions[0].script.contains("umask"));
        assert_eq!(plan.result["path"], json!("/home/deploy/.ssh/known_hosts"));
        assert_eq!(plan.result["name"], json!("github.com"));
        let plan = t.plan(&[file("/k", Some(&format!("other.org ssh-ed25519 {ED2}\n")))]).unwrap();
        assert_eq!(written(&plan), format!("other.org ssh-ed25519 {ED2}\ngithub.com ssh-ed25519 {ED}\n"));
        // The existing file's owner and mode are kept.
        assert!(plan.actions[0].script.contains("chown 1000") && plan.actions[0].script.contains("chmod 0600"));
    }

    #[test]
    fn the_same_key_changes_nothing_a_new_key_of_its_type_replaces_the_old() {
        let t = task(json!({"name": "github.com", "key": format!("github.com ssh-ed25519 {ED}"), "path": "/etc/ssh/ssh_known_hosts"}));
        let same = format!("# keys\ngithub.com ssh-ed25519 {ED} a comment\n");
        assert!(t.plan(&[file("/etc/ssh/ssh_known_hosts", Some(&same))]).unwrap().actions.is_empty());
        let old = format!("a.org ssh-rsa {RSA}\ngithub.com ssh-rsa {RSA}\ngithub.com ssh-ed25519 {ED2}\nb.org ssh-ed25519 {ED2}\n");
        let plan = t.plan(&[file("/etc/ssh/ssh_known_hosts", Some(&old))]).unwrap();
        assert_eq!(written(&plan), format!("a.org ssh-rsa {RSA}\ngithub.com ssh-rsa {RSA}\nb.org ssh-ed25519 {ED2}\ngithub.com ssh-ed25519 {ED}\n"));
        assert!(matches!(&plan.diffs[0], Diff::Text { .. }));
        // As Ansible compares the host field too: a line listing more names is replaced.
        let listed = format!("github.com,140.82.112.3 ssh-ed25519 {ED}\n");
        assert_eq!(written(&t.plan(&[file("/k", Some(&listed))]).unwrap()), format!("github.com ssh-ed25519 {ED}\n"));
        // Another key type for the host: added beside it.
        let rsa_only = format!("github.com ssh-rsa {RSA}\n");
        assert_eq!(written(&t.plan(&[file("/k", Some(&rsa_only))]).unwrap()), format!("github.com ssh-rsa {RSA}\ngithub.com ssh-ed25519 {ED}\n"));
    }

    #[test]
    fn hashed_names_are_found_and_written_with_a_fresh_salt() {
        let host = "[git.example.com]:2222";
        let hashed = hash_host_key(host, &format!("{host} ssh-ed25519 {ED}"), &[7u8; 20]);
        assert!(hashed.starts_with("|1|BwcHBwcHBwcHBwcHBwcHBwcHBwc=|") && hashed.ends_with(&format!(" ssh-ed25519 {ED}")), "{hashed}");
        assert!(crate::connection::known_hosts::host_matches(hashed.split(' ').next().unwrap(), host));
        let t = task(json!({"name": host, "key": format!("{host} ssh-ed25519 {ED}"), "hash_host": true}));
        let key = t.key.clone().unwrap();
        assert!(key.starts_with("|1|") && !key.contains("example"), "{key}");
        // Already there, hashed with another salt: nothing to do.
        assert!(t.plan(&[file("/k", Some(&format!("{hashed}\n")))]).unwrap().actions.is_empty());
        // Hashed with another key of the type: replaced by the new hashed line.
        let other = hash_host_key(host, &format!("{host} ssh-ed25519 {ED2}"), &[9u8; 20]);
        let plan = t.plan(&[file("/k", Some(&format!("{other}\n")))]).unwrap();
        assert_eq!(written(&plan), key);
    }

    #[test]
    fn absent_removes_the_key_or_every_line_of_the_host() {
        let content = format!("gone.org ssh-ed25519 {ED}\nkept.org ssh-ed25519 {ED}\ngone.org ssh-rsa {RSA}\n");
        let with_key = task(json!({"name": "gone.org", "key": format!("gone.org ssh-rsa {RSA}"), "state": "absent"}));
        let plan = with_key.plan(&[file("/k", Some(&content))]).unwrap();
        assert_eq!(written(&plan), format!("gone.org ssh-ed25519 {ED}\nkept.org ssh-ed25519 {ED}\n"));
        // A key that is not there: nothing to do.
        let missing = task(json!({"name": "other.org", "key": format!("other.org ssh-rsa {RSA}"), "state": "absent"}));
        assert!(missing.plan(&[file("/k", Some(&content))]).unwrap().actions.is_empty());
        let all = task(json!({"name": "gone.org", "state": "absent", "path": "~deploy/.ssh/known_hosts"}));
        assert!(all.probes()[0].script.starts_with("p=\"$(getent passwd deploy | cut -d: -f6)\"/.ssh/known_hosts\n"));
        let plan = all.plan(&[file("/home/deploy/.ssh/known_hosts", Some(&content))]).unwrap();
        assert_eq!(plan.actions[0].script, "ssh-keygen -R gone.org -f /home/deploy/.ssh/known_hosts >/dev/null && chown 1000:1000 /home/deploy/.ssh/known_hosts");
        assert_eq!(plan.diffs, vec![Diff::Text { path: "/home/deploy/.ssh/known_hosts".into(), before: Some(content.clone()), after: Some(format!("kept.org ssh-ed25519 {ED}\n")) }]);
        assert!(all.plan(&[file("/k", Some(&format!("kept.org ssh-ed25519 {ED}\n")))]).unwrap().actions.is_empty());
        assert!(all.plan(&[file("/k", None)]).unwrap().actions.is_empty());
    }

    #[test]
    fn refuses_what_ansible_refuses() {
        let err = |a: Value| build(a.as_object().unwrap()).unwrap_err().to_string();
        assert!(err(json!({"name": "a.org"})).contains("No key specified when adding a host"));
        assert!(err(json!({"name": "a.org", "key": format!("b.org ssh-ed25519 {ED}")})).contains("Host parameter does not match"));
        assert!(err(json!({"name": "a.org, b.org", "key": format!("a.org ssh-ed25519 {ED}")})).contains("Comma separated list"));
        assert!(err(json!({"name": "a.org", "key": "a.org"})).contains("known_hosts line"));
        // A wildcard line of the key matches the name, as ssh-keygen -F finds it.
        assert!(build(json!({"name": "git.a.org", "key": format!("*.a.org ssh-ed25519 {ED}")}).as_object().unwrap()).is_ok());
        let t = task(json!({"name": "a.org", "key": format!("a.org ssh-ed25519 {ED}")}));
        let dir = ProbeResult { stdout: format!("{PATH_MARK}/k\ndirectory|root|root|0|0|755|4096|0\n"), stderr: String::new(), rc: 0 };
        assert!(t.plan(&[dir]).is_err());
    }
}
