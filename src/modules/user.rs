//! `user`: a local account (getent/id; useradd/usermod/userdel).
//!
//! `password` is a crypt hash (as in Ansible). It never leaves the module in clear: the probe
//! prints only a sha256 of the current /etc/shadow hash, diffs show `********`, and the hash
//! reaches `useradd`/`usermod` through stdin.

use super::args::{self, opt_boolish, opt_list, opt_string};
use super::common::sha256_hex;
use super::{
    sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope, REDACTED,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct UserModule;

const PARAMS: &[&str] = &[
    "name",
    "user",
    "uid",
    "group",
    "groups",
    "append",
    "shell",
    "home",
    "create_home",
    "createhome",
    "system",
    "comment",
    "password",
    "update_password",
    "state",
    "remove",
    "force",
    "move_home",
    "non_unique",
    "skeleton",
    "expires",
    "password_lock",
    "local",
    "generate_ssh_key",
    "ssh_key_bits",
    "ssh_key_type",
    "ssh_key_file",
    "ssh_key_comment",
    "ssh_key_passphrase",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "user")]
    name: String,
    #[serde(default, deserialize_with = "opt_string")]
    uid: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    groups: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_boolish")]
    append: Option<bool>,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default)]
    home: Option<String>,
    #[serde(default, alias = "createhome", deserialize_with = "opt_boolish")]
    create_home: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    system: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    comment: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    password: Option<String>,
    #[serde(default)]
    update_password: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    remove: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    move_home: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    non_unique: Option<bool>,
    #[serde(default)]
    skeleton: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    expires: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    password_lock: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    local: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    generate_ssh_key: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    ssh_key_bits: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    ssh_key_type: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    ssh_key_file: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    ssh_key_comment: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    ssh_key_passphrase: Option<String>,
}

/// `expires`: a day (shadow field 8, days since the epoch) or none (a negative `expires`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expires {
    Never,
    Day(i64),
}

/// `generate_ssh_key: true` and its options.
#[derive(Debug)]
struct SshKey {
    bits: u32,
    kind: String,
    /// As given: relative to the user's home, or absolute.
    file: String,
    /// None: `ansible-generated on <the host's name>`.
    comment: Option<String>,
    passphrase: Option<String>,
}

#[derive(Debug)]
struct UserTask {
    name: String,
    present: bool,
    uid: Option<u32>,
    group: Option<String>,
    groups: Option<Vec<String>>,
    append: bool,
    shell: Option<String>,
    home: Option<String>,
    create_home: bool,
    system: bool,
    comment: Option<String>,
    password: Option<String>,
    update_always: bool,
    remove: bool,
    force: bool,
    move_home: bool,
    non_unique: bool,
    skeleton: Option<String>,
    password_lock: Option<bool>,
    expires: Option<Expires>,
    ssh_key: Option<SshKey>,
}

module_impl!(UserModule, "user");

fn build(args: &Map<String, Value>) -> Result<UserTask, ModuleError> {
    let a: Args = args::parse("user", PARAMS, args)?;
    let present = args::present_state("user", a.state.as_deref())?;
    let name = args::account_name("user", &a.name, &[':', ' ', '\n', '/'])?;
    let uid = args::opt_id("user", "uid", a.uid.as_deref())?;
    let update_always = match a.update_password.as_deref().unwrap_or("always") {
        "always" => true,
        "on_create" => false,
        s => {
            return Err(ModuleError::Args(format!(
                "user: update_password must be always or on_create, got '{s}'"
            )))
        }
    };
    let expires = a
        .expires
        .as_deref()
        .map(|e| match e.trim().parse::<f64>() {
            // Ansible: a time before the epoch removes the expiry; else the UTC day of it.
            Ok(secs) if secs.is_finite() => Ok(if secs < 0.0 { Expires::Never } else { Expires::Day((secs / 86400.0).floor() as i64) }),
            _ => Err(ModuleError::Args(format!("user: expires must be seconds since the epoch (a number), got '{e}'"))),
        })
        .transpose()?;
    let ssh_key = if a.generate_ssh_key.unwrap_or(false) {
        let bits = match a.ssh_key_bits.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(b) => b
                .parse::<u32>()
                .map_err(|_| ModuleError::Args(format!("user: ssh_key_bits must be a number, got '{b}'")))?,
        };
        let kind = a.ssh_key_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "rsa".into());
        let file = a.ssh_key_file.filter(|f| !f.is_empty()).unwrap_or_else(|| format!(".ssh/id_{kind}"));
        Some(SshKey { bits, kind, file, comment: a.ssh_key_comment, passphrase: a.ssh_key_passphrase })
    } else {
        None
    };
    let _ = a.local;
    let groups = a.groups.map(|g| {
        let mut v: Vec<String> = g.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        v.dedup();
        v
    });
    Ok(UserTask {
        name,
        present,
        uid,
        group: a.group.filter(|g| !g.trim().is_empty()),
        groups,
        append: a.append.unwrap_or(false),
        shell: a.shell,
        home: a.home.map(|h| if h.len() > 1 { h.trim_end_matches('/').to_string() } else { h }),
        create_home: a.create_home.unwrap_or(true),
        system: a.system.unwrap_or(false),
        comment: a.comment,
        password: a.password,
        update_always,
        remove: a.remove.unwrap_or(false),
        force: a.force.unwrap_or(false),
        move_home: a.move_home.unwrap_or(false),
        non_unique: a.non_unique.unwrap_or(false),
        skeleton: a.skeleton,
        password_lock: a.password_lock,
        expires,
        ssh_key,
    })
}

#[derive(Debug, Default, Clone)]
struct Current {
    uid: u32,
    gid: u32,
    comment: String,
    home: String,
    shell: String,
    /// Primary group name.
    group: String,
    /// Supplementary groups (primary excluded).
    groups: Vec<String>,
    /// sha256 of the shadow hash without its leading `!`s (as Ansible compares); None if unreadable.
    shadow_sha: Option<String>,
    /// The shadow hash starts with `!`; None if unreadable.
    lock: Option<Lock>,
    /// Shadow field 8 (account expiry, days since the epoch): None unreadable, Some(None) empty.
    expire_days: Option<Option<i64>>,
    home_exists: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    Unlocked,
    Locked,
    /// Only `!`s: no password to unlock (`usermod -U` refuses).
    LockedEmpty,
}

