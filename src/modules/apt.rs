//! `apt`: Debian packages. One probe reads the state of every named package (`dpkg-query`) and
//! their candidate/available versions (`apt-cache policy`); one `apt-get` transaction installs or
//! removes them all.
//!
//! `update_cache` refreshes the lists only when they are older than `cache_valid_time` (0 or
//! unset = always). As in Ansible, a cache refresh alone reports `changed` only when no package,
//! `upgrade` or `deb` is given; with packages, `changed` reflects the packages. After an update
//! the stamp `/var/lib/apt/periodic/update-success-stamp` is touched so `cache_valid_time` works
//! even when the lists did not change.

use super::args::{self, opt_boolish, opt_list, opt_string};
use super::{sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub struct AptModule;

pub(crate) const PARAMS: &[&str] = &[
    "name",
    "pkg",
    "package",
    "state",
    "update_cache",
    "update-cache",
    "cache_valid_time",
    "install_recommends",
    "install-recommends",
    "deb",
    "purge",
    "autoremove",
    "autoclean",
    "force",
    "allow_unauthenticated",
    "allow-unauthenticated",
    "allow_downgrade",
    "allow-downgrade",
    "allow_downgrades",
    "allow-downgrades",
    "allow_change_held_packages",
    "only_upgrade",
    "upgrade",
    "default_release",
    "default-release",
    "dpkg_options",
    "lock_timeout",
    "force_apt_get",
    "clean",
    "fail_on_autoremove",
];

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, alias = "pkg", alias = "package", deserialize_with = "opt_list")]
    name: Option<Vec<String>>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, alias = "update-cache", deserialize_with = "opt_boolish")]
    update_cache: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    cache_valid_time: Option<String>,
    #[serde(default, alias = "install-recommends", deserialize_with = "opt_boolish")]
    install_recommends: Option<bool>,
    #[serde(default)]
    deb: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    purge: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    autoremove: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    autoclean: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force: Option<bool>,
    #[serde(default, alias = "allow-unauthenticated", deserialize_with = "opt_boolish")]
    allow_unauthenticated: Option<bool>,
    #[serde(
        default,
        alias = "allow-downgrade",
        alias = "allow_downgrades",
        alias = "allow-downgrades",
        deserialize_with = "opt_boolish"
    )]
    allow_downgrade: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    allow_change_held_packages: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    only_upgrade: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    upgrade: Option<String>,
    #[serde(default, alias = "default-release")]
    default_release: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    dpkg_options: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    lock_timeout: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force_apt_get: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    clean: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    fail_on_autoremove: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Absent,
    Latest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Upgrade {
    No,
    Safe,
    Full,
    Dist,
}

/// A requested package: `nginx`, `nginx=1.22*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PkgSpec {
    name: String,
    version: Option<String>,
}

#[derive(Debug)]
struct AptTask {
    pkgs: Vec<PkgSpec>,
    state: State,
    update_cache: bool,
    cache_valid_time: u64,
    install_recommends: Option<bool>,
    deb: Option<String>,
    purge: bool,
    autoremove: bool,
    autoclean: bool,
    clean: bool,
    only_upgrade: bool,
    upgrade: Upgrade,
    default_release: Option<String>,
    /// Extra apt-get flags (force, allow_*).
    flags: Vec<String>,
    dpkg_options: Vec<String>,
    lock_timeout: u64,
}

module_impl!(AptModule, "apt");

