//! `port_redirect`: redirect a local port to another (`iptables -t nat ... -j REDIRECT`), live
//! and persisted across reboots and `ufw reload`.
//!
//! Parameters: `from_port` (alias `port`), `to_port`, `proto` (tcp/udp, default tcp), `chain`
//! (`PREROUTING` for traffic from outside, `OUTPUT` for connections made on the host itself
//! (matched on `lo`); a list for both; default `PREROUTING`), `state` present/absent, `persist`
//! `auto` (default: `/etc/ufw/before.rules` when ufw is installed, else live only), `ufw`, `none`.
//!
//! A redirect is known by its protocol, port and chain: the live rules are read with
//! `iptables -t nat -S CHAIN` (read-only), so a redirect of the port elsewhere (an earlier
//! `to_port`) is replaced, and `state: absent` needs no `to_port`. Persistence is a marked block
//! in ufw's `before.rules` (`# BEGIN provision port_redirect tcp 80` ... `# END ...`, placed
//! before the `*filter` section) holding its own `*nat ... COMMIT`. ufw loads it with
//! `iptables-restore -n`, so a `ufw reload` re-appends the rule (a harmless duplicate that the
//! live check still accepts); removing the redirect deletes every live copy.

use super::args::{self, opt_list, opt_string};
use super::common::{content_diff, file_probe, parse_file_state, write_file_action};
use super::{Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct PortRedirectModule;

const PARAMS: &[&str] = &[
    "from_port",
    "port",
    "to_port",
    "proto",
    "protocol",
    "chain",
    "state",
    "persist",
];
const BEFORE_RULES: &str = "/etc/ufw/before.rules";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, alias = "port", deserialize_with = "opt_string")]
    from_port: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to_port: Option<String>,
    #[serde(default, alias = "protocol")]
    proto: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    chain: Option<Vec<String>>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    persist: Option<String>,
}

#[derive(Debug)]
struct RedirectTask {
    from: u16,
    /// Required when present; with `state: absent` every redirect of the port goes.
    to: Option<u16>,
    proto: String,
    chains: Vec<String>,
    present: bool,
    persist: String,
}

module_impl!(PortRedirectModule, "port_redirect");

fn build(args: &Map<String, Value>) -> Result<RedirectTask, ModuleError> {
    let a: Args = args::parse("port_redirect", PARAMS, args)?;
    let port = |s: &str, what: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                ModuleError::Args(format!(
                    "port_redirect: {what} must be a port number, got '{s}'"
                ))
            })
    };
    let proto = a.proto.unwrap_or_else(|| "tcp".into()).to_lowercase();
    if proto != "tcp" && proto != "udp" {
        return Err(ModuleError::Args(format!(
            "port_redirect: proto must be tcp or udp, got '{proto}'"
        )));
    }
    let mut chains = Vec::new();
    for c in a.chain.unwrap_or_else(|| vec!["PREROUTING".into()]) {
        let c = c.to_uppercase();
        if c != "PREROUTING" && c != "OUTPUT" {
            return Err(ModuleError::Args(format!(
                "port_redirect: chain must be PREROUTING or OUTPUT, got '{c}'"
            )));
        }
        if !chains.contains(&c) {
            chains.push(c);
        }
    }
    let present = args::present_state("port_redirect", a.state.as_deref())?;
    let persist = a.persist.unwrap_or_else(|| "auto".into());
    if !["auto", "ufw", "none"].contains(&persist.as_str()) {
        return Err(ModuleError::Args(format!(
            "port_redirect: persist must be auto, ufw or none, got '{persist}'"
        )));
    }
    let from = a
        .from_port
        .ok_or_else(|| ModuleError::Args("port_redirect: from_port is required".into()))?;
    let to = match a.to_port {
        Some(t) => Some(port(&t, "to_port")?),
        None if present => return Err(ModuleError::Args("port_redirect: to_port is required".into())),
        None => None,
    };
    Ok(RedirectTask {
        from: port(&from, "from_port")?,
        to,
        proto,
        chains,
        present,
        persist,
    })
}

impl RedirectTask {
    /// The rule as `iptables -S` prints it, without `-A CHAIN ` and the target port.
    fn matcher(&self, chain: &str) -> String {
        let lo = if chain == "OUTPUT" { "-o lo " } else { "" };
        format!("{lo}-p {} -m {} --dport {} -j REDIRECT --to-ports ", self.proto, self.proto, self.from)
    }

