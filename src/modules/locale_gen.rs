//! `locale_gen` (community.general): locales compiled on the host (`name: es_AR.UTF-8`, or a
//! list), Debian's way: enabled in `/etc/locale.gen`, then `locale-gen`.
//!
//! One probe reads which mechanism the host has, `locale -a`, and the lines naming the wanted
//! locales in `/usr/share/i18n/SUPPORTED` and `/etc/locale.gen`. As in Ansible: a locale is
//! present when `locale -a` lists it (`.utf8` read as `.UTF-8`), a name neither file nor
//! `locale -a` knows fails the task ("not available on your system"), and a host without
//! `/etc/locale.gen` fails asking whether the `locales` package is installed. One action
//! uncomments (or, for `absent`, comments out) the names' lines and runs `locale-gen` once.
//!
//! Differences kept: a supported locale missing from `/etc/locale.gen` is added to it (Ansible
//! edits only the lines already there, so it would never be generated); `state: absent` removes
//! every listed locale that is present (Ansible does nothing unless all of them are); Ubuntu's
//! legacy `/var/lib/locales/supported.d` is refused.

use super::args;
use super::{sh_quote, Action, Diff, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct LocaleGenModule;

const PARAMS: &[&str] = &["name", "state"];

const LOCALE_GEN: &str = "/etc/locale.gen";
const SUPPORTED: &str = "/usr/share/i18n/SUPPORTED";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(deserialize_with = "args::list")]
    name: Vec<String>,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug)]
struct LocaleGenTask {
    names: Vec<String>,
    present: bool,
}

impl Module for LocaleGenModule {
    fn name(&self) -> &'static str {
        "locale_gen"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, _ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("locale_gen", PARAMS, args)?;
        let present = args::present_state("locale_gen", a.state.as_deref())?;
        if a.name.is_empty() {
            return Err(ModuleError::Args("locale_gen: name is required".into()));
        }
        for n in &a.name {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c)) {
                return Err(ModuleError::Args(format!("locale_gen: '{n}' is not a locale name")));
            }
        }
        Ok(Box::new(LocaleGenTask { names: a.name, present }))
    }
}

/// `locale -a` prints `es_AR.utf8`; Ansible compares with the charset spelled as in
/// SUPPORTED (its LOCALE_NORMALIZATION table).
fn fix_case(name: &str) -> String {
    const NORMALIZATION: &[(&str, &str)] = &[
        (".utf8", ".UTF-8"),
        (".eucjp", ".EUC-JP"),
        (".iso885915", ".ISO-8859-15"),
        (".cp1251", ".CP1251"),
        (".koi8r", ".KOI8-R"),
        (".armscii8", ".ARMSCII-8"),
        (".euckr", ".EUC-KR"),
        (".gbk", ".GBK"),
        (".gb18030", ".GB18030"),
        (".euctw", ".EUC-TW"),
    ];
    NORMALIZATION.iter().fold(name.to_string(), |n, (from, to)| n.replace(from, to))
}

/// `name` as a POSIX extended regular expression matching itself.
fn ere_escape(name: &str) -> String {
    name.chars().map(|c| if c == '.' { "\\.".to_string() } else { c.to_string() }).collect()
}

/// What the probe found.
#[derive(Debug, Default)]
struct Found {
    mechanism: String,
    installed: Vec<String>,
    /// `name charset` lines of SUPPORTED, by name.
    supported: Vec<(String, String)>,
    /// Names with a line (commented or not) in /etc/locale.gen.
    in_locale_gen: Vec<String>,
}

fn parse(out: &str) -> Found {
    let mut f = Found::default();
    let mut section = "";
    for line in out.lines() {
        if let Some(s) = line.strip_prefix("--") {
            section = if s == "installed" || s == "supported" || s == "gen" { s } else { "" };
            if let Some(m) = s.strip_prefix("mechanism=") {
                f.mechanism = m.to_string();
            }
            continue;
        }
        let words: Vec<&str> = line.trim().trim_start_matches('#').split_whitespace().collect();
        match (section, &words[..]) {
            ("installed", [name]) => f.installed.push(fix_case(name)),
            ("supported", [name, charset]) => f.supported.push((name.to_string(), charset.to_string())),
            ("gen", [name, _]) => f.in_locale_gen.push(name.to_string()),
            _ => {}
        }
    }
    f
}