/// The SSH key file as the probe found it.
#[derive(Debug, Default, Clone)]
struct KeyState {
    path: String,
    private: bool,
    public: bool,
    fingerprint: String,
    public_key: Option<String>,
}

#[derive(Debug, Default)]
struct Observed {
    user: Option<Current>,
    /// Groups from `group`/`groups` that do not exist.
    missing_groups: Vec<String>,
    /// gid of each requested group: (name-or-gid as given, name, gid).
    groups_known: Vec<(String, String, u32)>,
    /// A group named like the user exists.
    name_group: bool,
    /// `generate_ssh_key`: the key file, when its path is known before the actions.
    key: Option<KeyState>,
}

fn parse(r: &ProbeResult) -> Result<Observed, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!("cannot read user: {}", r.stderr.trim())));
    }
    let mut o = Observed::default();
    let mut cur = Current::default();
    let mut exists = false;
    for line in r.stdout.lines() {
        let Some((k, v)) = line.split_once('|') else { continue };
        match k {
            "passwd" => {
                let f: Vec<&str> = v.split(':').collect();
                if f.len() < 7 {
                    return Err(ModuleError::Probe(format!("passwd line '{v}'")));
                }
                exists = true;
                cur.uid = f[2].parse().unwrap_or(0);
                cur.gid = f[3].parse().unwrap_or(0);
                cur.comment = f[4].to_string();
                cur.home = f[5].to_string();
                cur.shell = f[6].to_string();
            }
            "primary" => cur.group = v.to_string(),
            "groups" => cur.groups = v.split_whitespace().map(str::to_string).collect(),
            "shadow" => cur.shadow_sha = (v != "unknown").then(|| v.to_string()),
            "locked" => {
                cur.lock = Some(match v {
                    "yes" => Lock::Locked,
                    "empty" => Lock::LockedEmpty,
                    _ => Lock::Unlocked,
                })
            }
            "expire" => cur.expire_days = Some(v.trim().parse::<i64>().ok()),
            "key" => {
                // key|<private yes/no>|<public yes/no>|<path>
                let f: Vec<&str> = v.splitn(3, '|').collect();
                if f.len() == 3 {
                    o.key = Some(KeyState { path: f[2].to_string(), private: f[0] == "yes", public: f[1] == "yes", ..Default::default() });
                }
            }
            "keyfp" => {
                if let Some(k) = o.key.as_mut() {
                    k.fingerprint = v.trim().to_string();
                }
            }
            "keypub" => {
                if let Some(k) = o.key.as_mut() {
                    k.public_key = Some(v.trim().to_string());
                }
            }
            "home" => cur.home_exists = v == "yes",
            "namegroup" => o.name_group = v == "yes",
            "nogroup" => o.missing_groups.push(v.to_string()),
            "grp" => {
                // grp|<as given>|<getent group line>
                if let Some((given, ent)) = v.split_once('|') {
                    let f: Vec<&str> = ent.split(':').collect();
                    if f.len() >= 3 {
                        o.groups_known
                            .push((given.to_string(), f[0].to_string(), f[2].parse().unwrap_or(0)));
                    }
                }
            }
            _ => {}
        }
    }
    if exists {
        let primary = cur.group.clone();
        cur.groups.retain(|g| *g != primary);
        o.user = Some(cur);
    }
    Ok(o)
}