    fn spec_to(&self, chain: &str, to: &str) -> String {
        format!("{chain} {}{to}", self.matcher(chain))
    }

    /// The redirect to `to_port` (only asked for when present).
    fn spec(&self, chain: &str) -> String {
        self.spec_to(chain, &self.to.map(|t| t.to_string()).unwrap_or_default())
    }

    fn begin(&self) -> String {
        format!(
            "# BEGIN provision port_redirect {} {}",
            self.proto, self.from
        )
    }
    fn end(&self) -> String {
        format!("# END provision port_redirect {} {}", self.proto, self.from)
    }

    fn block(&self) -> String {
        let mut s = format!("{}\n*nat\n", self.begin());
        for c in &self.chains {
            s.push_str(&format!(":{c} ACCEPT [0:0]\n"));
        }
        for c in &self.chains {
            s.push_str(&format!("-A {}\n", self.spec(c)));
        }
        s.push_str(&format!("COMMIT\n{}\n", self.end()));
        s
    }

    /// before.rules with our block replaced/inserted/removed.
    fn rewrite(&self, text: &str) -> String {
        let mut out = String::new();
        let mut skipping = false;
        for line in text.split_inclusive('\n') {
            let t = line.trim_end();
            if t == self.begin() {
                skipping = true;
                continue;
            }
            if skipping {
                if t == self.end() {
                    skipping = false;
                }
                continue;
            }
            out.push_str(line);
        }
        if !self.present {
            return out;
        }
        // Before the first table (`*filter`) and the comment lines directly above it.
        let lines: Vec<&str> = out.split_inclusive('\n').collect();
        let Some(mut at) = lines.iter().position(|l| l.starts_with('*')) else {
            let mut s = out.clone();
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(&self.block());
            return s;
        };
        while at > 0
            && lines[at - 1].starts_with('#')
            && !lines[at - 1].starts_with("# END provision")
        {
            at -= 1;
        }
        let mut s: String = lines[..at].concat();
        s.push_str(&self.block());
        s.push_str(&lines[at..].concat());
        s
    }
}

