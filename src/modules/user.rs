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
    if a.expires.is_some() || a.password_lock.is_some() {
        return Err(ModuleError::Args("user: expires and password_lock are not supported".into()));
    }
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
    /// sha256 of the shadow hash; None if unreadable.
    shadow_sha: Option<String>,
    home_exists: bool,
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

    fn password_matches(&self, cur: &Current) -> bool {
        match (&self.password, &cur.shadow_sha) {
            (None, _) => true,
            (Some(p), Some(sha)) => sha256_hex(p.as_bytes()) == *sha,
            (Some(_), None) => false,
        }
    }

    fn group_name(&self, o: &Observed, given: &str) -> String {
        o.groups_known
            .iter()
            .find(|(g, _, _)| g == given)
            .map(|(_, n, _)| n.clone())
            .unwrap_or_else(|| given.to_string())
    }
}

impl ModuleTask for UserTask {
    fn probes(&self) -> Vec<Probe> {
        let n = sh_quote(&self.name);
        let mut s = format!(
            "if e=$(getent passwd -- {n}); then printf 'passwd|%s\\n' \"$e\"\n\
             g=$(id -gn -- {n} 2>/dev/null) && printf 'primary|%s\\n' \"$g\"\n\
             printf 'groups|%s\\n' \"$(id -Gn -- {n} 2>/dev/null)\"\n\
             h=${{e#*:*:*:*:*:}}; h=${{h%%:*}}; if [ -d \"$h\" ]; then echo 'home|yes'; else echo 'home|no'; fi\n\
             if s=$(getent shadow -- {n} 2>/dev/null); then s=${{s#*:}}; set -- $(printf '%s' \"${{s%%:*}}\" | sha256sum); printf 'shadow|%s\\n' \"$1\"; else echo 'shadow|unknown'; fi\n\
             fi\n\
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
                let script = if let Some(p) = &self.password {
                    field("password", REDACTED.into());
                    pw_action_stdin = Some(format!("{p}\n").into_bytes());
                    format!("IFS= read -r h\n{cmd} -p \"$h\" -- {n}\nid -u -- {n}")
                } else {
                    format!("{cmd} -- {n}\nid -u -- {n}")
                };
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
                let mut script = String::new();
                if !opts.is_empty() {
                    script.push_str(&format!("usermod{opts} -- {n}\n"));
                }
                if self.update_always && !self.password_matches(cur) {
                    diffs.push(Diff::Field {
                        name: "password".into(),
                        before: REDACTED.into(),
                        after: format!("{REDACTED}(changed)"),
                    });
                    script = format!("IFS= read -r h\n{script}usermod -p \"$h\" -- {n}\n");
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
    /// the actions, as Ansible's module does.
    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let after = outputs
            .iter()
            .flat_map(|o| o.stdout_str().lines().filter_map(|l| l.strip_prefix("user_after|").map(str::to_string)).collect::<Vec<_>>())
            .next_back();
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
            let field = shadow.lines().find_map(|l| l.strip_prefix("root:")).unwrap().split(':').next().unwrap();
            assert_eq!(u.shadow_sha.as_deref(), Some(super::super::common::sha256_hex(field.as_bytes()).as_str()));
        }
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