impl UserTask {
    /// Every group named by `group` and `groups`.
    fn wanted_groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.group.iter().cloned().collect();
        v.extend(self.groups.iter().flatten().cloned());
        v
    }

    /// Compared without leading `!`s (a lock), as Ansible compares.
    fn password_matches(&self, cur: &Current) -> bool {
        match (&self.password, &cur.shadow_sha) {
            (None, _) => true,
            (Some(p), Some(sha)) => sha256_hex(p.trim_start_matches('!').as_bytes()) == *sha,
            (Some(_), None) => false,
        }
    }

    /// The SSH key file's path when it is known without the host: absolute, or under the
    /// `home` given (or the user's current one).
    fn key_path(&self, cur_home: Option<&str>) -> Option<String> {
        let k = self.ssh_key.as_ref()?;
        if k.file.starts_with('/') {
            return Some(k.file.clone());
        }
        let home = self.home.as_deref().or(cur_home)?;
        Some(format!("{}/{}", home.trim_end_matches('/'), k.file))
    }

    /// `usermod`/`useradd` option for `expires`, and its diff, if it differs from `current`
    /// (shadow field 8; None: unreadable).
    fn expires_change(&self, current: Option<Option<i64>>) -> Option<(String, Diff)> {
        let want = self.expires?;
        let cur = current.flatten().filter(|d| *d >= 0);
        let same = match want {
            // Ansible removes an expiry unless the field is empty (or negative)
            Expires::Never => current.is_some() && cur.is_none(),
            Expires::Day(d) => cur == Some(d),
        };
        if same {
            return None;
        }
        let opt = match want {
            Expires::Never => " -e ''".to_string(),
            // a number of days is taken as it is (a date would be read in the host's time zone)
            Expires::Day(d) => format!(" -e {d}"),
        };
        let show = |d: Option<i64>| d.map(day_string).unwrap_or_else(|| "never".into());
        let after = match want {
            Expires::Never => None,
            Expires::Day(d) => Some(d),
        };
        Some((opt, Diff::Field { name: "expires".into(), before: if current.is_some() { show(cur) } else { "unknown".into() }, after: show(after) }))
    }

    /// The action generating the SSH key (when neither key file exists then), printing the
    /// key's path, fingerprint and public key for [`finish`](ModuleTask::finish).
    fn keygen_action(&self, k: &SshKey) -> Action {
        let n = sh_quote(&self.name);
        let mut s = String::from("set -e\n");
        if k.file.starts_with('/') {
            s.push_str(&format!("f={}\n", sh_quote(&k.file)));
        } else {
            s.push_str(&format!(
                "h=$(getent passwd -- {n} | cut -d: -f6)\n[ -d \"$h\" ] || {{ printf 'User %s home directory does not exist\\n' {n} >&2; exit 1; }}\nf=\"${{h%/}}\"/{}\n",
                sh_quote(&k.file)
            ));
        }
        let comment = match &k.comment {
            Some(c) => sh_quote(c),
            None => "\"ansible-generated on $(uname -n)\"".into(),
        };
        let bits = if k.bits > 0 { format!(" -b {}", k.bits) } else { String::new() };
        let keygen = format!("ssh-keygen -q -t {}{bits} -C {comment} -f \"$f\"", sh_quote(&k.kind));
        let run = if k.passphrase.is_some() {
            // ssh-keygen asks its askpass program, which prints what came on stdin: the
            // passphrase is on no command line
            format!(
                "IFS= read -r pp || true\n  a=$(mktemp); trap 'rm -f \"$a\"' EXIT\n  printf '#!/bin/sh\\nprintf \"%%s\\\\n\" \"$PROVISION_SSH_PASSPHRASE\"\\n' > \"$a\"; chmod 700 \"$a\"\n  PROVISION_SSH_PASSPHRASE=$pp SSH_ASKPASS=$a SSH_ASKPASS_REQUIRE=force {keygen} </dev/null\n"
            )
        } else {
            format!("{keygen} -N '' </dev/null\n")
        };
        s.push_str(&format!(
            "d=$(dirname -- \"$f\")\n\
             if [ ! -d \"$d\" ]; then mkdir -- \"$d\"; chmod 0700 \"$d\"; chown -- {n}: \"$d\"; fi\n\
             if [ ! -e \"$f\" ] && [ ! -e \"$f.pub\" ]; then\n  {run}  chown -- {n}: \"$f\" \"$f.pub\"\nfi\n\
             printf 'sshkeyfile|%s\\n' \"$f\"\n\
             if [ -e \"$f\" ]; then printf 'sshfp|%s\\n' \"$(ssh-keygen -l -f \"$f\")\"; fi\n\
             if [ -e \"$f.pub\" ]; then printf 'sshpub|%s\\n' \"$(head -n 1 \"$f.pub\")\"; fi\n"
        ));
        let mut a = Action::new(format!("generate SSH key for user {}", self.name), s, Scope::Host);
        if let Some(p) = &k.passphrase {
            a = a.with_stdin(format!("{p}\n").into_bytes());
        }
        a
    }

    fn group_name(&self, o: &Observed, given: &str) -> String {
        o.groups_known
            .iter()
            .find(|(g, _, _)| g == given)
            .map(|(_, n, _)| n.clone())
            .unwrap_or_else(|| given.to_string())
    }
}

/// `YYYY-MM-DD` of a day since the epoch.
fn day_string(days: i64) -> String {
    chrono::DateTime::from_timestamp(days.saturating_mul(86400), 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| days.to_string())
}

/// Probe lines for the key file at `path` (a shell word).
fn key_probe(path: &str) -> String {
    format!(
        "k={path}; a=no; b=no; if [ -e \"$k\" ]; then a=yes; fi; if [ -e \"$k.pub\" ]; then b=yes; fi; printf 'key|%s|%s|%s\\n' $a $b \"$k\"\n\
         if [ $a = yes ]; then printf 'keyfp|%s\\n' \"$(ssh-keygen -l -f \"$k\" 2>/dev/null)\"; fi\n\
         if [ $b = yes ]; then printf 'keypub|%s\\n' \"$(head -n 1 \"$k.pub\" 2>/dev/null)\"; fi\n"
    )
}