impl ModuleTask for RedirectTask {
    fn probes(&self) -> Vec<Probe> {
        let mut s = String::from("PATH=$PATH:/usr/sbin:/sbin\ncommand -v iptables >/dev/null 2>&1 || { echo 'iptables|missing'; exit 0; }\n");
        for c in &self.chains {
            // `-S CHAIN` prints `-P CHAIN ACCEPT` and one `-A CHAIN ...` line per rule.
            s.push_str(&format!(
                "if out=$(iptables -w -t nat -S {c} 2>&1); then printf '%s\\n' \"$out\" | sed -n 's/^-A /rule|/p'; elif printf '%s' \"$out\" | grep -qi 'permission denied\\|must be root'; then echo 'iptables|denied'; else echo \"iptables|error|$out\"; fi\n"
            ));
        }
        let mut probes = vec![Probe::new(s, Scope::Host)];
        if self.persist != "none" {
            probes.push(file_probe(BEFORE_RULES, true));
        }
        probes
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let live = probes
            .first()
            .ok_or_else(|| ModuleError::Probe("port_redirect: no probe output".into()))?;
        if live.rc != 0 {
            return Err(ModuleError::Failed(format!(
                "port_redirect: cannot probe iptables: {}",
                live.stderr.trim()
            )));
        }
        if live.stdout.contains("iptables|missing") {
            return Err(ModuleError::Failed(
                "port_redirect: iptables is not installed on the host".into(),
            ));
        }
        if live.stdout.contains("iptables|denied") {
            return Err(ModuleError::Failed(
                "port_redirect: iptables needs root (use become)".into(),
            ));
        }
        if let Some(e) = live.stdout.lines().find_map(|l| l.strip_prefix("iptables|error|")) {
            return Err(ModuleError::Failed(format!("port_redirect: iptables -t nat -S: {e}")));
        }
        let mut plan = Plan::ok();
        let what = format!("redirect {} {}", self.proto, self.from);
        if let Some(to) = self.to {
            plan.result.insert("rule".into(), json!(format!("{} -> {to}", self.from)));
        }
        let want = self.to.filter(|_| self.present).map(|t| t.to_string());
        for c in &self.chains {
            // Where this port is redirected now (`ufw reload` may have doubled a rule).
            let prefix = format!("rule|{c} {}", self.matcher(c));
            let mut live_to: Vec<&str> = Vec::new();
            for t in live.stdout.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::trim) {
                if !live_to.contains(&t) {
                    live_to.push(t);
                }
            }
            let stale: Vec<&str> = live_to.iter().copied().filter(|t| Some(*t) != want.as_deref()).collect();
            let missing = want.as_deref().is_some_and(|w| !live_to.contains(&w));
            if stale.is_empty() && !missing {
                continue;
            }
            let show = |tos: &[&str]| if tos.is_empty() { "absent".to_string() } else { tos.iter().map(|t| format!("to {t}")).collect::<Vec<_>>().join(", ") };
            plan.diffs.push(Diff::Field {
                name: format!("{what} ({c})"),
                before: show(&live_to),
                after: show(&want.as_deref().into_iter().collect::<Vec<_>>()),
            });
            for t in &stale {
                plan.actions.push(Action::new(
                    format!("remove nat {c} {} {} -> {t}", self.proto, self.from),
                    format!("set -e\nPATH=$PATH:/usr/sbin:/sbin\nwhile iptables -w -t nat -C {s} 2>/dev/null; do iptables -w -t nat -D {s}; done\n", s = self.spec_to(c, t)),
                    Scope::Host,
                ));
            }
            if let Some(w) = want.as_deref().filter(|_| missing) {
                plan.actions.push(Action::new(
                    format!("add nat {c} {} {} -> {w}", self.proto, self.from),
                    format!("set -e\nPATH=$PATH:/usr/sbin:/sbin\niptables -w -t nat -A {}\n", self.spec(c)),
                    Scope::Host,
                ));
            }
        }
        if let Some(p) = probes.get(1) {
            let st = parse_file_state(p)?;
            let use_ufw = st.exists() || self.persist == "ufw";
            if self.persist == "ufw" && !st.exists() {
                return Err(ModuleError::Failed(format!(
                    "port_redirect: {BEFORE_RULES} does not exist (is ufw installed?)"
                )));
            }
            if use_ufw {
                let text = st.text().ok_or_else(|| {
                    ModuleError::Failed(format!("port_redirect: cannot read {BEFORE_RULES}"))
                })?;
                let new = self.rewrite(&text);
                if new != text {
                    plan.diffs
                        .push(content_diff(BEFORE_RULES, &st, new.as_bytes()));
                    plan.actions.push(write_file_action(
                        BEFORE_RULES,
                        new.as_bytes(),
                        None,
                        None,
                        None,
                        Some(st.mode),
                    ));
                }
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, file_with_mode, ok as res};
    use super::*;

    const BEFORE: &str = "#\n# rules.before\n#\n\n# Don't delete these required lines, otherwise there will be errors\n*filter\n:ufw-before-input - [0:0]\nCOMMIT\n";

    fn file(text: &str) -> ProbeResult {
        file_with_mode("640", text)
    }

    /// `iptables -t nat -S` of each chain, as the probe prints it.
    fn live(rules: &[&str]) -> ProbeResult {
        res(&rules.iter().map(|r| format!("rule|{r}\n")).collect::<String>())
    }

    fn task(v: Value) -> RedirectTask {
        build(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn adds_live_rule_and_persists_once() {
        let t = task(json!({"from_port": 80, "to_port": "8000"}));
        let p = t.plan(&[live(&[]), file(BEFORE)]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions[0].script.contains(
            "iptables -w -t nat -A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8000"
        ));
        let new = t.rewrite(BEFORE);
        assert!(new.find("*nat").unwrap() < new.find("*filter").unwrap());
        assert_eq!(t.rewrite(&new), new);
        // converged, also with the copy a `ufw reload` adds, and beside other rules
        let rule = "PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8000";
        let other = "PREROUTING -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 8443";
        let p = t.plan(&[live(&[other, rule, rule]), file(&new)]).unwrap();
        assert!(p.actions.is_empty() && p.diffs.is_empty(), "{:?}", p.diffs);
        // absent removes the live rule and the block, and needs no to_port
        let t = task(json!({"port": 80, "state": "absent"}));
        let p = t.plan(&[live(&[other, rule]), file(&new)]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions[0].script.contains("-D PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8000"));
        assert!(!p.actions[0].script.contains("443"));
        assert_eq!(t.rewrite(&new), BEFORE);
        assert!(build(json!({"port": 80}).as_object().unwrap()).is_err(), "present needs to_port");
    }

    #[test]
    fn a_new_target_port_replaces_the_old_redirect() {
        let t = task(json!({"from_port": 80, "to_port": 8081, "chain": ["PREROUTING", "OUTPUT"]}));
        let old_pre = "PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080";
        let old_out = "OUTPUT -o lo -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080";
        let p = t.plan(&[live(&[old_pre, old_pre, old_out]), res("absent\n")]).unwrap();
        let field = |c: &str| p.diffs.iter().find_map(|d| match d {
            Diff::Field { name, before, after } if name.ends_with(&format!("({c})")) => Some((before.clone(), after.clone())),
            _ => None,
        });
        assert_eq!(field("PREROUTING"), Some(("to 8080".into(), "to 8081".into())));
        assert_eq!(field("OUTPUT"), Some(("to 8080".into(), "to 8081".into())));
        let names: Vec<&str> = p.actions.iter().map(|a| a.summary.as_str()).collect();
        assert_eq!(names, ["remove nat PREROUTING tcp 80 -> 8080", "add nat PREROUTING tcp 80 -> 8081", "remove nat OUTPUT tcp 80 -> 8080", "add nat OUTPUT tcp 80 -> 8081"]);
        assert!(p.actions[0].script.contains("while iptables -w -t nat -C PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080"));
        for a in &p.actions {
            assert_sh_syntax(&a.script);
        }
    }

    #[test]
    fn no_ufw_means_live_only() {
        let t = task(json!({"from_port": 80, "to_port": 8000, "chain": ["PREROUTING", "OUTPUT"]}));
        let p = t.plan(&[live(&["PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8000"]), res("absent\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(p.actions[0].script.contains("OUTPUT -o lo -p tcp"));
        assert_sh_syntax(&t.probes()[0].script);
        let e = t.plan(&[res("iptables|denied\n"), res("absent\n")]).unwrap_err();
        assert!(e.to_string().contains("needs root"), "{e}");
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn port_redirect_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let nat = || String::from_utf8_lossy(&testhost::run("iptables -t nat -S", None).stdout).into_owned();
        for v in [
            json!({"from_port": 80, "to_port": 8000, "chain": ["PREROUTING", "OUTPUT"]}),
            // a new target replaces the old one, live and in before.rules
            json!({"from_port": 80, "to_port": 8001, "chain": ["PREROUTING", "OUTPUT"]}),
            json!({"from_port": 80, "chain": ["PREROUTING", "OUTPUT"], "state": "absent"}),
            json!({"from_port": 80, "to_port": 8000}),
        ] {
            let t = build(v.as_object().unwrap()).unwrap();
            let (first, second) = testhost::converge(&t);
            eprintln!(
                "{v}: {:?}",
                first
                    .diffs
                    .iter()
                    .filter(|d| matches!(d, Diff::Field { .. }))
                    .collect::<Vec<_>>()
            );
            assert!(first.changed(), "{v}");
            assert!(second.actions.is_empty(), "{v}: {:?}", second.diffs);
            let rules = nat();
            let redirects: Vec<&str> = rules.lines().filter(|l| l.contains("--dport 80 ")).collect();
            match v.get("to_port") {
                Some(to) => assert!(!redirects.is_empty() && redirects.iter().all(|l| l.ends_with(&format!("--to-ports {to}"))), "{v}: {rules}"),
                None => assert!(redirects.is_empty(), "{v}: {rules}"),
            }
        }
        // Survives a ufw reload (rule re-applied from before.rules).
        testhost::run(
            "ufw --force enable >/dev/null; iptables -t nat -F PREROUTING; ufw reload >/dev/null",
            None,
        );
        let t = build(
            json!({"from_port": 80, "to_port": 8000})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert!(testhost::plan(&t).actions.is_empty());
    }
}
