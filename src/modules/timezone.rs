//! `timezone` (community.general): the host's time zone (`name: Europe/Madrid`).
//!
//! One probe reads the zone (`timedatectl`'s, else where `/etc/localtime` points), whether the
//! zone exists in `/usr/share/zoneinfo` (Ansible's check: "given timezone ... is not
//! available") and Debian's `/etc/timezone`. One action sets it with `timedatectl
//! set-timezone`, as Ansible does on systemd hosts, or by pointing `/etc/localtime` at the zone
//! file where `timedatectl` can't (no systemd). Beyond Ansible: an existing `/etc/timezone` is
//! rewritten too, so programs that still read it (Java on Debian, e.g. Elasticsearch) agree;
//! a stale one alone counts as a change.
//!
//! `hwclock` is refused: these hosts keep the clock in UTC and containers have no RTC.

use super::args;
use super::{sh_quote, Action, Diff, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{Map, Value};

pub struct TimezoneModule;

const PARAMS: &[&str] = &["name", "hwclock", "rtc"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, alias = "rtc")]
    hwclock: Option<String>,
}

#[derive(Debug)]
struct TimezoneTask {
    name: String,
}

impl Module for TimezoneModule {
    fn name(&self) -> &'static str {
        "timezone"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, _ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("timezone", PARAMS, args)?;
        if a.hwclock.is_some() {
            return Err(ModuleError::Args("timezone: hwclock is not supported (the hardware clock is left as it is)".into()));
        }
        let name = a.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).ok_or_else(|| ModuleError::Args("timezone: name is required".into()))?;
        // A zone is a path below /usr/share/zoneinfo: no way out of it.
        if name.starts_with('/') || name.split('/').any(|p| p == ".." || p == ".") || name.contains(char::is_whitespace) {
            return Err(ModuleError::Args(format!("timezone: given timezone \"{name}\" is not available")));
        }
        Ok(Box::new(TimezoneTask { name }))
    }
}

const ZONEINFO: &str = "/usr/share/zoneinfo";

impl ModuleTask for TimezoneTask {
    fn probes(&self) -> Vec<Probe> {
        let s = format!(
            "z=$(timedatectl show -p Timezone --value 2>/dev/null) || z=\nif [ -z \"$z\" ]; then z=$(readlink /etc/localtime 2>/dev/null); z=${{z#*zoneinfo/}}; fi\n\
             echo \"current=$z\"\n\
             if [ -f {ZONEINFO}/{n} ]; then echo available=yes; else echo available=no; fi\n\
             if [ -f /etc/timezone ]; then read -r t < /etc/timezone || t=; echo \"etc_timezone=$t\"; fi\n",
            n = sh_quote(&self.name)
        );
        vec![Probe::new(s, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("timezone: missing probe".into()))?;
        let get = |k: &str| r.stdout.lines().find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('='))).map(str::trim);
        let mut plan = Plan::ok();
        if get("available") != Some("yes") {
            plan.failed = Some(format!("given timezone \"{}\" is not available", self.name));
            return Ok(plan);
        }
        let current = get("current").unwrap_or("");
        let etc_timezone = get("etc_timezone");
        let stale_etc = etc_timezone.is_some_and(|t| t != self.name);
        if current == self.name && !stale_etc {
            return Ok(plan);
        }
        let n = sh_quote(&self.name);
        let mut script = String::new();
        if current != self.name {
            script.push_str(&format!("timedatectl set-timezone {n} 2>/dev/null || ln -sfn {ZONEINFO}/{n} /etc/localtime\n"));
        }
        if etc_timezone.is_some() {
            script.push_str(&format!("echo {n} > /etc/timezone\n"));
        }
        let before = if current == self.name { etc_timezone.unwrap_or(current) } else { current };
        plan.diffs.push(Diff::Field { name: "timezone".into(), before: before.to_string(), after: self.name.clone() });
        plan.actions.push(Action::new(format!("set the time zone to {}", self.name), script, Scope::Host));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::{assert_sh_syntax, ok};

    fn task(name: &str) -> TimezoneTask {
        TimezoneTask { name: name.into() }
    }

    #[test]
    fn changes_only_a_different_zone() {
        let t = task("America/Argentina/Buenos_Aires");
        assert_sh_syntax(&t.probes()[0].script);
        let same = t.plan(&[ok("current=America/Argentina/Buenos_Aires\navailable=yes\netc_timezone=America/Argentina/Buenos_Aires\n")]).unwrap();
        assert!(same.actions.is_empty() && same.failed.is_none());
        let other = t.plan(&[ok("current=Etc/UTC\navailable=yes\netc_timezone=Etc/UTC\n")]).unwrap();
        assert_eq!(other.actions.len(), 1);
        assert_sh_syntax(&other.actions[0].script);
        assert!(other.actions[0].script.contains("timedatectl set-timezone America/Argentina/Buenos_Aires"), "{}", other.actions[0].script);
        assert!(other.actions[0].script.contains("> /etc/timezone"));
        assert_eq!(other.diffs, [Diff::Field { name: "timezone".into(), before: "Etc/UTC".into(), after: "America/Argentina/Buenos_Aires".into() }]);
        // No /etc/timezone: not created.
        let bare = t.plan(&[ok("current=Etc/UTC\navailable=yes\n")]).unwrap();
        assert!(!bare.actions[0].script.contains("/etc/timezone"));
        // Only /etc/timezone is stale: rewritten alone.
        let stale = t.plan(&[ok("current=America/Argentina/Buenos_Aires\navailable=yes\netc_timezone=Etc/UTC\n")]).unwrap();
        assert_eq!(stale.actions.len(), 1);
        assert!(!stale.actions[0].script.contains("timedatectl"));
    }

    #[test]
    fn unknown_zones_fail_as_in_ansible() {
        let p = task("Mars/Olympus").plan(&[ok("current=Etc/UTC\navailable=no\n")]).unwrap();
        assert_eq!(p.failed.as_deref(), Some("given timezone \"Mars/Olympus\" is not available"));
        let templar = crate::template::Templar::new();
        let vars = crate::template::Vars::new();
        let ctx = PrepareContext { templar: &templar, vars: &vars, host: "h", role_path: None, playbook_dir: std::path::Path::new("."), run_as: "root" };
        let args = |v: Value| v.as_object().unwrap().clone();
        assert!(TimezoneModule.prepare(&args(serde_json::json!({"name": "../../etc/passwd"})), &ctx).is_err());
        assert!(TimezoneModule.prepare(&args(serde_json::json!({"name": "UTC", "hwclock": "UTC"})), &ctx).err().unwrap().to_string().contains("hwclock"));
        assert!(TimezoneModule.prepare(&args(serde_json::json!({})), &ctx).err().unwrap().to_string().contains("name is required"));
    }
}