/// Arguments of one `apt` install that also installs a later task's packages, when both are
/// plain installs (`state: present`, names only) with the same options: the later task's
/// packages join this task's transaction, so apt resolves, unpacks and runs its triggers once.
/// The later task must not refresh the cache (it would expect fresh lists for its packages);
/// this one may. `None` when they can't share a transaction.
pub fn merge_install(first: &Map<String, Value>, later: &Map<String, Value>) -> Option<Map<String, Value>> {
    // Parameters that only say "these packages, installed"; everything else must be equal.
    const NAMES: &[&str] = &["name", "pkg", "package"];
    const CACHE: &[&str] = &["update_cache", "update-cache", "cache_valid_time"];
    let plain = |m: &Map<String, Value>| -> Option<Vec<String>> {
        let a = build(m).ok()?;
        if a.state != State::Present || a.upgrade != Upgrade::No || a.deb.is_some() || a.autoremove || a.autoclean || a.clean || a.only_upgrade || a.pkgs.is_empty() {
            return None;
        }
        let names = NAMES.iter().find_map(|k| m.get(*k))?;
        match names {
            Value::String(s) => Some(s.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect()),
            Value::Array(v) => v.iter().map(|n| n.as_str().map(str::to_string)).collect(),
            _ => None,
        }
    };
    let (a, b) = (plain(first)?, plain(later)?);
    // A later task that refreshes the lists may join only a transaction that refreshes them the
    // same way (anything that could add a source in between stops the merging anyway).
    let cache = |m: &Map<String, Value>| {
        let update = ["update_cache", "update-cache"].iter().find_map(|k| m.get(*k)).and_then(crate::modules::args::truthy).unwrap_or(false);
        let valid = m.get("cache_valid_time").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        (update, valid)
    };
    if cache(later).0 && cache(later) != cache(first) {
        return None;
    }
    let rest = |m: &Map<String, Value>| -> Map<String, Value> {
        m.iter().filter(|(k, _)| !NAMES.contains(&k.as_str()) && !CACHE.contains(&k.as_str()) && k.as_str() != "state").map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    if rest(first) != rest(later) {
        return None;
    }
    let mut merged: Map<String, Value> = first.iter().filter(|(k, _)| !NAMES.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut names = a;
    for n in b {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    merged.insert("name".into(), Value::from(names));
    Some(merged)
}

fn num_arg(name: &str, v: &Option<String>, default: u64) -> Result<u64, ModuleError> {
    match v {
        None => Ok(default),
        Some(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| ModuleError::Args(format!("apt: {name} must be a number of seconds, got '{s}'"))),
    }
}

fn build(args: &Map<String, Value>) -> Result<AptTask, ModuleError> {
    let a: Args = args::parse("apt", PARAMS, args)?;
    let state = match a.state.as_deref().unwrap_or("present") {
        "present" | "installed" | "build-dep" | "fixed" => State::Present,
        "absent" | "removed" => State::Absent,
        "latest" => State::Latest,
        s => {
            return Err(ModuleError::Args(format!(
                "apt: state must be present, absent or latest, got '{s}'"
            )))
        }
    };
    let upgrade = match a.upgrade.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
        None => Upgrade::No,
        Some(s) => match s.as_str() {
            "no" | "false" | "off" | "0" => Upgrade::No,
            "yes" | "true" | "on" | "1" | "safe" => Upgrade::Safe,
            "full" => Upgrade::Full,
            "dist" => Upgrade::Dist,
            other => {
                return Err(ModuleError::Args(format!(
                    "apt: upgrade must be no, yes, safe, full or dist, got '{other}'"
                )))
            }
        },
    };
    let mut pkgs = Vec::new();
    for n in a.name.unwrap_or_default() {
        let n = n.trim();
        if n.is_empty() {
            continue;
        }
        if n.starts_with('-') || n.contains(char::is_whitespace) {
            return Err(ModuleError::Args(format!("apt: invalid package name '{n}'")));
        }
        match n.split_once('=') {
            Some((p, v)) => pkgs.push(PkgSpec {
                name: p.to_string(),
                version: Some(v.to_string()),
            }),
            None => pkgs.push(PkgSpec {
                name: n.to_string(),
                version: None,
            }),
        }
    }
    if let Some(d) = &a.deb {
        if d.contains("://") {
            return Err(ModuleError::Args(
                "apt: deb must be a path on the host (download it first with get_url)".into(),
            ));
        }
        if !pkgs.is_empty() {
            return Err(ModuleError::Args("apt: parameters are mutually exclusive: deb, name".into()));
        }
    }
    let mut flags = Vec::new();
    let force = a.force.unwrap_or(false);
    if force || a.allow_unauthenticated.unwrap_or(false) {
        flags.push("--allow-unauthenticated".to_string());
    }
    if force || a.allow_downgrade.unwrap_or(false) {
        flags.push("--allow-downgrades".to_string());
    }
    if force || a.allow_change_held_packages.unwrap_or(false) {
        flags.push("--allow-change-held-packages".to_string());
    }
    if force {
        flags.push("--allow-remove-essential".to_string());
    }
    let _ = (a.force_apt_get, a.fail_on_autoremove);
    Ok(AptTask {
        pkgs,
        state,
        update_cache: a.update_cache.unwrap_or(false) || (a.cache_valid_time.is_some() && a.update_cache != Some(false)),
        cache_valid_time: num_arg("cache_valid_time", &a.cache_valid_time, 0)?,
        install_recommends: a.install_recommends,
        deb: a.deb,
        purge: a.purge.unwrap_or(false),
        autoremove: a.autoremove.unwrap_or(false),
        autoclean: a.autoclean.unwrap_or(false),
        clean: a.clean.unwrap_or(false),
        only_upgrade: a.only_upgrade.unwrap_or(false),
        upgrade,
        default_release: a.default_release,
        flags,
        dpkg_options: a
            .dpkg_options
            .unwrap_or_else(|| vec!["force-confdef".into(), "force-confold".into()]),
        lock_timeout: num_arg("lock_timeout", &a.lock_timeout, 300)?,
    })
}

/// What dpkg says about one package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Installed {
    /// Fully installed (status `... installed`).
    installed: bool,
    /// Any trace in dpkg (e.g. `deinstall ok config-files`): something to purge.
    known: bool,
    version: String,
}

/// What apt knows about one package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Policy {
    candidate: Option<String>,
    /// All versions in the version table, in apt's order (highest first).
    versions: Vec<String>,
}

#[derive(Debug, Default)]
struct Observed {
    dpkg: BTreeMap<String, Installed>,
    policy: BTreeMap<String, Policy>,
    cache_mtime: Option<i64>,
    now: Option<i64>,
    deb: Option<(String, String)>,
    /// `apt-get -s` lines for upgrade/autoremove: (op, name, old, new).
    sim: Vec<(String, String, Option<String>, Option<String>)>,
}

