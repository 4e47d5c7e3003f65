//! `ufw`: Uncomplicated Firewall state, default policies, logging and rules.
//!
//! The probe reads ufw's own files, which are machine-readable and present even while the
//! firewall is disabled: `/etc/ufw/ufw.conf` (`ENABLED`, `LOGLEVEL`), `/etc/default/ufw`
//! (`DEFAULT_*_POLICY`, `IPV6`) and the `### tuple ###` lines of `/etc/ufw/user.rules` and
//! `user6.rules`. Each wanted rule is turned into the tuple ufw would store (addresses
//! normalised like ufw: `/32` dropped, host bits cleared) and compared; only missing or different
//! rules produce a `ufw ...` command.
//!
//! Ansible-compatible single-rule parameters: `rule`, `port`/`to_port`, `proto`, `from_ip`
//! (`from`, `src`), `to_ip` (`to`, `dest`), `from_port`, `direction`, `interface` (`if`),
//! `interface_in`, `interface_out`, `route`, `log`, `comment`, `delete`, `insert`; plus `state`
//! (enabled/disabled/reloaded/reset), `policy` + `direction` (incoming/outgoing/routed) and
//! `logging`.
//!
//! Exclusive rule sets: `rules:` takes a list of rule dicts (same keys as the single-rule
//! parameters) and `exclusive: true` makes that list the complete rule set: rules present in
//! ufw but not declared are deleted (diff `-rule ...`), declared ones added (`+rule ...`).
//! Declare your SSH rule in an exclusive set, or you lock yourself out once ufw is enabled.
//! ```yaml
//! - ufw:
//!     exclusive: true
//!     rules:
//!       - { rule: limit, port: 22, proto: tcp }
//!       - { rule: allow, port: "9200:9400", proto: tcp, from_ip: 10.0.0.0/8 }
//! ```

use super::args::{self, opt_boolish, opt_string};
use super::{
    sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe,
    ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::net::{Ipv4Addr, Ipv6Addr};

pub struct UfwModule;

const PARAMS: &[&str] = &[
    "state",
    "policy",
    "default",
    "direction",
    "logging",
    "rule",
    "port",
    "to_port",
    "proto",
    "protocol",
    "from_ip",
    "from",
    "src",
    "to_ip",
    "to",
    "dest",
    "from_port",
    "interface",
    "if",
    "interface_in",
    "interface_out",
    "route",
    "log",
    "comment",
    "delete",
    "insert",
    "insert_relative_to",
    "rules",
    "exclusive",
    "name",
    "app",
];

const RULE_KEYS: &[&str] = &[
    "rule",
    "port",
    "to_port",
    "proto",
    "protocol",
    "from_ip",
    "from",
    "src",
    "to_ip",
    "to",
    "dest",
    "from_port",
    "direction",
    "interface",
    "if",
    "interface_in",
    "interface_out",
    "route",
    "log",
    "comment",
    "delete",
    "insert",
];

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RuleArgs {
    #[serde(default)]
    rule: Option<String>,
    #[serde(default, alias = "to_port", deserialize_with = "opt_string")]
    port: Option<String>,
    #[serde(default, alias = "protocol")]
    proto: Option<String>,
    #[serde(default, alias = "from", alias = "src")]
    from_ip: Option<String>,
    #[serde(default, alias = "to", alias = "dest")]
    to_ip: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    from_port: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default, alias = "if")]
    interface: Option<String>,
    #[serde(default)]
    interface_in: Option<String>,
    #[serde(default)]
    interface_out: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    route: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    log: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    comment: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    delete: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    insert: Option<String>,
}

// No `deny_unknown_fields`: serde does not combine it with `flatten`; `args::parse` checks names.
#[derive(Deserialize, Debug)]
struct Args {
    #[serde(default)]
    state: Option<String>,
    #[serde(default, alias = "default")]
    policy: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    logging: Option<String>,
    #[serde(default)]
    rules: Option<Vec<Map<String, Value>>>,
    #[serde(default, deserialize_with = "opt_boolish")]
    exclusive: Option<bool>,
    #[serde(default, alias = "app")]
    name: Option<String>,
    #[serde(default)]
    insert_relative_to: Option<String>,
    #[serde(flatten)]
    rule: Map<String, Value>,
}

