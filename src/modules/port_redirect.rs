//! `port_redirect`: redirect a local port to another (`iptables -t nat ... -j REDIRECT`), live
//! and persisted across reboots and `ufw reload`.
//!
//! Parameters: `from_port` (alias `port`), `to_port`, `proto` (tcp/udp, default tcp), `chain`
//! (`PREROUTING` for traffic from outside, `OUTPUT` for connections made on the host itself
//! (matched on `lo`); a list for both; default `PREROUTING`), `state` present/absent, `persist`
//! `auto` (default: `/etc/ufw/before.rules` when ufw is installed, else live only), `ufw`, `none`.
//!
//! Live rules are checked with `iptables -t nat -C` (read-only). Persistence is a marked block
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
    to: u16,
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
    let to = a
        .to_port
        .ok_or_else(|| ModuleError::Args("port_redirect: to_port is required".into()))?;
    Ok(RedirectTask {
        from: port(&from, "from_port")?,
        to: port(&to, "to_port")?,
        proto,
        chains,
        present,
        persist,
    })
}

impl RedirectTask {
    fn spec(&self, chain: &str) -> String {
        let lo = if chain == "OUTPUT" { "-o lo " } else { "" };
        format!(
            "{chain} {lo}-p {} -m {} --dport {} -j REDIRECT --to-ports {}",
            self.proto, self.proto, self.from, self.to
        )
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
            s.push_str(&format!(
                "if out=$(iptables -w -t nat -C {} 2>&1); then echo 'live|{c}|1'; elif printf '%s' \"$out\" | grep -qi 'permission denied\\|must be root'; then echo 'iptables|denied'; else echo 'live|{c}|0'; fi\n",
                self.spec(c)
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
        let mut plan = Plan::ok();
        let what = format!("redirect {} {}", self.proto, self.from);
        plan.result.insert(
            "rule".into(),
            json!(format!("{} -> {}", self.from, self.to)),
        );
        for c in &self.chains {
            let exists = live.stdout.lines().any(|l| l == format!("live|{c}|1"));
            if exists != self.present {
                plan.diffs.push(Diff::Field {
                    name: format!("{what} ({c})"),
                    before: if exists {
                        format!("to {}", self.to)
                    } else {
                        "absent".into()
                    },
                    after: if self.present {
                        format!("to {}", self.to)
                    } else {
                        "absent".into()
                    },
                });
                let script = if self.present {
                    format!(
                        "set -e\nPATH=$PATH:/usr/sbin:/sbin\niptables -w -t nat -A {}\n",
                        self.spec(c)
                    )
                } else {
                    format!("set -e\nPATH=$PATH:/usr/sbin:/sbin\nwhile iptables -w -t nat -C {s} 2>/dev/null; do iptables -w -t nat -D {s}; done\n", s = self.spec(c))
                };
                let verb = if self.present { "add" } else { "remove" };
                plan.actions.push(Action::new(
                    format!("{verb} nat {c} {} {} -> {}", self.proto, self.from, self.to),
                    script,
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

    #[test]
    fn adds_live_rule_and_persists_once() {
        let t = build(
            json!({"from_port": 80, "to_port": "8000"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t.plan(&[res("live|PREROUTING|0\n"), file(BEFORE)]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions[0].script.contains(
            "iptables -w -t nat -A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8000"
        ));
        let new = t.rewrite(BEFORE);
        assert!(new.find("*nat").unwrap() < new.find("*filter").unwrap());
        assert_eq!(t.rewrite(&new), new);
        let p = t.plan(&[res("live|PREROUTING|1\n"), file(&new)]).unwrap();
        assert!(p.actions.is_empty());
        // absent removes both
        let t = build(
            json!({"port": 80, "to_port": 8000, "state": "absent"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t.plan(&[res("live|PREROUTING|1\n"), file(&new)]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert_eq!(t.rewrite(&new), BEFORE);
    }

    #[test]
    fn no_ufw_means_live_only() {
        let t = build(
            json!({"from_port": 80, "to_port": 8000, "chain": ["PREROUTING", "OUTPUT"]})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t
            .plan(&[res("live|PREROUTING|1\nlive|OUTPUT|0\n"), res("absent\n")])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(p.actions[0].script.contains("OUTPUT -o lo -p tcp"));
        assert_sh_syntax(&t.probes()[0].script);
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
        for v in [
            json!({"from_port": 80, "to_port": 8000, "chain": ["PREROUTING", "OUTPUT"]}),
            json!({"from_port": 80, "to_port": 8000, "chain": ["PREROUTING", "OUTPUT"], "state": "absent"}),
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