fn parse_dpkg(out: &str, into: &mut BTreeMap<String, Installed>) {
    for line in out.lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 3 || f[0].is_empty() {
            continue;
        }
        let status: Vec<&str> = f[1].split_whitespace().collect();
        let installed = status.last().map(|s| *s == "installed").unwrap_or(false) && status.first() != Some(&"purge");
        let known = status.last().map(|s| *s != "not-installed").unwrap_or(false);
        // multi-arch packages print one line per architecture; any installed one counts.
        let e = into.entry(f[0].to_string()).or_default();
        if installed || !e.installed {
            *e = Installed {
                installed,
                known: known || e.known,
                version: f[2].to_string(),
            };
        }
    }
}

/// `dpkg-query` listing `names` (shell words) as `name|status|version` lines.
fn dpkg_query(names: &str) -> String {
    format!("LC_ALL=C dpkg-query -W -f='${{Package}}|${{Status}}|${{Version}}\\n' -- {names} 2>/dev/null")
}

/// Separates dpkg's answer from apt-cache's in the combined probe.
const POLICY_MARK: &str = "--policy--";

/// Parse `apt-cache policy a b c`.
fn parse_policy(out: &str) -> BTreeMap<String, Policy> {
    let mut m = BTreeMap::new();
    let mut cur: Option<String> = None;
    let mut in_table = false;
    for line in out.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            let name = line.trim_end_matches(':').to_string();
            m.insert(name.clone(), Policy::default());
            cur = Some(name);
            in_table = false;
            continue;
        }
        let Some(name) = &cur else { continue };
        let p = m.get_mut(name).unwrap();
        let t = line.trim();
        if let Some(c) = t.strip_prefix("Candidate:") {
            let c = c.trim();
            p.candidate = (c != "(none)" && !c.is_empty()).then(|| c.to_string());
        } else if t == "Version table:" {
            in_table = true;
        } else if in_table && line.len() > 5 && (line.starts_with("     ") || line.starts_with(" *** ")) && !line[5..].starts_with(' ') {
            if let Some(v) = line[5..].split_whitespace().next() {
                p.versions.push(v.to_string());
            }
        }
    }
    m
}

/// Parse `apt-get -s` output: `Inst name [old] (new ...)`, `Remv name [old]`.
fn parse_sim(out: &str) -> Vec<(String, String, Option<String>, Option<String>)> {
    let mut v = Vec::new();
    for line in out.lines() {
        let (op, rest) = match line.split_once(' ') {
            Some((op @ ("Inst" | "Remv" | "Purg"), rest)) => (op, rest),
            _ => continue,
        };
        let mut it = rest.split_whitespace();
        let name = it.next().unwrap_or("").to_string();
        let rest: String = it.collect::<Vec<_>>().join(" ");
        let old = rest.strip_prefix('[').and_then(|r| r.split(']').next()).map(str::to_string);
        let new = rest
            .find('(')
            .and_then(|i| rest[i + 1..].split_whitespace().next())
            .map(|s| s.trim_end_matches(')').to_string());
        v.push((op.to_string(), name, old, new));
    }
    v
}

/// fnmatch-style version pin match (`1.22*`).
fn version_matches(pattern: &str, version: &str) -> bool {
    if !pattern.contains(['*', '?', '[']) {
        return pattern == version;
    }
    globset::Glob::new(pattern)
        .map(|g| g.compile_matcher().is_match(version))
        .unwrap_or(false)
}

impl AptTask {
    fn names(&self) -> String {
        self.pkgs.iter().map(|p| sh_quote(&p.name)).collect::<Vec<_>>().join(" ")
    }

    fn probe_kinds(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        if !self.pkgs.is_empty() {
            match self.state {
                State::Absent => k.push("dpkg"),
                // Installed unpinned packages need no candidate: asked only for the others.
                State::Present => k.push("dpkg+policy"),
                State::Latest => k.extend(["dpkg", "policy"]),
            }
        }
        if self.update_cache {
            k.push("cache");
        }
        if self.deb.is_some() {
            k.push("deb");
        }
        if self.upgrade != Upgrade::No {
            k.push("upgrade");
        }
        if self.autoremove && self.pkgs.is_empty() && self.deb.is_none() {
            k.push("autoremove");
        }
        k
    }

    fn apt_get(&self, sub: &str) -> String {
        let mut s = format!("apt-get {sub} -y -q -o DPkg::Lock::Timeout={}", self.lock_timeout);
        for o in &self.dpkg_options {
            s.push_str(&format!(" -o Dpkg::Options::=--{}", sh_quote(o.trim_start_matches('-'))));
        }
        match self.install_recommends {
            Some(false) => s.push_str(" --no-install-recommends"),
            Some(true) => s.push_str(" -o APT::Install-Recommends=true"),
            None => {}
        }
        if let Some(r) = &self.default_release {
            s.push_str(&format!(" -t {}", sh_quote(r)));
        }
        for f in &self.flags {
            s.push(' ');
            s.push_str(f);
        }
        s
    }