/// One wanted rule, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    action: String,
    log: Option<String>,
    route: bool,
    proto: String,
    dport: String,
    dst: String,
    sport: String,
    src: String,
    /// `in`, `out`, `in_eth0`, `in_eth0!out_eth1`
    dir: String,
    comment: Option<String>,
    delete: bool,
    insert: Option<u32>,
}

/// A `### tuple ###` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tuple {
    v6: bool,
    action: String,
    proto: String,
    dport: String,
    dst: String,
    sport: String,
    src: String,
    dir: String,
    comment: Option<String>,
    /// Application-profile rules (not managed; kept in exclusive mode).
    app: bool,
}

#[derive(Debug)]
struct UfwTask {
    state: Option<String>,
    policy: Option<(String, String)>,
    logging: Option<String>,
    rules: Vec<Rule>,
    exclusive: bool,
}

module_impl!(UfwModule, "ufw");

fn norm_addr(a: Option<&str>) -> Result<(String, Option<bool>), ModuleError> {
    let a = a.map(str::trim).unwrap_or("any");
    if a.is_empty() || a == "any" {
        return Ok(("any".into(), None));
    }
    let (ip, len) = match a.split_once('/') {
        Some((i, l)) => (
            i,
            Some(
                l.parse::<u8>()
                    .map_err(|_| ModuleError::Args(format!("ufw: invalid address '{a}'")))?,
            ),
        ),
        None => (a, None),
    };
    if let Ok(v4) = ip.parse::<Ipv4Addr>() {
        let len = len.unwrap_or(32);
        if len > 32 {
            return Err(ModuleError::Args(format!("ufw: invalid address '{a}'")));
        }
        if len == 32 {
            return Ok((v4.to_string(), Some(false)));
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        return Ok((
            format!("{}/{len}", Ipv4Addr::from(u32::from(v4) & mask)),
            Some(false),
        ));
    }
    if let Ok(v6) = ip.parse::<Ipv6Addr>() {
        let len = len.unwrap_or(128);
        if len > 128 {
            return Err(ModuleError::Args(format!("ufw: invalid address '{a}'")));
        }
        if len == 128 {
            return Ok((v6.to_string(), Some(true)));
        }
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        return Ok((
            format!("{}/{len}", Ipv6Addr::from(u128::from(v6) & mask)),
            Some(true),
        ));
    }
    Err(ModuleError::Args(format!("ufw: invalid address '{a}'")))
}

fn norm_port(p: Option<&str>, what: &str) -> Result<String, ModuleError> {
    let p = p.map(str::trim).unwrap_or("any");
    if p.is_empty() || p == "any" {
        return Ok("any".into());
    }
    for part in p.split(',') {
        let ok = match part.split_once(':') {
            Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
            None => part.parse::<u16>().is_ok(),
        };
        if !ok {
            return Err(ModuleError::Args(format!("ufw: {what} must be a port number, a range like 9200:9400 or a comma list, got '{p}' (service names are not supported)")));
        }
    }
    Ok(p.to_string())
}

fn parse_rule(r: &RuleArgs, top_dir: Option<&str>) -> Result<Rule, ModuleError> {
    let action = r.rule.clone().ok_or_else(|| {
        ModuleError::Args("ufw: rule (allow/deny/limit/reject) is required for a rule".into())
    })?;
    if !["allow", "deny", "limit", "reject"].contains(&action.as_str()) {
        return Err(ModuleError::Args(format!(
            "ufw: rule must be allow, deny, limit or reject, got '{action}'"
        )));
    }
    let proto = r
        .proto
        .clone()
        .unwrap_or_else(|| "any".into())
        .to_lowercase();
    if ![
        "any", "tcp", "udp", "ipv6", "esp", "ah", "gre", "igmp", "vrrp",
    ]
    .contains(&proto.as_str())
    {
        return Err(ModuleError::Args(format!(
            "ufw: unsupported proto '{proto}'"
        )));
    }
    let dport = norm_port(r.port.as_deref(), "port")?;
    let sport = norm_port(r.from_port.as_deref(), "from_port")?;
    for p in [&dport, &sport] {
        if (p.contains(':') || p.contains(',')) && proto != "tcp" && proto != "udp" {
            return Err(ModuleError::Args(format!(
                "ufw: port ranges and lists ('{p}') require proto tcp or udp"
            )));
        }
    }
    let (src, _) = norm_addr(r.from_ip.as_deref())?;
    let (dst, _) = norm_addr(r.to_ip.as_deref())?;
    let route = r.route.unwrap_or(false);
    let direction = r.direction.as_deref().or(top_dir).map(|d| match d {
        "incoming" | "in" => Ok("in"),
        "outgoing" | "out" => Ok("out"),
        "routed" => Ok("in"),
        other => Err(ModuleError::Args(format!(
            "ufw: direction must be in or out, got '{other}'"
        ))),
    });
    let direction = direction.transpose()?.unwrap_or("in");
    let dir = if let (Some(i), Some(o)) = (&r.interface_in, &r.interface_out) {
        format!("in_{i}!out_{o}")
    } else if let Some(i) = &r.interface_in {
        format!("in_{i}")
    } else if let Some(o) = &r.interface_out {
        format!("out_{o}")
    } else if let Some(i) = &r.interface {
        format!("{direction}_{i}")
    } else {
        direction.to_string()
    };
    let insert = match &r.insert {
        Some(i) => Some(i.trim().parse::<u32>().map_err(|_| {
            ModuleError::Args(format!("ufw: insert must be a rule number, got '{i}'"))
        })?),
        None => None,
    };
    Ok(Rule {
        action,
        log: r.log.filter(|l| *l).map(|_| "log".into()),
        route,
        proto,
        dport,
        dst,
        sport,
        src,
        dir,
        comment: r.comment.clone().filter(|c| !c.is_empty()),
        delete: r.delete.unwrap_or(false),
        insert,
    })
}

fn build(args: &Map<String, Value>) -> Result<UfwTask, ModuleError> {
    let a: Args = args::parse("ufw", PARAMS, args)?;
    let _ = (&a.name, &a.insert_relative_to);
    if a.name.is_some() {
        return Err(ModuleError::Args(
            "ufw: application profiles (name/app) are not supported; use port and proto".into(),
        ));
    }
    let state = match a.state.as_deref() {
        None => None,
        Some(s @ ("enabled" | "disabled" | "reloaded" | "reset")) => Some(s.to_string()),
        Some(s) => {
            return Err(ModuleError::Args(format!(
                "ufw: state must be enabled, disabled, reloaded or reset, got '{s}'"
            )))
        }
    };
    let top_dir = a
        .rule
        .get("direction")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let policy = match &a.policy {
        None => None,
        Some(p) => {
            if !["allow", "deny", "reject"].contains(&p.as_str()) {
                return Err(ModuleError::Args(format!(
                    "ufw: policy must be allow, deny or reject, got '{p}'"
                )));
            }
            let d =
                match top_dir.as_deref().unwrap_or("incoming") {
                    "incoming" | "in" => "incoming",
                    "outgoing" | "out" => "outgoing",
                    "routed" => "routed",
                    other => return Err(ModuleError::Args(format!(
                        "ufw: policy direction must be incoming, outgoing or routed, got '{other}'"
                    ))),
                };
            Some((p.clone(), d.to_string()))
        }
    };
    let logging = match a.logging.as_deref().map(|l| l.to_lowercase()) {
        None => None,
        Some(l) => match l.as_str() {
            "on" | "true" | "yes" => Some("on".into()),
            "off" | "false" | "no" => Some("off".into()),
            "low" | "medium" | "high" | "full" => Some(l),
            _ => {
                return Err(ModuleError::Args(format!(
                    "ufw: logging must be on, off, low, medium, high or full, got '{l}'"
                )))
            }
        },
    };
    let mut rules = Vec::new();
    let mut single: Map<String, Value> = a.rule.clone();
    // `direction` only belongs to the rule when there is a rule.
    if !single.contains_key("rule") {
        single.remove("direction");
    }
    if !single.is_empty() {
        let r: RuleArgs = args::parse("ufw", RULE_KEYS, &single)?;
        rules.push(parse_rule(&r, None)?);
    }
    for (i, m) in a.rules.unwrap_or_default().iter().enumerate() {
        let r: RuleArgs = args::parse(&format!("ufw (rules[{i}])"), RULE_KEYS, m)?;
        rules.push(parse_rule(&r, None)?);
    }
    let exclusive = a.exclusive.unwrap_or(false);
    if exclusive && rules.iter().any(|r| r.delete) {
        return Err(ModuleError::Args(
            "ufw: delete cannot be used in an exclusive rule set (leave the rule out instead)"
                .into(),
        ));
    }
    if state.is_none() && policy.is_none() && logging.is_none() && rules.is_empty() && !exclusive {
        return Err(ModuleError::Args(
            "ufw: nothing to do (give state, policy, logging, rule or rules)".into(),
        ));
    }
    Ok(UfwTask {
        state,
        policy,
        logging,
        rules,
        exclusive,
    })
}

fn parse_tuple(file: &str, line: &str) -> Option<Tuple> {
    let (body, comment) = match line.split_once(" comment=") {
        Some((b, c)) => (
            b,
            hex::decode(c.trim())
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        ),
        None => (line, None),
    };
    let f: Vec<&str> = body.split_whitespace().collect();
    let (app, f) = match f.len() {
        7 => (false, f),
        9 => (true, vec![f[0], f[1], f[2], f[3], f[4], f[5], f[8]]),
        _ => return None,
    };
    Some(Tuple {
        v6: file == "user6.rules",
        action: f[0].into(),
        proto: f[1].into(),
        dport: f[2].into(),
        dst: f[3].into(),
        sport: f[4].into(),
        src: f[5].into(),
        dir: f[6].into(),
        comment,
        app,
    })
}

impl Rule {
    fn tuple_action(&self) -> String {
        let mut a = self.action.clone();
        if let Some(l) = &self.log {
            a = format!("{a}_{l}");
        }
        if self.route {
            a = format!("route:{a}");
        }
        a
    }

    /// Which rule files the rule lands in.
    fn families(&self, ipv6: bool) -> Vec<bool> {
        let fam = |a: &str| {
            if a == "any" {
                None
            } else {
                Some(a.contains(':'))
            }
        };
        match (fam(&self.src), fam(&self.dst)) {
            (Some(x), _) | (None, Some(x)) => vec![x],
            (None, None) => {
                if ipv6 {
                    vec![false, true]
                } else {
                    vec![false]
                }
            }
        }
    }

    fn same_match(&self, t: &Tuple) -> bool {
        let any = |a: &str, v6: bool| {
            if a == "any" {
                if v6 {
                    "::/0".to_string()
                } else {
                    "0.0.0.0/0".to_string()
                }
            } else {
                a.to_string()
            }
        };
        !t.app
            && t.proto == self.proto
            && t.dport == self.dport
            && t.sport == self.sport
            && t.dst == any(&self.dst, t.v6)
            && t.src == any(&self.src, t.v6)
            && t.dir == self.dir
            && t.action.starts_with("route:") == self.route
    }

    fn identical(&self, t: &Tuple) -> bool {
        self.same_match(t)
            && t.action == self.tuple_action()
            && (self.comment.is_none() || self.comment == t.comment)
    }

    fn describe(&self) -> String {
        describe(
            &self.tuple_action(),
            &self.proto,
            &self.dport,
            &self.dst,
            &self.sport,
            &self.src,
            &self.dir,
            self.comment.as_deref(),
        )
    }

    /// `ufw ...` arguments (without the leading `ufw`).
    fn command(&self, delete: bool) -> String {
        spec_command(
            &self.tuple_action(),
            &self.proto,
            &self.dport,
            &self.dst,
            &self.sport,
            &self.src,
            &self.dir,
            if delete {
                None
            } else {
                self.comment.as_deref()
            },
            delete,
            if delete { None } else { self.insert },
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn describe(
    action: &str,
    proto: &str,
    dport: &str,
    dst: &str,
    sport: &str,
    src: &str,
    dir: &str,
    comment: Option<&str>,
) -> String {
    let anyify = |a: &str| {
        if a == "0.0.0.0/0" || a == "::/0" {
            "any"
        } else {
            a
        }
        .to_string()
    };
    let (dst, src) = (anyify(dst), anyify(src));
    let mut s = format!("{action} {}", dir.replace('_', " on ").replace('!', " "));
    if proto != "any" {
        s.push_str(&format!(" proto {proto}"));
    }
    s.push_str(&format!(" from {src}"));
    if sport != "any" {
        s.push_str(&format!(" port {sport}"));
    }
    s.push_str(&format!(" to {dst}"));
    if dport != "any" {
        s.push_str(&format!(" port {dport}"));
    }
    if let Some(c) = comment {
        s.push_str(&format!(" comment '{c}'"));
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn spec_command(
    action: &str,
    proto: &str,
    dport: &str,
    dst: &str,
    sport: &str,
    src: &str,
    dir: &str,
    comment: Option<&str>,
    delete: bool,
    insert: Option<u32>,
) -> String {
    let (route, action) = match action.strip_prefix("route:") {
        Some(a) => (true, a),
        None => (false, action),
    };
    let (action, log) = match action.split_once('_') {
        Some((a, l)) => (a, Some(l)),
        None => (action, None),
    };
    let mut s = String::new();
    if route {
        s.push_str("route ");
    }
    if delete {
        s.push_str("delete ");
    } else if let Some(n) = insert {
        s.push_str(&format!("insert {n} "));
    }
    s.push_str(action);
    for part in dir.split('!') {
        match part.split_once('_') {
            Some((d, i)) => s.push_str(&format!(" {d} on {}", sh_quote(i))),
            None => s.push_str(&format!(" {part}")),
        }
    }
    if let Some(l) = log {
        s.push_str(&format!(" {l}"));
    }
    if proto != "any" {
        s.push_str(&format!(" proto {proto}"));
    }
    let anyify = |a: &str| {
        if a == "0.0.0.0/0" || a == "::/0" {
            "any".to_string()
        } else {
            a.to_string()
        }
    };
    s.push_str(&format!(" from {}", anyify(src)));
    if sport != "any" {
        s.push_str(&format!(" port {sport}"));
    }
    s.push_str(&format!(" to {}", anyify(dst)));
    if dport != "any" {
        s.push_str(&format!(" port {dport}"));
    }
    if let Some(c) = comment {
        s.push_str(&format!(" comment {}", sh_quote(c)));
    }
    s
}

#[derive(Debug, Default)]
struct Observed {
    enabled: bool,
    loglevel: String,
    ipv6: bool,
    policy: Vec<(String, String)>,
    tuples: Vec<Tuple>,
}

fn observe(r: &ProbeResult) -> Result<Observed, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!(
            "ufw: cannot read ufw configuration: {}",
            r.stderr.trim()
        )));
    }
    let mut o = Observed {
        ipv6: true,
        loglevel: "low".into(),
        ..Default::default()
    };
    for line in r.stdout.lines() {
        let Some((k, v)) = line.split_once('|') else {
            continue;
        };
        match k {
            "ufw" if v == "missing" => {
                return Err(ModuleError::Failed(
                    "ufw: ufw is not installed on the host (install the ufw package first)".into(),
                ))
            }
            "unreadable" => {
                return Err(ModuleError::Failed(format!(
                    "ufw: cannot read {v} (run with become)"
                )))
            }
            "enabled" => o.enabled = v.trim().trim_matches('"') == "yes",
            "loglevel" => o.loglevel = v.trim().trim_matches('"').to_string(),
            "ipv6" => o.ipv6 = v.trim().trim_matches('"') == "yes",
            "policy" => {
                if let Some((d, p)) = v.split_once('|') {
                    o.policy
                        .push((d.to_string(), p.trim().trim_matches('"').to_string()));
                }
            }
            "tuple" => {
                if let Some((file, rest)) = v.split_once('|') {
                    if let Some(t) = parse_tuple(file, rest) {
                        o.tuples.push(t);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(o)
}

const PROBE: &str = "command -v ufw >/dev/null 2>&1 || [ -x /usr/sbin/ufw ] || { echo 'ufw|missing'; exit 0; }\n\
for f in /etc/ufw/ufw.conf /etc/default/ufw; do [ -r \"$f\" ] || { echo \"unreadable|$f\"; exit 0; }; done\n\
sed -n 's/^ENABLED=/enabled|/p; s/^LOGLEVEL=/loglevel|/p' /etc/ufw/ufw.conf\n\
sed -n 's/^DEFAULT_\\(INPUT\\|OUTPUT\\|FORWARD\\)_POLICY=/policy|\\1|/p; s/^IPV6=/ipv6|/p' /etc/default/ufw\n\
for f in user.rules user6.rules; do if [ -e /etc/ufw/$f ]; then [ -r /etc/ufw/$f ] || { echo \"unreadable|/etc/ufw/$f\"; exit 0; }; sed -n \"s/^### tuple ### /tuple|$f|/p\" /etc/ufw/$f; fi; done\n";

fn ufw_action(summary: String, args: &str) -> Action {
    Action::new(
        summary,
        format!("set -e\nPATH=$PATH:/usr/sbin:/sbin\nufw {args}\n"),
        Scope::Host,
    )
}

impl ModuleTask for UfwTask {
    fn probes(&self) -> Vec<Probe> {
        vec![Probe::new(PROBE, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let o = observe(
            probes
                .first()
                .ok_or_else(|| ModuleError::Probe("ufw: no probe output".into()))?,
        )?;
        let mut plan = Plan::ok();
        let mut commands: Vec<String> = Vec::new();
        let mut reset = false;
        match self.state.as_deref() {
            Some("reset") => {
                plan.diffs.push(Diff::Field {
                    name: "rules".into(),
                    before: format!("{} tuples", o.tuples.len()),
                    after: "reset to defaults".into(),
                });
                plan.actions
                    .push(ufw_action("reset ufw".into(), "--force reset"));
                reset = true;
            }
            Some("reloaded") => {
                plan.actions.push(ufw_action("reload ufw".into(), "reload"));
            }
            _ => {}
        }
        if let Some((p, d)) = &self.policy {
            let key = match d.as_str() {
                "incoming" => "INPUT",
                "outgoing" => "OUTPUT",
                _ => "FORWARD",
            };
            let want = match p.as_str() {
                "allow" => "ACCEPT",
                "deny" => "DROP",
                _ => "REJECT",
            };
            let have = o
                .policy
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if have != want || reset {
                plan.diffs.push(Diff::Field {
                    name: format!("default {d} policy"),
                    before: have,
                    after: want.into(),
                });
                plan.actions.push(ufw_action(
                    format!("ufw default {p} {d}"),
                    &format!("default {p} {d}"),
                ));
            }
        }
        if let Some(l) = &self.logging {
            let have = o.loglevel.clone();
            let matches = match l.as_str() {
                "on" => have != "off",
                _ => *l == have,
            };
            if !matches {
                plan.diffs.push(Diff::Field {
                    name: "logging".into(),
                    before: have,
                    after: l.clone(),
                });
                plan.actions.push(ufw_action(
                    format!("ufw logging {l}"),
                    &format!("logging {l}"),
                ));
            }
        }
        let tuples: Vec<Tuple> = if reset { vec![] } else { o.tuples.clone() };
        for r in &self.rules {
            let fams = r.families(o.ipv6);
            let found: Vec<&Tuple> = tuples
                .iter()
                .filter(|t| fams.contains(&t.v6) && r.same_match(t))
                .collect();
            if r.delete {
                if !found.is_empty() {
                    plan.diffs.push(Diff::Field {
                        name: "rule".into(),
                        before: r.describe(),
                        after: "absent".into(),
                    });
                    commands.push(r.command(true));
                }
                continue;
            }
            let all_identical = fams
                .iter()
                .all(|v6| found.iter().any(|t| t.v6 == *v6 && r.identical(t)));
            if !all_identical {
                let before = match found.first() {
                    Some(t) => describe(
                        &t.action,
                        &t.proto,
                        &t.dport,
                        &t.dst,
                        &t.sport,
                        &t.src,
                        &t.dir,
                        t.comment.as_deref(),
                    ),
                    None => "absent".into(),
                };
                plan.diffs.push(Diff::Field {
                    name: "rule".into(),
                    before,
                    after: r.describe(),
                });
                commands.push(r.command(false));
            }
        }
        if self.exclusive {
            let mut seen: Vec<String> = Vec::new();
            for t in &tuples {
                if t.app || self.rules.iter().any(|r| r.same_match(t)) {
                    continue;
                }
                let cmd = spec_command(
                    &t.action, &t.proto, &t.dport, &t.dst, &t.sport, &t.src, &t.dir, None, true,
                    None,
                );
                if seen.contains(&cmd) {
                    continue; // the v4 and v6 halves of one rule go with one delete
                }
                plan.diffs.push(Diff::Field {
                    name: "rule".into(),
                    before: describe(
                        &t.action,
                        &t.proto,
                        &t.dport,
                        &t.dst,
                        &t.sport,
                        &t.src,
                        &t.dir,
                        t.comment.as_deref(),
                    ),
                    after: "absent (not declared)".into(),
                });
                seen.push(cmd.clone());
                commands.insert(0, cmd);
            }
        }
        for c in &commands {
            plan.actions.push(ufw_action(format!("ufw {c}"), c));
        }
        match self.state.as_deref() {
            Some("enabled") if !o.enabled || reset => {
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "disabled".into(),
                    after: "enabled".into(),
                });
                plan.actions
                    .push(ufw_action("enable ufw".into(), "--force enable"));
            }
            Some("disabled") if o.enabled => {
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "enabled".into(),
                    after: "disabled".into(),
                });
                plan.actions
                    .push(ufw_action("disable ufw".into(), "disable"));
            }
            _ => {}
        }
        plan.result.insert(
            "commands".into(),
            json!(plan
                .actions
                .iter()
                .map(|a| a.summary.clone())
                .collect::<Vec<_>>()),
        );
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, ok as res};
    use super::*;

    const STATE: &str = "enabled|yes\nloglevel|low\npolicy|INPUT|\"DROP\"\npolicy|OUTPUT|\"ACCEPT\"\npolicy|FORWARD|\"DROP\"\nipv6|yes\n\
tuple|user.rules|limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n\
tuple|user.rules|allow tcp 9200:9400 0.0.0.0/0 any 10.0.0.0/8 in comment=6573\n\
tuple|user.rules|allow any any 0.0.0.0/0 any 0.0.0.0/0 in_lo\n\
tuple|user6.rules|limit tcp 22 ::/0 any ::/0 in\n\
tuple|user6.rules|allow any any ::/0 any ::/0 in_lo\n";

    fn task(v: Value) -> UfwTask {
        build(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn existing_rules_are_ok() {
        let t = task(json!({"rule": "limit", "port": 22, "proto": "tcp", "state": "enabled"}));
        assert!(t.plan(&[res(STATE)]).unwrap().actions.is_empty());
        let t = task(
            json!({"rule": "allow", "port": "9200:9400", "proto": "tcp", "from_ip": "10.1.2.3/8"}),
        );
        assert!(t.plan(&[res(STATE)]).unwrap().actions.is_empty());
        let t = task(json!({"rule": "allow", "interface": "lo", "direction": "in"}));
        assert!(t.plan(&[res(STATE)]).unwrap().actions.is_empty());
        let t = task(json!({"policy": "deny", "direction": "incoming", "logging": "on"}));
        assert!(t.plan(&[res(STATE)]).unwrap().actions.is_empty());
    }

    #[test]
    fn adds_changes_and_deletes() {
        let t = task(
            json!({"rule": "allow", "port": "5432", "proto": "tcp", "from": "192.168.1.0/24"}),
        );
        let p = t.plan(&[res(STATE)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(
            p.actions[0]
                .script
                .contains("ufw allow in proto tcp from 192.168.1.0/24 to any port 5432\n"),
            "{}",
            p.actions[0].script
        );
        let t = task(json!({"rule": "allow", "port": 22, "proto": "tcp"}));
        let p = t.plan(&[res(STATE)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        let t = task(json!({"rule": "limit", "port": 22, "proto": "tcp", "delete": true}));
        assert!(t.plan(&[res(STATE)]).unwrap().actions[0]
            .script
            .contains("ufw delete limit in proto tcp from any to any port 22"));
        let t = task(
            json!({"rule": "allow", "port": "9200:9400", "proto": "tcp", "from_ip": "10.0.0.0/8", "comment": "other"}),
        );
        assert_eq!(t.plan(&[res(STATE)]).unwrap().actions.len(), 1);
        assert!(build(
            json!({"rule": "allow", "port": "9200:9400"})
                .as_object()
                .unwrap()
        )
        .is_err());
    }

    #[test]
    fn exclusive_rule_sets_remove_undeclared() {
        let t = task(
            json!({"exclusive": true, "rules": [{"rule": "limit", "port": 22, "proto": "tcp"}, {"rule": "allow", "port": 80, "proto": "tcp"}]}),
        );
        let p = t.plan(&[res(STATE)]).unwrap();
        let cmds: Vec<&str> = p.actions.iter().map(|a| a.summary.as_str()).collect();
        assert_eq!(
            cmds,
            vec![
                "ufw delete allow in on lo from any to any",
                "ufw delete allow in proto tcp from 10.0.0.0/8 to any port 9200:9400",
                "ufw allow in proto tcp from any to any port 80"
            ]
        );
    }

    #[test]
    fn enable_policy_logging() {
        let t = task(
            json!({"state": "enabled", "policy": "reject", "direction": "outgoing", "logging": "medium"}),
        );
        let p = t
            .plan(&[res(&STATE.replace("enabled|yes", "enabled|no"))])
            .unwrap();
        let cmds: Vec<&str> = p.actions.iter().map(|a| a.summary.as_str()).collect();
        assert_eq!(
            cmds,
            vec![
                "ufw default reject outgoing",
                "ufw logging medium",
                "enable ufw"
            ]
        );
        assert!(task(json!({"state": "enabled"}))
            .plan(&[res("ufw|missing\n")])
            .is_err());
    }

    #[test]
    fn probe_is_valid_sh() {
        assert_sh_syntax(PROBE);
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn ufw_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run("ufw --force reset >/dev/null", None);
        for v in [
            json!({"rule": "limit", "port": 22, "proto": "tcp"}),
            json!({"state": "enabled", "policy": "deny", "direction": "incoming"}),
            json!({"rule": "allow", "port": "9200:9400", "proto": "tcp", "from_ip": "10.0.0.0/8", "comment": "es"}),
            json!({"rule": "allow", "interface": "lo", "direction": "in"}),
            json!({"rule": "deny", "port": 25, "direction": "out"}),
            json!({"rule": "allow", "route": true, "interface_in": "eth0", "interface_out": "eth1"}),
            json!({"exclusive": true, "rules": [{"rule": "limit", "port": 22, "proto": "tcp"}, {"rule": "allow", "port": 443, "proto": "tcp"}]}),
            json!({"rule": "limit", "port": 22, "proto": "tcp", "delete": true}),
            json!({"state": "disabled"}),
        ] {
            let t = task(v.clone());
            let (first, second) = testhost::converge(&t);
            eprintln!("{v}: {:?}", first.diffs);
            assert!(first.changed(), "{v}");
            assert!(second.actions.is_empty(), "{v}: {:?}", second.diffs);
        }
    }

    fn task(v: Value) -> UfwTask {
        build(v.as_object().unwrap()).unwrap()
    }
}