impl ModuleTask for UserTask {
    fn probes(&self) -> Vec<Probe> {
        let n = sh_quote(&self.name);
        // The key file: under the current home (known only on the host), or a known path.
        let (mut key_home, mut key_fixed) = (String::new(), String::new());
        if let Some(k) = &self.ssh_key {
            match self.key_path(None) {
                Some(p) => key_fixed = key_probe(&sh_quote(&p)),
                None => key_home = key_probe(&format!("\"$h\"/{}", sh_quote(&k.file))),
            }
        }
        let mut s = format!(
            "if e=$(getent passwd -- {n}); then printf 'passwd|%s\\n' \"$e\"\n\
             g=$(id -gn -- {n} 2>/dev/null) && printf 'primary|%s\\n' \"$g\"\n\
             printf 'groups|%s\\n' \"$(id -Gn -- {n} 2>/dev/null)\"\n\
             h=${{e#*:*:*:*:*:}}; h=${{h%%:*}}; if [ -d \"$h\" ]; then echo 'home|yes'; else echo 'home|no'; fi\n\
             if s=$(getent shadow -- {n} 2>/dev/null); then p=$(printf '%s' \"$s\" | cut -d: -f2); q=$p; while :; do case $q in '!'*) q=${{q#!}};; *) break;; esac; done\n\
             l=no; case $p in '!'*) if [ -n \"$q\" ]; then l=yes; else l=empty; fi;; esac\n\
             set -- $(printf '%s' \"$q\" | sha256sum); printf 'shadow|%s\\nlocked|%s\\nexpire|%s\\n' \"$1\" \"$l\" \"$(printf '%s' \"$s\" | cut -d: -f8)\"; else echo 'shadow|unknown'; fi\n\
             {key_home}\
             fi\n\
             {key_fixed}\
             if getent group -- {n} >/dev/null; then echo 'namegroup|yes'; fi\n"
        );
        for g in self.wanted_groups() {
            let q = sh_quote(&g);
            s.push_str(&format!(
                "if e=$(getent group -- {q}); then printf 'grp|%s|%s\\n' {q} \"$e\"; else printf 'nogroup|%s\\n' {q}; fi\n"
            ));
        }
        s.push_str("true\n");
        vec![Probe::new(s, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let o = parse(probes.first().ok_or_else(|| ModuleError::Probe("missing user probe".into()))?)?;
        let mut plan = Plan::ok();
        let n = sh_quote(&self.name);
        plan.result.insert("name".into(), json!(self.name));
        plan.result
            .insert("state".into(), json!(if self.present { "present" } else { "absent" }));
        if !self.present {
            if o.user.is_some() {
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "present".into(),
                    after: "absent".into(),
                });
                let mut cmd = "userdel".to_string();
                if self.remove {
                    cmd.push_str(" -r");
                }
                if self.force {
                    cmd.push_str(" -f");
                }
                plan.actions.push(Action::new(
                    format!("remove user {}", self.name),
                    format!("{cmd} -- {n}"),
                    Scope::Host,
                ));
            }
            return Ok(plan);
        }
        if let Some(g) = o.missing_groups.first() {
            return Err(ModuleError::Failed(format!("Group {g} does not exist")));
        }
        let mut pw_action_stdin: Option<Vec<u8>> = None;
        match &o.user {
            None => {
                let mut cmd = "useradd".to_string();
                let mut diffs = vec![Diff::Field {
                    name: "state".into(),
                    before: "absent".into(),
                    after: "present".into(),
                }];
                let mut field = |k: &str, v: String| {
                    diffs.push(Diff::Field {
                        name: k.into(),
                        before: String::new(),
                        after: v,
                    })
                };
                if let Some(u) = self.uid {
                    cmd.push_str(&format!(" -u {u}"));
                    if self.non_unique {
                        cmd.push_str(" -o");
                    }
                    field("uid", u.to_string());
                }
                if let Some(g) = &self.group {
                    cmd.push_str(&format!(" -g {}", sh_quote(g)));
                    field("group", g.clone());
                } else if o.name_group {
                    // useradd refuses to create the user's own group when it already exists.
                    cmd.push_str(&format!(" -g {n}"));
                }
                if let Some(gs) = self.groups.as_ref().filter(|g| !g.is_empty()) {
                    cmd.push_str(&format!(" -G {}", sh_quote(&gs.join(","))));
                    field("groups", gs.join(","));
                }
                if let Some(c) = &self.comment {
                    cmd.push_str(&format!(" -c {}", sh_quote(c)));
                    field("comment", c.clone());
                }
                if let Some(h) = &self.home {
                    cmd.push_str(&format!(" -d {}", sh_quote(h)));
                    field("home", h.clone());
                }
                if let Some(s) = &self.shell {
                    cmd.push_str(&format!(" -s {}", sh_quote(s)));
                    field("shell", s.clone());
                }
                match self.expires {
                    Some(Expires::Never) => cmd.push_str(" -e ''"),
                    Some(Expires::Day(d)) => {
                        cmd.push_str(&format!(" -e {d}"));
                        field("expires", day_string(d));
                    }
                    None => {}
                }
                if self.system {
                    cmd.push_str(" -r");
                }
                if self.create_home {
                    cmd.push_str(" -m");
                    if let Some(k) = &self.skeleton {
                        cmd.push_str(&format!(" -k {}", sh_quote(k)));
                    }
                } else {
                    cmd.push_str(" -M");
                }
                let lock = self.password_lock == Some(true);
                let mut script = if let Some(p) = &self.password {
                    field("password", REDACTED.into());
                    pw_action_stdin = Some(format!("{p}\n").into_bytes());
                    // Ansible: locked and the hash set in one go
                    let bang = if lock { "!" } else { "" };
                    format!("IFS= read -r h\n{cmd} -p \"{bang}$h\" -- {n}")
                } else {
                    format!("{cmd} -- {n}")
                };
                if lock {
                    field("password lock", "locked".into());
                    if self.password.is_none() {
                        // useradd usually leaves the password locked (`!`) already
                        script.push_str(&format!(
                            " && case $(getent shadow -- {n} | cut -d: -f2) in '!'*) ;; *) usermod -L -- {n} ;; esac"
                        ));
                    }
                }
                script.push_str(&format!("\nid -u -- {n}"));
                let mut a = Action::new(format!("create user {}", self.name), script, Scope::Host);
                if let Some(s) = pw_action_stdin.take() {
                    a = a.with_stdin(s);
                }
                plan.actions.push(a);
                plan.diffs = diffs;
                plan.result.insert("system".into(), json!(self.system));
                plan.result.insert("create_home".into(), json!(self.create_home));
                if let Some(u) = self.uid {
                    plan.result.insert("uid".into(), json!(u));
                }
            }
            Some(cur) => {
                let mut opts = String::new();
                let mut diffs = Vec::new();
                if let Some(u) = self.uid.filter(|u| *u != cur.uid) {
                    opts.push_str(&format!(" -u {u}"));
                    if self.non_unique {
                        opts.push_str(" -o");
                    }
                    diffs.push(Diff::Field {
                        name: "uid".into(),
                        before: cur.uid.to_string(),
                        after: u.to_string(),
                    });
                }
                if let Some(g) = &self.group {
                    let same = *g == cur.group || *g == cur.gid.to_string() || self.group_name(&o, g) == cur.group;
                    if !same {
                        opts.push_str(&format!(" -g {}", sh_quote(g)));
                        diffs.push(Diff::Field {
                            name: "group".into(),
                            before: cur.group.clone(),
                            after: g.clone(),
                        });
                    }
                }
                if let Some(gs) = &self.groups {
                    let want: Vec<String> = gs.iter().map(|g| self.group_name(&o, g)).collect();
                    let primary_after = self
                        .group
                        .as_ref()
                        .map(|g| self.group_name(&o, g))
                        .unwrap_or_else(|| cur.group.clone());
                    let missing: Vec<String> = want
                        .iter()
                        .filter(|g| !cur.groups.contains(g) && **g != primary_after)
                        .cloned()
                        .collect();
                    let extra: Vec<String> = cur.groups.iter().filter(|g| !want.contains(g)).cloned().collect();
                    if !missing.is_empty() || (!self.append && !extra.is_empty()) {
                        let after: Vec<String> = if self.append {
                            cur.groups.iter().chain(missing.iter()).cloned().collect()
                        } else {
                            want.iter().filter(|g| **g != primary_after).cloned().collect()
                        };
                        diffs.push(Diff::Field {
                            name: "groups".into(),
                            before: cur.groups.join(","),
                            after: after.join(","),
                        });
                        if self.append {
                            opts.push_str(&format!(" -a -G {}", sh_quote(&missing.join(","))));
                        } else {
                            opts.push_str(&format!(" -G {}", sh_quote(&want.join(","))));
                        }
                    }
                }
                if let Some(c) = self.comment.as_ref().filter(|c| **c != cur.comment) {
                    opts.push_str(&format!(" -c {}", sh_quote(c)));
                    diffs.push(Diff::Field {
                        name: "comment".into(),
                        before: cur.comment.clone(),
                        after: c.clone(),
                    });
                }
                let mut home_after = cur.home.clone();
                if let Some(h) = self.home.as_ref().filter(|h| **h != cur.home) {
                    opts.push_str(&format!(" -d {}", sh_quote(h)));
                    if self.move_home && cur.home_exists {
                        opts.push_str(" -m");
                    }
                    diffs.push(Diff::Field {
                        name: "home".into(),
                        before: cur.home.clone(),
                        after: h.clone(),
                    });
                    home_after = h.clone();
                }
                if let Some(s) = self.shell.as_ref().filter(|s| **s != cur.shell) {
                    opts.push_str(&format!(" -s {}", sh_quote(s)));
                    diffs.push(Diff::Field {
                        name: "shell".into(),
                        before: cur.shell.clone(),
                        after: s.clone(),
                    });
                }
                if let Some((opt, d)) = self.expires_change(cur.expire_days) {
                    opts.push_str(&opt);
                    diffs.push(d);
                }
                let pw_update = self.update_always && !self.password_matches(cur);
                let locked = matches!(cur.lock, Some(Lock::Locked | Lock::LockedEmpty));
                // (a password of `!`s alone can't be unlocked: usermod -U refuses and changes
                // nothing, so it is left alone rather than "changed" on every run)
                let lock_change = match self.password_lock {
                    Some(true) => !locked,
                    Some(false) => cur.lock == Some(Lock::Locked),
                    None => false,
                };
                if lock_change {
                    let lock = self.password_lock == Some(true);
                    diffs.push(Diff::Field {
                        name: "password lock".into(),
                        before: if locked { "locked" } else { "unlocked" }.into(),
                        after: if lock { "locked" } else { "unlocked" }.into(),
                    });
                    // with a new hash, the lock goes with it (`-p '!hash'`), as Ansible does
                    if !pw_update {
                        opts.push_str(if lock { " -L" } else { " -U" });
                    }
                }
                let mut script = String::new();
                if !opts.is_empty() {
                    script.push_str(&format!("usermod{opts} -- {n}\n"));
                }
                if pw_update {
                    let bang = if self.password_lock == Some(true) { "!" } else { "" };
                    diffs.push(Diff::Field {
                        name: "password".into(),
                        before: REDACTED.into(),
                        after: format!("{REDACTED}(changed)"),
                    });
                    script = format!("IFS= read -r h\n{script}usermod -p \"{bang}$h\" -- {n}\n");
                    pw_action_stdin = Some(format!("{}\n", self.password.as_deref().unwrap_or("")).into_bytes());
                }
                // A home directory named explicitly (or kept) that does not exist yet.
                let home_missing = if self.home.as_ref().is_some_and(|h| *h != cur.home) {
                    !(self.move_home && cur.home_exists)
                } else {
                    !cur.home_exists
                };
                if self.create_home && self.home.is_some() && home_missing {
                    let h = sh_quote(&home_after);
                    let skel = sh_quote(self.skeleton.as_deref().unwrap_or("/etc/skel"));
                    diffs.push(Diff::Field {
                        name: "home directory".into(),
                        before: "absent".into(),
                        after: home_after.clone(),
                    });
                    script.push_str(&format!(
                        "if [ ! -d {h} ]; then mkdir -p {h} && chmod 0700 {h} && {{ [ ! -d {skel} ] || cp -a {skel}/. {h}/; }} && chown -R {n}: {h}; fi\n"
                    ));
                }
                if !script.is_empty() {
                    let mut a = Action::new(format!("modify user {}", self.name), format!("set -e\n{script}"), Scope::Host);
                    if let Some(s) = pw_action_stdin.take() {
                        a = a.with_stdin(s);
                    }
                    plan.actions.push(a);
                }
                plan.diffs = diffs;
                plan.result.insert("uid".into(), json!(self.uid.unwrap_or(cur.uid)));
                // Ansible's `group` is the primary group's gid
                let gid = match &self.group {
                    Some(g) => o.groups_known.iter().find(|(given, _, _)| given == g).map(|(_, _, gid)| *gid).unwrap_or(cur.gid),
                    None => cur.gid,
                };
                plan.result.insert("group".into(), json!(gid));
                plan.result.insert("home".into(), json!(home_after));
                plan.result
                    .insert("shell".into(), json!(self.shell.clone().unwrap_or_else(|| cur.shell.clone())));
                plan.result
                    .insert("comment".into(), json!(self.comment.clone().unwrap_or_else(|| cur.comment.clone())));
                plan.result.insert("append".into(), json!(self.append));
                if self.groups.is_some() {
                    plan.result
                        .insert("groups".into(), json!(self.groups.clone().unwrap_or_default().join(",")));
                }
            }
        }
        if let Some(k) = &self.ssh_key {
            // Generated only when neither key file exists, as Ansible (without `force`).
            let path = self.key_path(o.user.as_ref().map(|c| c.home.as_str()));
            let found = o.key.as_ref().filter(|ks| Some(&ks.path) == path.as_ref());
            if let Some(p) = &path {
                plan.result.insert("ssh_key_file".into(), json!(p));
            }
            match found {
                Some(ks) if ks.private || ks.public => {
                    plan.result.insert("ssh_fingerprint".into(), json!(if ks.private { ks.fingerprint.as_str() } else { "" }));
                    plan.result.insert("ssh_public_key".into(), json!(ks.public_key));
                }
                _ => {
                    plan.diffs.push(Diff::Field {
                        name: "ssh key".into(),
                        before: "absent".into(),
                        after: path.clone().unwrap_or_else(|| format!("~{}/{}", self.name, k.file)),
                    });
                    plan.result.insert("ssh_fingerprint".into(), json!(""));
                    plan.result.insert("ssh_public_key".into(), Value::Null);
                    plan.actions.push(self.keygen_action(k));
                }
            }
        }
        if self.password.is_some() {
            plan.result.insert("password".into(), json!("NOT_LOGGING_PASSWORD"));
        }
        if self.present {
            // what the user is after the change, registered as Ansible does (see `finish`)
            if let Some(a) = plan.actions.last_mut() {
                a.script.push_str(&format!("\nst=$?\nprintf 'user_after|%s\\n' \"$(getent passwd -- {n})\"\nexit $st"));
            }
        }
        Ok(plan)
    }