    fn observe(&self, probes: &[ProbeResult]) -> Result<Observed, ModuleError> {
        let mut o = Observed::default();
        for (kind, r) in self.probe_kinds().iter().zip(probes) {
            if r.rc != 0 {
                return Err(ModuleError::Failed(format!("apt: cannot read package state: {}", r.stderr.trim())));
            }
            match *kind {
                "dpkg" => parse_dpkg(&r.stdout, &mut o.dpkg),
                "policy" => o.policy = parse_policy(&r.stdout),
                "dpkg+policy" => {
                    let (dpkg, policy) = r.stdout.split_once(&format!("\n{POLICY_MARK}\n")).unwrap_or((&r.stdout, ""));
                    parse_dpkg(dpkg, &mut o.dpkg);
                    o.policy = parse_policy(policy);
                }
                "cache" => {
                    for l in r.stdout.lines() {
                        if let Some(v) = l.strip_prefix("cache_mtime|") {
                            o.cache_mtime = v.trim().parse().ok();
                        } else if let Some(v) = l.strip_prefix("now|") {
                            o.now = v.trim().parse().ok();
                        }
                    }
                }
                "deb" => {
                    let mut lines = r.stdout.lines();
                    let first = lines.next().unwrap_or("");
                    let f: Vec<&str> = first.split('|').collect();
                    if f.len() != 3 || f[0] != "deb" {
                        return Err(ModuleError::Probe(format!("apt deb: '{first}'")));
                    }
                    o.deb = Some((f[1].to_string(), f[2].to_string()));
                    parse_dpkg(&lines.collect::<Vec<_>>().join("\n"), &mut o.dpkg);
                }
                "upgrade" | "autoremove" => o.sim.extend(parse_sim(&r.stdout)),
                _ => {}
            }
        }
        Ok(o)
    }
}