impl ModuleTask for LocaleGenTask {
    fn probes(&self) -> Vec<Probe> {
        let names = self.names.join(" ");
        let pick = format!(
            "awk -v names={} 'BEGIN {{ n = split(names, w, \" \"); for (i = 1; i <= n; i++) want[w[i]] = 1 }} {{ l = $0; sub(/^[ \\t]*#?[ \\t]*/, \"\", l); split(l, f, \" \"); if (f[1] in want) print l }}'",
            sh_quote(&names)
        );
        let s = format!(
            "if [ -e {LOCALE_GEN} ]; then echo --mechanism=glibc; elif [ -d /var/lib/locales/supported.d ]; then echo --mechanism=ubuntu_legacy; else echo --mechanism=none; fi\n\
             echo --installed; locale -a 2>/dev/null\n\
             echo --supported; [ -r {SUPPORTED} ] && {pick} {SUPPORTED}\n\
             echo --gen; [ -r {LOCALE_GEN} ] && {pick} {LOCALE_GEN}\n\
             true\n"
        );
        vec![Probe::new(s, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("locale_gen: missing probe".into()))?;
        let f = parse(&r.stdout);
        let mut plan = Plan::ok();
        plan.result.insert("name".into(), json!(self.names));
        match f.mechanism.as_str() {
            "glibc" => {}
            "ubuntu_legacy" => {
                plan.failed = Some("locale_gen: Ubuntu's legacy /var/lib/locales/supported.d is not supported; /etc/locale.gen is".into());
                return Ok(plan);
            }
            _ => {
                plan.failed = Some("/var/lib/locales/supported.d and /etc/locale.gen are missing. Is the package \"locales\" installed?".into());
                return Ok(plan);
            }
        }
        let installed = |n: &str| f.installed.iter().any(|i| *i == fix_case(n));
        let missing: Vec<&str> = self.names.iter().map(String::as_str).filter(|n| !installed(n) && !f.supported.iter().any(|(s, _)| s == n) && !f.in_locale_gen.iter().any(|g| g == n)).collect();
        if !missing.is_empty() {
            plan.failed = Some(format!("The following locales you have entered are not available on your system: {}", missing.join(", ")));
            return Ok(plan);
        }
        let to_change: Vec<&String> = self.names.iter().filter(|n| installed(n) != self.present).collect();
        if to_change.is_empty() {
            return Ok(plan);
        }
        let mut script = String::new();
        for n in &to_change {
            let esc = ere_escape(n);
            if self.present {
                if f.in_locale_gen.iter().any(|g| g == *n) {
                    script.push_str(&format!("sed -i -E {} {LOCALE_GEN}\n", sh_quote(&format!("s/^#?[[:space:]]*{esc} (.+)$/{n} \\1/"))));
                } else {
                    let charset = f.supported.iter().find(|(s, _)| s == *n).map(|(_, c)| c.as_str()).unwrap_or("UTF-8");
                    script.push_str(&format!("echo {} >> {LOCALE_GEN}\n", sh_quote(&format!("{n} {charset}"))));
                }
            } else {
                script.push_str(&format!("sed -i -E {} {LOCALE_GEN}\n", sh_quote(&format!("s/^{esc} (.+)$/# {n} \\1/"))));
            }
        }
        script.push_str("locale-gen\n");
        let (before, after) = if self.present { ("absent", "present") } else { ("present", "absent") };
        for n in &to_change {
            plan.diffs.push(Diff::Field { name: format!("locale {n}"), before: before.into(), after: after.into() });
        }
        let list = to_change.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ");
        let verb = if self.present { "generate" } else { "remove" };
        plan.actions.push(Action::new(format!("{verb} locales {list}"), script, Scope::Host));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::{assert_sh_syntax, ok, sh};

    fn task(names: &[&str], present: bool) -> LocaleGenTask {
        LocaleGenTask { names: names.iter().map(|n| n.to_string()).collect(), present }
    }

    const DEBIAN: &str = "--mechanism=glibc\n--installed\nC\nC.utf8\nPOSIX\nen_US.utf8\n--supported\nes_AR.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n--gen\nes_AR.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n";

    #[test]
    fn generates_what_locale_a_lacks() {
        assert_sh_syntax(&task(&["es_AR.UTF-8"], true).probes()[0].script);
        let have = task(&["en_US.UTF-8"], true).plan(&[ok(DEBIAN)]).unwrap();
        assert!(have.actions.is_empty() && have.failed.is_none(), "{have:?}");
        let p = task(&["es_AR.UTF-8", "en_US.UTF-8"], true).plan(&[ok(DEBIAN)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        let script = &p.actions[0].script;
        assert_sh_syntax(script);
        assert!(script.contains("s/^#?[[:space:]]*es_AR\\.UTF-8 (.+)$/es_AR.UTF-8 \\1/") && !script.contains("en_US") && script.ends_with("locale-gen\n"), "{script}");
        assert_eq!(p.diffs, [Diff::Field { name: "locale es_AR.UTF-8".into(), before: "absent".into(), after: "present".into() }]);
        // Supported but not listed in /etc/locale.gen: added to it.
        let p = task(&["es_AR.UTF-8"], true).plan(&[ok("--mechanism=glibc\n--installed\nC\n--supported\nes_AR.UTF-8 UTF-8\n--gen\n")]).unwrap();
        assert!(p.actions[0].script.contains("echo 'es_AR.UTF-8 UTF-8' >> /etc/locale.gen"), "{}", p.actions[0].script);
        // absent: the installed ones are commented out
        let p = task(&["en_US.UTF-8", "es_AR.UTF-8"], false).plan(&[ok(DEBIAN)]).unwrap();
        assert!(p.actions[0].script.contains("s/^en_US\\.UTF-8 (.+)$/# en_US.UTF-8 \\1/") && !p.actions[0].script.contains("es_AR"));
    }

    #[test]
    fn the_sed_edits_do_what_they_say() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("locale.gen");
        std::fs::write(&f, "# es_AR.UTF-8 UTF-8\n# es_AR ISO-8859-1\n#en_US.UTF-8 UTF-8\n").unwrap();
        let p = task(&["es_AR.UTF-8", "en_US.UTF-8"], true).plan(&[ok("--mechanism=glibc\n--installed\n--supported\n--gen\nes_AR.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n")]).unwrap();
        let script = p.actions[0].script.replace(LOCALE_GEN, &f.display().to_string()).replace("locale-gen\n", "");
        assert_eq!(sh(&script, None).0, 0);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "es_AR.UTF-8 UTF-8\n# es_AR ISO-8859-1\nen_US.UTF-8 UTF-8\n");
        let p = task(&["es_AR.UTF-8"], false).plan(&[ok("--mechanism=glibc\n--installed\nes_AR.utf8\n--supported\n--gen\nes_AR.UTF-8 UTF-8\n")]).unwrap();
        let script = p.actions[0].script.replace(LOCALE_GEN, &f.display().to_string()).replace("locale-gen\n", "");
        assert_eq!(sh(&script, None).0, 0);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "# es_AR.UTF-8 UTF-8\n# es_AR ISO-8859-1\nen_US.UTF-8 UTF-8\n");
    }

    #[test]
    fn fails_as_ansible_does() {
        let p = task(&["xx_YY.UTF-8"], true).plan(&[ok(DEBIAN)]).unwrap();
        assert_eq!(p.failed.as_deref(), Some("The following locales you have entered are not available on your system: xx_YY.UTF-8"));
        let p = task(&["es_AR.UTF-8"], true).plan(&[ok("--mechanism=none\n--installed\nC\n--supported\n--gen\n")]).unwrap();
        assert!(p.failed.unwrap().contains("Is the package \"locales\" installed?"));
        // C.UTF-8 is in no file but locale -a knows it
        let p = task(&["C.UTF-8"], true).plan(&[ok(DEBIAN)]).unwrap();
        assert!(p.failed.is_none() && p.actions.is_empty());
        let templar = crate::template::Templar::new();
        let vars = crate::template::Vars::new();
        let ctx = PrepareContext { templar: &templar, vars: &vars, host: "h", role_path: None, playbook_dir: std::path::Path::new("."), run_as: "root" };
        let e = LocaleGenModule.prepare(json!({"name": "es_AR.UTF-8; rm -rf /"}).as_object().unwrap(), &ctx).err().unwrap().to_string();
        assert!(e.contains("not a locale name"), "{e}");
    }
}