    /// Registers `uid`, `group` (the gid), `comment`, `home` and `shell` as the user is after
    /// the actions, and the generated SSH key's `ssh_key_file`, `ssh_fingerprint` and
    /// `ssh_public_key`, as Ansible's module does.
    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let after = outputs
            .iter()
            .flat_map(|o| o.stdout_str().lines().filter_map(|l| l.strip_prefix("user_after|").map(str::to_string)).collect::<Vec<_>>())
            .next_back();
        for o in outputs {
            for l in o.stdout_str().lines() {
                if let Some((k, v)) = l.split_once('|') {
                    let key = match k {
                        "sshkeyfile" => "ssh_key_file",
                        "sshfp" => "ssh_fingerprint",
                        "sshpub" => "ssh_public_key",
                        _ => continue,
                    };
                    plan.result.insert(key.into(), json!(v.trim()));
                }
            }
        }
        if let Some(line) = after {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 7 {
                if let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) {
                    plan.result.insert("uid".into(), json!(uid));
                    plan.result.insert("group".into(), json!(gid));
                }
                plan.result.insert("comment".into(), json!(f[4]));
                plan.result.insert("home".into(), json!(f[5]));
                plan.result.insert("shell".into(), json!(f[6]));
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ok, run_probe};
    use super::*;