impl ModuleTask for AptTask {
    fn probes(&self) -> Vec<Probe> {
        let env = "LC_ALL=C DEBIAN_FRONTEND=noninteractive";
        self.probe_kinds()
            .into_iter()
            .map(|k| {
                let s = match k {
                    // Unknown names make dpkg-query exit 1 with "no packages found": still an answer.
                    "dpkg" => format!("{} || true", dpkg_query(&self.names())),
                    "policy" => format!("LC_ALL=C apt-cache policy -- {}", self.names()),
                    "dpkg+policy" => {
                        let names = |pinned: bool| self.pkgs.iter().filter(|p| p.version.is_some() == pinned).map(|p| p.name.as_str()).collect::<Vec<_>>();
                        let unpinned: Vec<String> = names(false).into_iter().map(sh_quote).collect();
                        format!(
                            "d=$({})\n\
                             printf '%s\\n' \"$d\"\n\
                             need={pinned}\n\
                             for n in {unpinned}; do case \"\n$d\" in *\"\n$n|install ok installed|\"*) ;; *) need=\"$need $n\" ;; esac; done\n\
                             echo {POLICY_MARK}\n\
                             if [ -n \"${{need# }}\" ]; then LC_ALL=C apt-cache policy -- $need; fi",
                            dpkg_query(&self.names()),
                            // word-split below, as package names allow no blanks
                            pinned = sh_quote(&names(true).join(" ")),
                            unpinned = unpinned.join(" "),
                        )
                    }
                    "cache" => "t=0; for f in /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists; do if [ -e \"$f\" ]; then t=$(stat -c %Y \"$f\"); break; fi; done; echo \"cache_mtime|$t\"; echo \"now|$(date +%s)\"".to_string(),
                    "deb" => {
                        let d = sh_quote(self.deb.as_deref().unwrap_or(""));
                        format!("[ -f {d} ] || {{ echo 'no such .deb file: '{d} >&2; exit 1; }}\np=$(dpkg-deb -f {d} Package) && v=$(dpkg-deb -f {d} Version) || exit 1\necho \"deb|$p|$v\"\n{} || true", dpkg_query("\"$p\""))
                    }
                    "upgrade" => {
                        let sub = match self.upgrade {
                            Upgrade::Safe => "upgrade --with-new-pkgs",
                            _ => "dist-upgrade",
                        };
                        format!("{env} apt-get -s -q {sub}")
                    }
                    _ => format!("{env} apt-get -s -q autoremove"),
                };
                Probe::new(s, Scope::Host)
            })
            .collect()
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let o = self.observe(probes)?;
        let mut plan = Plan::ok();
        let mut diffs = Vec::new();
        let mut actions = Vec::new();
        // 1. cache
        let mut updating = false;
        if self.update_cache {
            let age = match (o.now, o.cache_mtime) {
                (Some(n), Some(m)) if m > 0 => Some(n.saturating_sub(m).max(0) as u64),
                _ => None,
            };
            updating = self.cache_valid_time == 0 || age.map(|a| a > self.cache_valid_time).unwrap_or(true);
            if updating {
                diffs.push(Diff::Field {
                    name: "cache".into(),
                    before: age.map(|a| format!("updated {a}s ago")).unwrap_or_else(|| "never updated".into()),
                    after: "updated".into(),
                });
                actions.push(Action::new(
                    "update apt cache",
                    format!("export DEBIAN_FRONTEND=noninteractive\nset -e\napt-get update -q -o DPkg::Lock::Timeout={}\nmkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp", self.lock_timeout),
                    Scope::Host,
                ));
            }
            plan.result.insert("cache_updated".into(), json!(updating));
            if let Some(m) = o.cache_mtime {
                plan.result
                    .insert("cache_update_time".into(), json!(if updating { o.now.unwrap_or(m) } else { m }));
            }
        }
        let cache_only = self.pkgs.is_empty() && self.deb.is_none() && self.upgrade == Upgrade::No && !self.autoremove;
        // An install that depends on lists only the update will fetch: decided in `finish`.
        let mut speculative = false;

        // 2. packages
        let mut install: Vec<String> = Vec::new();
        let mut remove: Vec<String> = Vec::new();
        for p in &self.pkgs {
            let cur = o.dpkg.get(&p.name).cloned().unwrap_or_default();
            let pol = o.policy.get(&p.name).cloned().unwrap_or_default();
            match self.state {
                State::Absent => {
                    if cur.installed || (self.purge && cur.known) {
                        let before = if cur.installed {
                            format!("installed ({})", cur.version)
                        } else {
                            "config-files".to_string()
                        };
                        diffs.push(Diff::Field {
                            name: p.name.clone(),
                            before,
                            after: if self.purge { "purged".into() } else { "absent".into() },
                        });
                        remove.push(p.name.clone());
                    }
                }
                State::Present | State::Latest => {
                    if self.only_upgrade && !cur.installed {
                        continue;
                    }
                    let known_pkg = o.policy.contains_key(&p.name);
                    if !known_pkg && !cur.installed {
                        if updating {
                            speculative = true;
                            diffs.push(Diff::Field {
                                name: p.name.clone(),
                                before: "absent".into(),
                                after: "install (after cache update)".into(),
                            });
                            install.push(match &p.version {
                                Some(v) => format!("{}={v}", p.name),
                                None => p.name.clone(),
                            });
                            continue;
                        }
                        return Err(ModuleError::Failed(format!("No package matching '{}' is available", p.name)));
                    }
                    if let Some(pin) = &p.version {
                        if cur.installed && version_matches(pin, &cur.version) {
                            continue;
                        }
                        let target = pol.versions.iter().find(|v| version_matches(pin, v)).cloned();
                        let target = match target {
                            Some(t) => t,
                            None if updating => {
                                speculative = true;
                                pin.clone()
                            }
                            None => {
                                return Err(ModuleError::Failed(format!("No package matching '{}={pin}' is available", p.name)));
                            }
                        };
                        let before = if cur.installed { cur.version.clone() } else { "absent".into() };
                        diffs.push(Diff::Field {
                            name: p.name.clone(),
                            before,
                            after: target.clone(),
                        });
                        install.push(format!("{}={target}", p.name));
                        continue;
                    }
                    if !cur.installed {
                        let after = match &pol.candidate {
                            Some(c) => format!("install ({c})"),
                            None => "install".into(),
                        };
                        diffs.push(Diff::Field {
                            name: p.name.clone(),
                            before: "absent".into(),
                            after,
                        });
                        install.push(p.name.clone());
                    } else if self.state == State::Latest {
                        match &pol.candidate {
                            Some(c) if *c != cur.version => {
                                diffs.push(Diff::Field {
                                    name: p.name.clone(),
                                    before: cur.version.clone(),
                                    after: c.clone(),
                                });
                                install.push(p.name.clone());
                            }
                            _ if updating => {
                                // The refreshed lists may hold a newer version.
                                speculative = true;
                                install.push(p.name.clone());
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        if let (Some(deb), Some((dname, dver))) = (&self.deb, &o.deb) {
            let cur = o.dpkg.get(dname).cloned().unwrap_or_default();
            if !(cur.installed && cur.version == *dver) {
                let before = if cur.installed { cur.version.clone() } else { "absent".into() };
                diffs.push(Diff::Field {
                    name: dname.clone(),
                    before,
                    after: dver.clone(),
                });
                // apt-get resolves the .deb's dependencies; it needs a path containing a '/'.
                let path = if deb.contains('/') { deb.clone() } else { format!("./{deb}") };
                install.push(path);
            }
        }
        let mut install_action_index = None;
        if !install.is_empty() {
            let mut cmd = self.apt_get("install");
            if self.only_upgrade {
                cmd.push_str(" --only-upgrade");
            }
            let list: Vec<String> = install.iter().map(|p| sh_quote(p)).collect();
            install_action_index = Some(actions.len());
            actions.push(Action::new(
                format!("install {}", install.join(" ")),
                format!("export DEBIAN_FRONTEND=noninteractive\n{cmd} -- {}", list.join(" ")),
                Scope::Host,
            ));
        }
        if !remove.is_empty() {
            let mut cmd = format!("apt-get remove -y -q -o DPkg::Lock::Timeout={}", self.lock_timeout);
            if self.purge {
                cmd.push_str(" --purge");
            }
            if self.autoremove {
                cmd.push_str(" --autoremove");
            }
            for f in &self.flags {
                cmd.push(' ');
                cmd.push_str(f);
            }
            let list: Vec<String> = remove.iter().map(|p| sh_quote(p)).collect();
            actions.push(Action::new(
                format!("remove {}", remove.join(" ")),
                format!("export DEBIAN_FRONTEND=noninteractive\n{cmd} -- {}", list.join(" ")),
                Scope::Host,
            ));
        }

        // 3. upgrade / autoremove of the whole system
        if self.upgrade != Upgrade::No {
            let mut any = false;
            for (op, name, old, new) in o.sim.iter().filter(|s| s.0 == "Inst" || s.0 == "Remv") {
                any = true;
                let (before, after) = match op.as_str() {
                    "Inst" => (
                        old.clone().unwrap_or_else(|| "absent".into()),
                        new.clone().unwrap_or_else(|| "install".into()),
                    ),
                    _ => (old.clone().unwrap_or_else(|| "installed".into()), "absent".into()),
                };
                diffs.push(Diff::Field {
                    name: name.clone(),
                    before,
                    after,
                });
            }
            if any || updating {
                speculative |= !any;
                let sub = match self.upgrade {
                    Upgrade::Safe => "upgrade",
                    _ => "dist-upgrade",
                };
                let mut cmd = self.apt_get(sub);
                if self.upgrade == Upgrade::Safe {
                    cmd.push_str(" --with-new-pkgs");
                }
                if install_action_index.is_none() {
                    install_action_index = Some(actions.len());
                }
                actions.push(Action::new(
                    format!("apt-get {sub}"),
                    format!("export DEBIAN_FRONTEND=noninteractive\n{cmd}"),
                    Scope::Host,
                ));
            }
        }
        if self.autoremove && self.pkgs.is_empty() && self.deb.is_none() {
            let rem: Vec<&String> = o.sim.iter().filter(|s| s.0 == "Remv" || s.0 == "Purg").map(|s| &s.1).collect();
            if !rem.is_empty() {
                for n in &rem {
                    diffs.push(Diff::Field {
                        name: n.to_string(),
                        before: "installed".into(),
                        after: "autoremoved".into(),
                    });
                }
                let purge = if self.purge { " --purge" } else { "" };
                actions.push(Action::new(
                    "apt-get autoremove",
                    format!(
                        "export DEBIAN_FRONTEND=noninteractive\napt-get autoremove -y -q -o DPkg::Lock::Timeout={}{purge}",
                        self.lock_timeout
                    ),
                    Scope::Host,
                ));
            }
        }
        if self.autoclean {
            actions.push(Action::new(
                "apt-get autoclean",
                format!("apt-get autoclean -q -o DPkg::Lock::Timeout={}", self.lock_timeout),
                Scope::Host,
            ));
        }
        if self.clean {
            actions.push(Action::new(
                "apt-get clean",
                format!("apt-get clean -q -o DPkg::Lock::Timeout={}", self.lock_timeout),
                Scope::Host,
            ));
        }

        let pkg_changes = diffs.iter().any(|d| !matches!(d, Diff::Field { name, .. } if name == "cache"));
        if !cache_only && updating && !pkg_changes && !self.autoclean && !self.clean {
            // Only the cache refresh (and maybe a speculative upgrade) is planned: like Ansible,
            // that is not a change of the packages; `finish` decides from apt-get's output.
            plan.changed = Some(false);
        }
        if speculative && !pkg_changes {
            plan.changed = Some(false);
        }
        plan.result.insert("speculative".into(), json!(speculative));
        if let Some(i) = install_action_index {
            plan.result.insert("install_action".into(), json!(i));
        }
        if self.update_cache && cache_only {
            plan.changed = Some(updating);
        }
        plan.actions = actions;
        plan.diffs = diffs;
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let speculative = plan.result.remove("speculative").and_then(|v| v.as_bool()).unwrap_or(false);
        let idx = plan.result.remove("install_action").and_then(|v| v.as_u64()).map(|v| v as usize);
        let mut stdout = String::new();
        let mut stderr = String::new();
        for o in outputs {
            stdout.push_str(&o.stdout_str());
            stderr.push_str(&o.stderr_str());
        }
        if speculative {
            if let Some(out) = idx.and_then(|i| outputs.get(i)) {
                let s = out.stdout_str();
                let nothing = s.lines().any(|l| l.starts_with("0 upgraded, 0 newly installed, 0 to remove"));
                if !nothing {
                    plan.changed = Some(true);
                }
            }
        }
        if !outputs.is_empty() {
            plan.result.insert("stdout".into(), json!(stdout));
            plan.result.insert("stderr".into(), json!(stderr));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, ok};
    use super::*;

    #[test]
    fn plain_installs_with_the_same_options_share_a_transaction() {
        let m = |v: Value| v.as_object().unwrap().clone();
        let base = m(json!({"name": ["git", "ufw"], "update_cache": true, "cache_valid_time": 3600, "install_recommends": false}));
        let later = m(json!({"name": "postgresql,postgresql-contrib", "install_recommends": false, "state": "present"}));
        let merged = merge_install(&base, &later).unwrap();
        assert_eq!(merged["name"], json!(["git", "ufw", "postgresql", "postgresql-contrib"]));
        assert_eq!(merged["update_cache"], json!(true));
        // different options, a cache refresh of its own, removals, upgrades, .debs: no
        assert!(merge_install(&base, &m(json!({"name": "nginx"}))).is_none());
        assert!(merge_install(&base, &m(json!({"name": "nginx", "install_recommends": false, "update_cache": true}))).is_none());
        // the same refresh as the first task's: fine
        let pg = m(json!({"name": ["postgresql"], "install_recommends": false, "update_cache": "yes", "cache_valid_time": "3600"}));
        assert_eq!(merge_install(&base, &pg).unwrap()["name"], json!(["git", "ufw", "postgresql"]));
        assert!(merge_install(&m(json!({"name": ["git"], "install_recommends": false})), &pg).is_none());
        assert!(merge_install(&base, &m(json!({"name": "nginx", "install_recommends": false, "state": "absent"}))).is_none());
        assert!(merge_install(&base, &m(json!({"name": "nginx", "install_recommends": false, "state": "latest"}))).is_none());
        assert!(merge_install(&base, &m(json!({"deb": "/tmp/x.deb", "install_recommends": false}))).is_none());
        assert!(merge_install(&m(json!({"upgrade": "dist"})), &later).is_none());
    }

    fn task(v: Value) -> AptTask {
        build(v.as_object().unwrap()).unwrap()
    }
    const POLICY: &str = "nginx:\n  Installed: (none)\n  Candidate: 1.22.1-9+deb12u9\n  Version table:\n     1.22.1-9+deb12u9 500\n        500 file:/srv/localrepo ./ Packages\nsudo:\n  Installed: 1.9.13p3-1+deb12u4\n  Candidate: 1.9.13p3-1+deb12u4\n  Version table:\n *** 1.9.13p3-1+deb12u4 100\n        100 /var/lib/dpkg/status\n";

    /// Output of the combined dpkg+policy probe.
    fn both(dpkg: &str, policy: &str) -> ProbeResult {
        ok(&format!("{dpkg}\n{POLICY_MARK}\n{policy}"))
    }

    #[test]
    fn present_asks_apt_cache_only_about_packages_not_installed_or_pinned() {
        // Fake dpkg-query and apt-cache on PATH; the probe script itself runs under sh.
        let d = tempfile::tempdir().unwrap();
        let bin = d.path();
        let write = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        };
        write("dpkg-query", "printf 'sudo|install ok installed|1.9\\nvim|deinstall ok config-files|2:9.0\\ngit|install ok installed|2.39\\n'");
        write("apt-cache", &format!("echo \"asked: $*\" >> {}/asked; cat <<'EOF'\n{POLICY}EOF", bin.display()));
        let run = |t: &AptTask| {
            let pr = t.probes();
            assert_eq!(pr.len(), 1);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&pr[0].script)
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .output()
                .unwrap();
            ok(&String::from_utf8_lossy(&out.stdout))
        };
        let asked = || std::fs::read_to_string(bin.join("asked")).unwrap_or_default();
        // everything installed and unpinned: apt-cache is not run at all
        let r = run(&task(json!({"name": ["sudo", "git"]})));
        assert_eq!(asked(), "");
        assert!(task(json!({"name": ["sudo", "git"]})).plan(&[r]).unwrap().actions.is_empty());
        // vim has only config files left, nginx is unknown to dpkg, git is pinned
        let t = task(json!({"name": ["sudo", "vim", "nginx", "git=2.39"]}));
        let r = run(&t);
        assert_eq!(asked(), "asked: policy -- git vim nginx\n");
        // the (fake) policy knows nginx but not vim
        let err = t.plan(&[r]).unwrap_err().to_string();
        assert!(err.contains("No package matching 'vim'"), "{err}");
        std::fs::remove_file(bin.join("asked")).unwrap();
        let t = task(json!({"name": ["sudo", "nginx", "git=2.39"]}));
        let plan = t.plan(&[run(&t)]).unwrap();
        assert_eq!(asked(), "asked: policy -- git nginx\n");
        assert!(plan.actions[0].script.ends_with("-- nginx"), "{}", plan.actions[0].script);
    }

    #[test]
    fn parses_policy_and_dpkg() {
        let p = parse_policy(POLICY);
        assert_eq!(p["nginx"].candidate.as_deref(), Some("1.22.1-9+deb12u9"));
        assert_eq!(p["sudo"].versions, vec!["1.9.13p3-1+deb12u4"]);
        let mut d = BTreeMap::new();
        parse_dpkg(
            "sudo|install ok installed|1.9.13p3-1+deb12u4\nvim|deinstall ok config-files|2:9.0\n",
            &mut d,
        );
        assert!(d["sudo"].installed);
        assert!(!d["vim"].installed && d["vim"].known);
    }

    #[test]
    fn installs_missing_packages_in_one_transaction() {
        let t = task(json!({"name": ["nginx", "sudo"], "install_recommends": false}));
        let pr = t.probes();
        assert_eq!(pr.len(), 1);
        assert!(pr[0].script.contains("dpkg-query -W") && pr[0].script.contains("apt-cache policy"));
        let plan = t.plan(&[both("sudo|install ok installed|1.9.13p3-1+deb12u4\n", POLICY)]).unwrap();
        assert_eq!(plan.actions.len(), 1);
        assert!(plan.actions[0].script.contains("apt-get install -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends -- nginx"), "{}", plan.actions[0].script);
        assert!(!plan.actions[0].script.contains("sudo"));
        assert_eq!(
            plan.diffs,
            vec![Diff::Field {
                name: "nginx".into(),
                before: "absent".into(),
                after: "install (1.22.1-9+deb12u9)".into()
            }]
        );
        // converged
        let plan = t
            .plan(&[both("sudo|install ok installed|1.9.13p3-1+deb12u4\nnginx|install ok installed|1.22.1-9+deb12u9\n", "")])
            .unwrap();
        assert!(plan.actions.is_empty() && !plan.changed());
    }

    #[test]
    fn unknown_package_fails_unless_cache_update_pending() {
        let t = task(json!({"name": "nosuch"}));
        assert!(t.plan(&[both("", "")]).is_err());
        let t = task(json!({"name": "nosuch", "update_cache": true}));
        let plan = t.plan(&[both("", ""), ok("cache_mtime|100\nnow|200\n")]).unwrap();
        assert_eq!(plan.actions.len(), 2);
        assert!(plan.changed());
    }

    #[test]
    fn latest_pins_and_absent() {
        let pol = "nginx:\n  Installed: 1.22.1-9\n  Candidate: 1.22.1-9+deb12u9\n  Version table:\n     1.22.1-9+deb12u9 500\n        500 file:/srv/localrepo ./ Packages\n *** 1.22.1-9 100\n        100 /var/lib/dpkg/status\n";
        let dp = ok("nginx|install ok installed|1.22.1-9\n");
        let plan = task(json!({"name": "nginx", "state": "latest"}))
            .plan(&[dp.clone(), ok(pol)])
            .unwrap();
        assert_eq!(
            plan.diffs,
            vec![Diff::Field {
                name: "nginx".into(),
                before: "1.22.1-9".into(),
                after: "1.22.1-9+deb12u9".into()
            }]
        );
        let both_pinned = both("nginx|install ok installed|1.22.1-9\n", pol);
        let plan = task(json!({"name": "nginx=1.22*"})).plan(std::slice::from_ref(&both_pinned)).unwrap();
        assert!(plan.actions.is_empty());
        let plan = task(json!({"name": "nginx=1.22.1-9+deb12u9"}))
            .plan(&[both_pinned])
            .unwrap();
        assert!(plan.actions[0].script.ends_with("-- nginx=1.22.1-9+deb12u9"));
        let t = task(json!({"name": "nginx,vim", "state": "absent", "purge": true}));
        assert_eq!(t.probes().len(), 1);
        let plan = t
            .plan(&[ok("nginx|install ok installed|1.22.1-9\nvim|deinstall ok config-files|2:9.0\n")])
            .unwrap();
        assert!(plan.actions[0]
            .script
            .contains("apt-get remove -y -q -o DPkg::Lock::Timeout=300 --purge -- nginx vim"));
        let plan = t.plan(&[ok("")]).unwrap();
        assert!(plan.actions.is_empty());
    }

    #[test]
    fn cache_valid_time() {
        let t = task(json!({"update_cache": "yes", "cache_valid_time": 3600}));
        let plan = t.plan(&[ok("cache_mtime|1000\nnow|2000\n")]).unwrap();
        assert!(plan.actions.is_empty() && !plan.changed());
        let plan = t.plan(&[ok("cache_mtime|1000\nnow|9000\n")]).unwrap();
        assert!(plan.changed() && plan.actions[0].script.contains("apt-get update"));
        // with packages already there: cache refresh only is not a change
        let t = task(json!({"name": "sudo", "update_cache": true}));
        let plan = t
            .plan(&[both("sudo|install ok installed|1.9.13p3-1+deb12u4\n", ""), ok("cache_mtime|1000\nnow|9000\n")])
            .unwrap();
        assert_eq!(plan.actions.len(), 1);
        assert!(!plan.changed());
    }

    #[test]
    fn upgrade_and_autoremove_from_simulation() {
        let t = task(json!({"upgrade": "dist"}));
        let sim =
            "Inst libc6 [2.36-9] (2.36-9+deb12u1 Debian:12.5/stable [amd64])\nConf libc6 (2.36-9+deb12u1 Debian:12.5/stable [amd64])\n";
        let plan = t.plan(&[ok(sim)]).unwrap();
        assert_eq!(
            plan.diffs,
            vec![Diff::Field {
                name: "libc6".into(),
                before: "2.36-9".into(),
                after: "2.36-9+deb12u1".into()
            }]
        );
        assert!(plan.actions[0].script.contains("dist-upgrade"));
        assert!(t
            .plan(&[ok("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")])
            .unwrap()
            .actions
            .is_empty());
        let t = task(json!({"autoremove": true}));
        assert_eq!(t.plan(&[ok("Remv libfoo [1.0]\n")]).unwrap().actions.len(), 1);
    }

    #[test]
    fn probes_are_valid_sh() {
        let t = task(json!({"name": ["a", "b"], "update_cache": true, "upgrade": "yes", "deb": null}));
        for p in t.probes() {
            assert_sh_syntax(&p.script);
        }
        let t = task(json!({"deb": "/tmp/x.deb"}));
        assert_sh_syntax(&t.probes()[0].script);
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn apt_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let t = build(
            json!({"name": ["htop", "sudo"], "update_cache": true, "cache_valid_time": 3600, "install_recommends": false})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        eprintln!("{:?}\n{:?}", first.diffs, first.result);
        assert!(first.changed());
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let t = build(json!({"name": "htop", "state": "absent", "purge": true}).as_object().unwrap()).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
        let t = build(json!({"name": "nosuchpkg"}).as_object().unwrap()).unwrap();
        let r: Vec<ProbeResult> = t
            .probes()
            .iter()
            .map(|p| {
                let o = testhost::run(&p.script, None);
                ProbeResult {
                    stdout: o.stdout_str(),
                    stderr: o.stderr_str(),
                    rc: o.exit_code,
                }
            })
            .collect();
        let e = t.plan(&r).unwrap_err().to_string();
        assert!(e.contains("No package matching"), "{e}");
    }
}