    fn task(v: Value) -> UserTask {
        build(v.as_object().unwrap()).unwrap()
    }
    const HASH: &str = "$6$salt$abcdef";

    fn existing(shadow_hash: &str) -> String {
        format!(
            "passwd|deploy:x:1001:1001:Deploy:/home/deploy:/bin/bash\nprimary|deploy\ngroups|deploy sudo\nhome|yes\nshadow|{}\nnamegroup|yes\ngrp|sudo|sudo:x:27:deploy\ngrp|www-data|www-data:x:33:\n",
            sha256_hex(shadow_hash.as_bytes())
        )
    }

    #[test]
    fn creates_user_with_password_through_stdin() {
        let t = task(json!({"name": "deploy", "shell": "/bin/bash", "groups": ["sudo"], "password": HASH}));
        let p = t.plan(&[ok("grp|sudo|sudo:x:27:\n")]).unwrap();
        let a = &p.actions[0];
        assert!(
            a.script.contains("useradd -G sudo -s /bin/bash -m -p \"$h\" -- deploy"),
            "{}",
            a.script
        );
        assert!(!a.script.contains(HASH));
        assert_eq!(a.stdin.as_deref(), Some(format!("{HASH}\n").as_bytes()));
        assert!(!format!("{:?}", p.diffs).contains(HASH));
        assert!(t
            .plan(&[ok("nogroup|sudo\n")])
            .unwrap_err()
            .to_string()
            .contains("Group sudo does not exist"));
    }

    #[test]
    fn converged_user_is_ok_and_changes_are_per_field() {
        let t = task(json!({"name": "deploy", "shell": "/bin/bash", "groups": "sudo", "password": HASH, "comment": "Deploy"}));
        let p = t.plan(&[ok(&existing(HASH))]).unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.diffs);
        let p = t.plan(&[ok(&existing("$6$other"))]).unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "password".into(),
                before: REDACTED.into(),
                after: format!("{REDACTED}(changed)")
            }]
        );
        let t2 = task(json!({"name": "deploy", "password": HASH, "update_password": "on_create"}));
        assert!(t2.plan(&[ok(&existing("$6$other"))]).unwrap().actions.is_empty());
        let t = task(json!({"name": "deploy", "groups": ["www-data"], "append": true, "shell": "/bin/sh"}));
        let p = t.plan(&[ok(&existing(HASH))]).unwrap();
        assert!(p.actions[0].script.starts_with("set -e\nusermod -a -G www-data -s /bin/sh -- deploy\n"), "{}", p.actions[0].script);
        // registered as Ansible does: group is the gid; after a change, as the user is then
        let c = t.plan(&[ok(&existing(HASH))]).unwrap();
        assert_eq!((c.result["uid"].clone(), c.result["group"].clone(), c.result["home"].clone()), (json!(1001), json!(1001), json!("/home/deploy")));
        assert!(p.actions[0].script.ends_with("\nst=$?\nprintf 'user_after|%s\\n' \"$(getent passwd -- deploy)\"\nexit $st"));
        let done = t.finish(p, &[crate::modules::testutil::out("user_after|deploy:x:1001:33:Deploy:/home/deploy:/bin/sh\n")]).unwrap();
        assert_eq!(
            (&done.result["group"], &done.result["shell"], &done.result["comment"], &done.result["home"]),
            (&json!(33), &json!("/bin/sh"), &json!("Deploy"), &json!("/home/deploy"))
        );
        let t = task(json!({"name": "deploy", "groups": ["www-data"]}));
        let p = t.plan(&[ok(&existing(HASH))]).unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "groups".into(),
                before: "sudo".into(),
                after: "www-data".into()
            }]
        );
    }

    #[test]
    fn removes() {
        let t = task(json!({"name": "deploy", "state": "absent", "remove": true}));
        assert_eq!(t.plan(&[ok(&existing(HASH))]).unwrap().actions[0].script, "userdel -r -- deploy");
        assert!(t.plan(&[ok("")]).unwrap().actions.is_empty());
    }

    #[test]
    fn probe_runs_here() {
        let t = task(json!({"name": "root", "groups": ["root", "nosuchgroupxyz"]}));
        let r = run_probe(&t.probes()[0].script);
        assert_eq!(r.rc, 0);
        let o = parse(&r).unwrap();
        let u = o.user.unwrap();
        assert_eq!((u.uid, u.home.as_str(), u.group.as_str()), (0, "/root", "root"));
        assert_eq!(o.missing_groups, vec!["nosuchgroupxyz"]);
        assert!(u.shadow_sha.is_some());
        assert!(u.home_exists);
        // The hash of root's password field, as the controller would hash the wanted one.
        if let Ok(shadow) = std::fs::read_to_string("/etc/shadow") {
            let fields: Vec<&str> = shadow.lines().find_map(|l| l.strip_prefix("root:")).unwrap().split(':').collect();
            let field = fields[0].trim_start_matches('!');
            assert_eq!(u.shadow_sha.as_deref(), Some(super::super::common::sha256_hex(field.as_bytes()).as_str()));
            assert_eq!(u.lock.is_some_and(|l| l != Lock::Unlocked), fields[0].starts_with('!'));
            assert_eq!(u.expire_days, Some(fields[6].parse().ok()));
        }
    }

    fn with_shadow(hash_field: &str, expire: &str) -> String {
        let stripped = hash_field.trim_start_matches('!');
        let lock = if !hash_field.starts_with('!') { "no" } else if stripped.is_empty() { "empty" } else { "yes" };
        existing(stripped).replace("namegroup|yes", &format!("locked|{lock}\nexpire|{expire}\nnamegroup|yes"))
    }

    #[test]
    fn password_lock_reads_the_shadow_bang() {
        let lock = task(json!({"name": "deploy", "password_lock": true}));
        let p = lock.plan(&[ok(&with_shadow(HASH, ""))]).unwrap();
        assert!(p.actions[0].script.starts_with("set -e\nusermod -L -- deploy\n"), "{}", p.actions[0].script);
        assert_eq!(p.diffs, vec![Diff::Field { name: "password lock".into(), before: "unlocked".into(), after: "locked".into() }]);
        assert!(lock.plan(&[ok(&with_shadow(&format!("!{HASH}"), ""))]).unwrap().actions.is_empty());
        assert!(lock.plan(&[ok(&with_shadow("!", ""))]).unwrap().actions.is_empty());
        let unlock = task(json!({"name": "deploy", "password_lock": "no"}));
        assert!(unlock.plan(&[ok(&with_shadow(&format!("!{HASH}"), ""))]).unwrap().actions[0].script.contains("usermod -U -- deploy"));
        assert!(unlock.plan(&[ok(&with_shadow(HASH, ""))]).unwrap().actions.is_empty());
        // nothing to unlock to: usermod -U would refuse, so no change on every run
        assert!(unlock.plan(&[ok(&with_shadow("!", ""))]).unwrap().actions.is_empty());
        // a locked account with the wanted hash keeps its lock unless told (as Ansible compares)
        assert!(task(json!({"name": "deploy", "password": HASH})).plan(&[ok(&with_shadow(&format!("!{HASH}"), ""))]).unwrap().actions.is_empty());
        // a new hash and the lock: one `usermod -p '!hash'`
        let both = task(json!({"name": "deploy", "password": HASH, "password_lock": true}));
        let p = both.plan(&[ok(&with_shadow("$6$old", ""))]).unwrap();
        let s = &p.actions[0].script;
        assert!(s.contains("usermod -p \"!$h\" -- deploy") && !s.contains("-L"), "{s}");
        assert_eq!(p.actions[0].stdin.as_deref(), Some(format!("{HASH}\n").as_bytes()));
        assert!(both.plan(&[ok(&with_shadow(&format!("!{HASH}"), ""))]).unwrap().actions.is_empty());
        // created: locked with the hash, or locked after (unless useradd locked it already)
        let p = both.plan(&[ok("")]).unwrap();
        assert!(p.actions[0].script.contains("useradd -m -p \"!$h\" -- deploy"), "{}", p.actions[0].script);
        let p = lock.plan(&[ok("")]).unwrap();
        assert!(p.actions[0].script.contains("useradd -m -- deploy && case $(getent shadow -- deploy | cut -d: -f2) in '!'*) ;; *) usermod -L -- deploy ;; esac"), "{}", p.actions[0].script);
        crate::modules::testutil::assert_sh_syntax(&p.actions[0].script);
    }

    #[test]
    fn expires_is_the_utc_day_in_shadow_field_8() {
        // 2025-11-25 13:00 UTC: day 20417
        let t = task(json!({"name": "deploy", "expires": 1764075600.5}));
        assert_eq!(t.expires, Some(Expires::Day(20417)));
        assert_eq!(day_string(20417), "2025-11-25");
        assert!(t.plan(&[ok(&with_shadow(HASH, "20417"))]).unwrap().actions.is_empty());
        let p = t.plan(&[ok(&with_shadow(HASH, ""))]).unwrap();
        assert!(p.actions[0].script.starts_with("set -e\nusermod -e 20417 -- deploy\n"), "{}", p.actions[0].script);
        assert_eq!(p.diffs, vec![Diff::Field { name: "expires".into(), before: "never".into(), after: "2025-11-25".into() }]);
        let p = t.plan(&[ok(&with_shadow(HASH, "20000"))]).unwrap();
        assert_eq!(p.diffs[0], Diff::Field { name: "expires".into(), before: "2024-10-04".into(), after: "2025-11-25".into() });
        // -1 removes an expiry; an empty field is none already
        let never = task(json!({"name": "deploy", "expires": "-1"}));
        assert!(never.plan(&[ok(&with_shadow(HASH, ""))]).unwrap().actions.is_empty());
        let p = never.plan(&[ok(&with_shadow(HASH, "20417"))]).unwrap();
        assert!(p.actions[0].script.starts_with("set -e\nusermod -e '' -- deploy\n"), "{}", p.actions[0].script);
        assert_eq!(p.diffs[0], Diff::Field { name: "expires".into(), before: "2025-11-25".into(), after: "never".into() });
        // created with it
        assert!(t.plan(&[ok("")]).unwrap().actions[0].script.starts_with("useradd -e 20417 -m -- deploy"));
        assert!(task(json!({"name": "deploy", "expires": 0})).plan(&[ok(&with_shadow(HASH, "0"))]).unwrap().actions.is_empty());
        assert!(build(json!({"name": "deploy", "expires": "soon"}).as_object().unwrap()).unwrap_err().to_string().contains("expires"));
    }

    #[test]
    fn ssh_key_generated_only_when_missing() {
        let t = task(json!({"name": "deploy", "generate_ssh_key": true, "ssh_key_bits": 2048}));
        // the probe looks under the current home, known on the host only
        assert!(t.probes()[0].script.contains("k=\"$h\"/.ssh/id_rsa;"), "{}", t.probes()[0].script);
        crate::modules::testutil::assert_sh_syntax(&t.probes()[0].script);
        let missing = format!("{}key|no|no|/home/deploy/.ssh/id_rsa\n", with_shadow(HASH, ""));
        let p = t.plan(&[ok(&missing)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        let s = &p.actions[0].script;
        assert!(s.contains("ssh-keygen -q -t rsa -b 2048 -C \"ansible-generated on $(uname -n)\" -f \"$f\" -N ''"), "{s}");
        assert!(s.contains("chown -- deploy: \"$f\" \"$f.pub\""), "{s}");
        crate::modules::testutil::assert_sh_syntax(s);
        assert_eq!(p.result["ssh_key_file"], json!("/home/deploy/.ssh/id_rsa"));
        let done = t
            .finish(p, &[crate::modules::testutil::out("sshkeyfile|/home/deploy/.ssh/id_rsa\nsshfp|2048 SHA256:abc c (RSA)\nsshpub|ssh-rsa AAAA c\n")])
            .unwrap();
        assert_eq!((&done.result["ssh_fingerprint"], &done.result["ssh_public_key"]), (&json!("2048 SHA256:abc c (RSA)"), &json!("ssh-rsa AAAA c")));
        let there = format!("{}key|yes|yes|/home/deploy/.ssh/id_rsa\nkeyfp|3072 SHA256:xyz c (RSA)\nkeypub|ssh-rsa BBBB c\n", with_shadow(HASH, ""));
        let p = t.plan(&[ok(&there)]).unwrap();
        assert!(p.actions.is_empty());
        assert_eq!((&p.result["ssh_fingerprint"], &p.result["ssh_public_key"]), (&json!("3072 SHA256:xyz c (RSA)"), &json!("ssh-rsa BBBB c")));
        // a public key alone: skipped, as Ansible does
        assert!(t.plan(&[ok(&format!("{}key|no|yes|/home/deploy/.ssh/id_rsa\nkeypub|ssh-rsa BBBB c\n", with_shadow(HASH, "")))]).unwrap().actions.is_empty());
        // a new user: generated after the user is created
        let p = t.plan(&[ok("")]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions[1].script.starts_with("set -e\nh=$(getent passwd -- deploy | cut -d: -f6)\n"));
        // a path known before: probed as such
        let t = task(json!({"name": "deploy", "generate_ssh_key": true, "ssh_key_type": "ed25519", "home": "/srv/deploy"}));
        assert!(t.probes()[0].script.contains("k=/srv/deploy/.ssh/id_ed25519;"));
    }

    #[test]
    fn ssh_key_passphrase_goes_through_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/key").to_string_lossy().into_owned();
        let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let t = task(json!({"name": me.trim(), "generate_ssh_key": true, "ssh_key_type": "ed25519", "ssh_key_file": file, "ssh_key_comment": "it's me", "ssh_key_passphrase": "pass phrase"}));
        let p = t.plan(&[ok(&format!("passwd|{}:x:0:0::/root:/bin/sh\nprimary|root\nkey|no|no|{file}\n", me.trim()))]).unwrap();
        let a = &p.actions[0].clone();
        assert!(!a.script.contains("pass phrase") && !format!("{:?}{:?}", p.diffs, p.result).contains("pass phrase"));
        assert_eq!(a.stdin.as_deref(), Some(&b"pass phrase\n"[..]));
        if std::process::Command::new("ssh-keygen").arg("-?").output().is_err() {
            return;
        }
        let (rc, out, err) = crate::modules::testutil::sh(&a.script, a.stdin.as_deref());
        assert_eq!(rc, 0, "{err}\n{}", a.script);
        let done = t.finish(p, &[crate::modules::testutil::out(&out)]).unwrap();
        assert!(done.result["ssh_public_key"].as_str().unwrap().starts_with("ssh-ed25519 ") && done.result["ssh_public_key"].as_str().unwrap().ends_with(" it's me"), "{out}");
        assert!(done.result["ssh_fingerprint"].as_str().unwrap().contains("SHA256:"), "{out}");
        let mode = |p: &str| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777;
        assert_eq!(mode(&format!("{}/sub", dir.path().display())), 0o700);
        let check = |pp: &str| std::process::Command::new("ssh-keygen").args(["-y", "-P", pp, "-f", &file]).output().unwrap().status.success();
        assert!(check("pass phrase") && !check(""));
        // there now: not generated again
        let (_, again, _) = crate::modules::testutil::sh(&a.script, a.stdin.as_deref());
        assert_eq!(again, out);
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn user_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let g = super::super::group::tests_build(json!({"name": "msgrp", "gid": 1777}));
        let (_, second) = testhost::converge(g.as_ref());
        assert!(second.actions.is_empty());
        let hash = "$6$abc$9b0KkOzHRz0T5oNvVzKwY1YFzTTLy8aZ2vxHxGqWZxq5V.Nr2W1J7zHkqN8s6dYk0oGk0d1S1yq9oXlUj8Yw/";
        let t = build(
            json!({"name": "msuser", "shell": "/bin/bash", "groups": ["msgrp", "sudo"], "password": hash, "comment": "Ms User"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        eprintln!("{:?} {:?}", first.diffs, first.result);
        assert!(first.changed());
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let t = build(
            json!({"name": "msuser", "groups": ["msgrp"], "home": "/srv/msuser", "move_home": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        eprintln!("{:?}", first.diffs);
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let t = build(json!({"name": "msuser", "state": "absent", "remove": true}).as_object().unwrap()).unwrap();
        let (_, second) = testhost::converge(&t);
        assert!(second.actions.is_empty());
    }
}
