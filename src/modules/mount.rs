//! `mount` (`ansible.posix.mount`): a mount point's line in fstab and its live mount, on Linux
//! hosts. States as Ansible's: `present` writes the fstab line only; `mounted` writes it and
//! mounts (creating the mount point's missing folders, taken away again when the mount fails,
//! as is the fstab line), remounting when the line changed while it was mounted (`mount -o
//! remount`, else unmount and mount); `unmounted` unmounts, fstab untouched; `absent` removes
//! the line and, when there was one, unmounts and removes the mount point folder (which fails
//! when it is not empty, as Ansible's `rmdir`); `absent_from_fstab` only removes the line;
//! `remounted` always remounts (with `opts` for this remount only); `ephemeral` mounts
//! `src` with `fstype`/`opts` without fstab, always changed (a remount when it is mounted
//! already), failing when something else is mounted there.
//!
//! fstab is edited as Ansible does it, byte for byte: a line is found by its mount point (for
//! swap, `none`, also by its source), its fields compared escaped (space `\040`, `&` `\046`,
//! backslash `\134`); a changed line is written anew (losing a trailing comment), every other
//! line, comment and blank is kept; lines with 4 or 5 fields count (and get rewritten with 6),
//! but removal takes only 6-field lines, as in Ansible. `boot: false` adds `noauto` to `opts`.
//! Whether something is mounted comes from the path's device and inode against its parent's
//! and from `/proc/self/mountinfo` (bind mounts), as Ansible decides.
//!
//! Differences: fstab is written atomically (temp file and rename, keeping owner and mode) and
//! a missing fstab (and its folder) is created only when a line is written (Ansible creates an
//! empty one on any state but `ephemeral`, in check mode too); mountinfo's escaped paths
//! (`\040`) are read unescaped; `--diff` shows the fstab change and the mount state (Ansible's
//! module shows none). Refused: a relative `path` outside `present`/`absent_from_fstab` (swap's
//! `none`), a symlinked or non-text fstab, empty fields or fields with a tab or line break
//! (they would break the fstab line), and hosts without `/proc/self/mountinfo` (Solaris'
//! vfstab and the BSDs). With `opts_no_log` the options are masked in results, failure
//! messages and diffs.

use super::args::{self, opt_boolish, opt_string};
use super::common::{self, FileKind};
use super::lineinfile::{backup_action, record_backup};
use super::{sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope, REDACTED};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub struct MountModule;

const PARAMS: &[&str] = &["path", "name", "src", "fstype", "opts", "opts_no_log", "dump", "passno", "state", "fstab", "boot", "backup"];

const DEFAULT_FSTAB: &str = "/etc/fstab";

/// What Ansible puts in a result in place of a value given with `no_log`.
const NO_LOG_VALUE: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, alias = "name")]
    path: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    src: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    fstype: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    opts: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    opts_no_log: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    dump: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    passno: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    fstab: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    boot: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Mounted,
    Unmounted,
    Present,
    Absent,
    AbsentFromFstab,
    Remounted,
    Ephemeral,
}

const STATES: &str = "absent, absent_from_fstab, mounted, present, unmounted, remounted, ephemeral";

impl State {
    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "mounted" => State::Mounted,
            "unmounted" => State::Unmounted,
            "present" => State::Present,
            "absent" => State::Absent,
            "absent_from_fstab" => State::AbsentFromFstab,
            "remounted" => State::Remounted,
            "ephemeral" => State::Ephemeral,
            _ => return None,
        })
    }
    /// Reads (and maybe writes) fstab.
    fn uses_fstab(self) -> bool {
        matches!(self, State::Mounted | State::Present | State::Absent | State::AbsentFromFstab)
    }
    /// Looks at what is mounted.
    fn uses_live(self) -> bool {
        matches!(self, State::Mounted | State::Unmounted | State::Absent | State::Ephemeral)
    }
}

#[derive(Debug)]
struct MountTask {
    state: State,
    name: String,
    src: Option<String>,
    fstype: Option<String>,
    /// With `noauto` added for `boot: false`.
    opts: String,
    /// The options as given, masked everywhere with `opts_no_log`.
    secret_opts: Option<String>,
    dump: String,
    passno: String,
    fstab: String,
    boot: bool,
    backup: bool,
    warnings: Vec<String>,
}

module_impl!(MountModule, "mount");

fn build(args: &Map<String, Value>) -> Result<MountTask, ModuleError> {
    let a: Args = args::parse("mount", PARAMS, args)?;
    let err = |m: String| ModuleError::Args(format!("mount: {m}"));
    let mut missing = Vec::new();
    if a.path.is_none() {
        missing.push("path");
    }
    if a.state.is_none() {
        missing.push("state");
    }
    if !missing.is_empty() {
        return Err(err(format!("missing required arguments: {}", missing.join(", "))));
    }
    let (name, state_s) = (a.path.unwrap_or_default(), a.state.unwrap_or_default());
    let state = State::parse(&state_s).ok_or_else(|| err(format!("value of state must be one of: {STATES}, got: {state_s}")))?;
    if matches!(state, State::Mounted | State::Present | State::Ephemeral) {
        let missing: Vec<&str> = [("src", &a.src), ("fstype", &a.fstype)].iter().filter(|(_, v)| v.is_none()).map(|(k, _)| *k).collect();
        if !missing.is_empty() {
            return Err(err(format!("state is {state_s} but all of the following are missing: {}", missing.join(", "))));
        }
    }
    // fstab alone may name a relative mount point (swap's `none`); a live one must be absolute.
    if !name.starts_with('/') && !matches!(state, State::Present | State::AbsentFromFstab) {
        return Err(err(format!("path must be absolute with state {state_s}, got '{name}'")));
    }
    let boot = a.boot.unwrap_or(true);
    let mut warnings = Vec::new();
    let mut opts = a.opts.clone().unwrap_or_else(|| "defaults".into());
    // As Ansible: `noauto` in opts wins over `boot: true`; `boot: false` appends `noauto` even
    // when opts has it already.
    if boot && opts.split(',').any(|o| o == "noauto") {
        warnings.push("Ignore the 'boot' due to 'opts' contains 'noauto'.".to_string());
    } else if !boot {
        opts.push_str(",noauto");
    }
    let t = MountTask {
        state,
        name,
        src: a.src,
        fstype: a.fstype,
        opts,
        secret_opts: a.opts.filter(|o| a.opts_no_log.unwrap_or(false) && !o.is_empty()),
        dump: a.dump.unwrap_or_else(|| "0".into()),
        passno: a.passno.unwrap_or_else(|| "0".into()),
        fstab: a.fstab.unwrap_or_else(|| DEFAULT_FSTAB.into()),
        boot,
        backup: a.backup.unwrap_or(false),
        warnings,
    };
    for (k, v) in [("path", Some(&t.name)), ("src", t.src.as_ref()), ("fstype", t.fstype.as_ref()), ("opts", Some(&t.opts)), ("dump", Some(&t.dump)), ("passno", Some(&t.passno))] {
        if let Some(v) = v {
            if v.contains(['\n', '\r']) {
                return Err(err(format!("{k} must not contain a line break")));
            }
            if v.is_empty() || v.contains('\t') {
                return Err(err(format!("{k} must not be empty or contain a tab: '{v}'")));
            }
        }
    }
    Ok(t)
}

/// Ansible's escaping of an fstab field: backslash, space and `&` as octal escapes.
fn escape(v: &str) -> String {
    v.replace('\\', "\\134").replace(' ', "\\040").replace('&', "\\046")
}

/// The octal escapes of `/proc/self/mountinfo` (`\040`, `\011`, `\012`, `\134`) undone.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = (b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)))
            .then(|| b[i + 1..i + 4].iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
            .and_then(|n| u8::try_from(n).ok());
        if let Some(c) = code {
            out.push(c);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mount as Ansible's `get_linux_mounts` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveMount {
    dst: String,
    /// The mount's source; for a mount below another one, the path it shows (a bind mount's
    /// source folder), as Ansible computes it.
    src: String,
    /// The source as `mount -v` lists it.
    source: String,
}

/// Parse mountinfo into every mount in order (the last one of a mount point is on top).
fn parse_mountinfo(text: &str) -> Vec<LiveMount> {
    struct Rec {
        id: u64,
        parent: u64,
        root: String,
        dst: String,
        source: String,
    }
    let mut recs: Vec<Rec> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else { continue };
        if sep < 6 || f.len() < sep + 3 {
            continue;
        }
        let (Ok(id), Ok(parent)) = (f[0].parse(), f[1].parse()) else { continue };
        recs.push(Rec { id, parent, root: unescape_octal(f[3]), dst: unescape_octal(f[4]), source: unescape_octal(f[sep + 2]) });
    }
    let index: HashMap<u64, usize> = recs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let mut out = Vec::new();
    for i in 0..recs.len() {
        let parent = recs[i].parent;
        let src = match index.get(&parent) {
            Some(&pi) if parent != 1 => {
                let (proot, pdst) = (recs[pi].root.clone(), recs[pi].dst.clone());
                // Omit the parent's root in the child's root (Ansible changes it in place).
                if proot.len() > 1 && recs[i].root.starts_with(&format!("{proot}/")) {
                    recs[i].root = recs[i].root[proot.len()..].to_string();
                }
                if pdst != "/" {
                    recs[i].root = format!("{pdst}{}", recs[i].root);
                }
                recs[i].root.clone()
            }
            _ => recs[i].source.clone(),
        };
        out.push(LiveMount { dst: recs[i].dst.clone(), src, source: recs[i].source.clone() });
    }
    out
}

/// What the live probe found.
#[derive(Debug)]
struct Live {
    /// `absent`, `directory`, `link` or `other`.
    kind: String,
    /// Python's `os.path.ismount`: another device than its parent's, or the parent's inode.
    ismount: bool,
    mounts: Vec<LiveMount>,
}

impl Live {
    fn parse(r: &ProbeResult) -> Result<Live, ModuleError> {
        if r.rc != 0 {
            return Err(ModuleError::Failed(format!("mount: cannot read the mount state: {}", r.stderr.trim())));
        }
        if r.stdout.trim() == "no-mountinfo" {
            return Err(ModuleError::Failed(
                "mount: /proc/self/mountinfo cannot be read on the host: only Linux hosts are supported".into(),
            ));
        }
        let (head, info) = r.stdout.split_once("\nmountinfo\n").unwrap_or((&r.stdout, ""));
        let line = head.lines().find_map(|l| l.strip_prefix("path|")).ok_or_else(|| ModuleError::Probe(format!("mount state '{}'", head.trim())))?;
        let (kind, m) = line.split_once('|').ok_or_else(|| ModuleError::Probe(format!("mount state '{line}'")))?;
        Ok(Live { kind: kind.to_string(), ismount: m == "1", mounts: parse_mountinfo(info) })
    }

    /// The top mount on `dst`.
    fn top(&self, dst: &str) -> Option<&LiveMount> {
        self.mounts.iter().rev().find(|m| m.dst == dst)
    }

    /// Ansible's `ismount(name) or is_bind_mounted(name, src)`.
    fn mounted(&self, dst: &str, src: Option<&str>) -> bool {
        self.ismount
            || match (self.top(dst), src) {
                (Some(_), None) => true,
                (Some(m), Some(s)) => m.src == s,
                (None, _) => false,
            }
    }

    /// Ansible's `_is_same_mount_src`: mounted, and from `src` (bind source or listed source).
    fn same_src(&self, dst: &str, src: &str) -> bool {
        self.mounted(dst, None) && (self.top(dst).is_some_and(|m| m.src == src) || self.mounts.iter().any(|m| m.dst == dst && m.source == src))
    }
}

/// The live probe: the path's type, whether it is a mount point by device/inode, mountinfo.
fn live_probe(path: &str) -> Probe {
    let s = format!(
        "p={}\n\
         if [ ! -r /proc/self/mountinfo ]; then echo no-mountinfo; exit 0; fi\n\
         if [ -L \"$p\" ]; then t=link; elif [ -d \"$p\" ]; then t=directory; elif [ -e \"$p\" ]; then t=other; else t=absent; fi\n\
         m=0\n\
         if [ $t = directory ] || [ $t = other ]; then\n\
         a=$(stat -c %d:%i -- \"$p\") && b=$(stat -L -c %d:%i -- \"$(dirname -- \"$p\")\") || exit 1\n\
         if [ \"$a\" = \"$b\" ] || [ \"${{a%%:*}}\" != \"${{b%%:*}}\" ]; then m=1; fi\n\
         fi\n\
         printf 'path|%s|%s\\n' $t $m\n\
         echo mountinfo\n\
         cat /proc/self/mountinfo\n",
        sh_quote(path)
    );
    Probe::new(s, Scope::Host)
}

/// Lines keeping their `\n` (Python's `readlines`).
fn lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

impl MountTask {
    fn escaped(&self) -> [String; 6] {
        let e = |v: Option<&String>| escape(v.map(String::as_str).unwrap_or(""));
        [e(self.src.as_ref()), escape(&self.name), e(self.fstype.as_ref()), escape(&self.opts), escape(&self.dump), escape(&self.passno)]
    }

    fn new_line(&self) -> String {
        format!("{}\n", self.escaped().join(" "))
    }

    /// Is this line (its fields) the one of our mount point? Swap lines (`none`) are told
    /// apart by their source.
    fn matches(&self, f: &[&str], name: &str) -> bool {
        f[1] == name && !(self.src.is_some() && f[1] == "none" && f[2] == "swap" && Some(f[0]) != self.src.as_deref())
    }

    /// Ansible's `_set_mount_save_old`: (new content, changed).
    fn set_line(&self, content: &str) -> (String, bool) {
        let want = self.escaped();
        let mut out = String::new();
        let (mut exists, mut changed) = (false, false);
        for line in lines(content) {
            let line = if line.ends_with('\n') { line.to_string() } else { format!("{line}\n") };
            let t = line.trim();
            let f: Vec<&str> = line.split('#').next().unwrap_or("").split_whitespace().collect();
            if t.is_empty() || t.starts_with('#') || !(4..=6).contains(&f.len()) || !self.matches(&f, &want[1]) {
                out.push_str(&line);
                continue;
            }
            exists = true;
            // Missing dump/passno are Ansible's integer 0: never equal to the string wanted.
            for (i, w) in want.iter().enumerate().filter(|(i, _)| *i != 1) {
                if f.get(i) != Some(&w.as_str()) {
                    changed = true;
                }
            }
            if changed {
                out.push_str(&self.new_line());
            } else {
                out.push_str(&line);
            }
        }
        if !exists {
            out.push_str(&self.new_line());
            changed = true;
        }
        (out, changed)
    }

    /// Ansible's `unset_mount`: only 6-field lines are taken out.
    fn unset_line(&self, content: &str) -> (String, bool) {
        let name = escape(&self.name);
        let mut out = String::new();
        let mut changed = false;
        for line in lines(content) {
            let t = line.trim();
            let f: Vec<&str> = line.split_whitespace().collect();
            if t.is_empty() || t.starts_with('#') || f.len() != 6 || !self.matches(&f, &name) {
                out.push_str(line);
                continue;
            }
            changed = true;
        }
        (out, changed)
    }

    /// The options masked as Ansible masks a `no_log` value in what it shows.
    fn mask(&self, s: &str) -> String {
        match &self.secret_opts {
            Some(o) if s == o => NO_LOG_VALUE.into(),
            Some(o) => s.replace(o.as_str(), REDACTED).replace(&escape(o), REDACTED),
            None => s.to_string(),
        }
    }

    fn mask_diff(&self, d: Diff) -> Diff {
        match d {
            Diff::Text { path, before, after } if self.secret_opts.is_some() => Diff::Text {
                path,
                before: before.map(|b| self.mask_text(&b)),
                after: after.map(|a| self.mask_text(&a)),
            },
            d => d,
        }
    }

    fn mask_text(&self, s: &str) -> String {
        match &self.secret_opts {
            Some(o) => s.replace(&escape(o), REDACTED).replace(o.as_str(), REDACTED),
            None => s.to_string(),
        }
    }

    /// `-T FILE` for an fstab that is not the system's.
    fn fstab_arg(&self) -> String {
        if self.state != State::Ephemeral && self.fstab != DEFAULT_FSTAB {
            format!(" -T {}", sh_quote(&self.fstab))
        } else {
            String::new()
        }
    }

    /// `-t FSTYPE [-o OPTS] SRC` of an ephemeral mount.
    fn ephemeral_args(&self) -> String {
        if self.state != State::Ephemeral {
            return String::new();
        }
        let o = if self.opts != "defaults" { format!(" -o {}", sh_quote(&self.opts)) } else { String::new() };
        format!(" -t {}{o} {}", sh_quote(self.fstype.as_deref().unwrap_or("")), sh_quote(self.src.as_deref().unwrap_or("")))
    }

    fn mount_cmd(&self) -> String {
        format!("mount{}{} {}", self.fstab_arg(), self.ephemeral_args(), sh_quote(&self.name))
    }

    fn remount_cmd(&self) -> String {
        let o = if self.state == State::Remounted && self.opts != "defaults" { format!("remount,{}", self.opts) } else { "remount".into() };
        format!("mount -o {}{}{} {}", sh_quote(&o), self.fstab_arg(), self.ephemeral_args(), sh_quote(&self.name))
    }

    /// Shell lines printing `msg: $out` to stderr and exiting 1.
    fn fail_sh(msg: &str) -> String {
        format!("printf '%s: %s\\n' {} \"$out\" >&2; exit 1", sh_quote(msg))
    }

    /// Put the old fstab back (it comes on stdin) when a mount fails after the line changed.
    fn restore_sh(&self, fstab_changed: bool) -> String {
        if fstab_changed {
            format!("cat > {}; ", sh_quote(&self.fstab))
        } else {
            String::new()
        }
    }

    /// Create the mount point's missing folders (remembered in `$@`), then mount; on failure
    /// the folders go again and the old fstab comes back.
    fn mount_script(&self, mkdir: bool, fstab_changed: bool) -> String {
        let restore = self.restore_sh(fstab_changed);
        let mut s = String::from("set --\n");
        if mkdir {
            let mut cur = String::new();
            let mut dirs = Vec::new();
            for c in self.name.split('/').filter(|c| !c.is_empty()) {
                cur = format!("{cur}/{c}");
                dirs.push(sh_quote(&cur));
            }
            s.push_str(&format!(
                "for d in {}; do\n\
                 if [ ! -e \"$d\" ]; then\n\
                 if out=$(mkdir -- \"$d\" 2>&1); then set -- \"$d\" \"$@\"; elif [ ! -d \"$d\" ]; then {restore}for c in \"$@\"; do rmdir -- \"$c\" 2>/dev/null; done; {}; fi\n\
                 fi\n\
                 done\n",
                dirs.join(" "),
                Self::fail_sh(&format!("Error making dir {}", self.name))
            ));
        }
        s.push_str(&format!(
            "if ! out=$({} 2>&1); then\n{restore}for c in \"$@\"; do rmdir -- \"$c\" 2>/dev/null; done\n{}\nfi\n",
            self.mount_cmd(),
            Self::fail_sh(&format!("Error mounting {}", self.name))
        ));
        s
    }

    /// Remount; when that fails, unmount and mount.
    fn remount_script(&self, fstab_changed: bool) -> String {
        let name = sh_quote(&self.name);
        let (fallback_fail, strict) = if self.state == State::Remounted {
            let strict = if self.opts != "defaults" {
                "echo 'Options were specified with remounted, but the remount command failed. Failing in order to prevent an unexpected mount result. Try replacing this command with a \"state: unmounted\" followed by a \"state: mounted\" using the full desired mount options instead.' >&2; exit 1\n"
            } else {
                ""
            };
            (Self::fail_sh(&format!("Error remounting {}", self.name)), strict)
        } else {
            (format!("{}{}", self.restore_sh(fstab_changed), Self::fail_sh(&format!("Error mounting {}", self.name))), "")
        };
        format!(
            "if ! out=$({} 2>&1); then\n{strict}if out=$(umount {name} 2>&1) && out=$({} 2>&1); then :; else {fallback_fail}; fi\nfi\n",
            self.remount_cmd(),
            self.mount_cmd()
        )
    }

    fn umount_script(&self) -> String {
        format!("if ! out=$(umount {} 2>&1); then {}; fi\n", sh_quote(&self.name), Self::fail_sh(&format!("Error unmounting {}", self.name)))
    }

    fn state_diff(before: &str, after: &str) -> Diff {
        Diff::Field { name: "state".into(), before: before.into(), after: after.into() }
    }

    /// Backup, write and diff of a new fstab content.
    fn write_fstab(&self, plan: &mut Plan, st: &common::FileState, content: &str) {
        plan.diffs.push(self.mask_diff(common::content_diff(&self.fstab, st, content.as_bytes())));
        if self.backup && st.exists() {
            plan.actions.push(backup_action(&self.fstab));
        }
        let mut a = if st.exists() {
            common::write_file_action(&self.fstab, content.as_bytes(), Some(&st.owner), Some(&st.group), None, Some(st.mode))
        } else {
            let mut a = common::write_file_action(&self.fstab, content.as_bytes(), None, None, None, None);
            common::create_parent_dirs(&mut a, &self.fstab);
            a
        };
        a.summary = format!("write the line of {} in {}", self.name, self.fstab);
        plan.actions.push(a);
    }

    fn result(&self) -> Map<String, Value> {
        let mut r = Map::new();
        r.insert("name".into(), json!(self.name));
        if let Some(s) = &self.src {
            r.insert("src".into(), json!(s));
        }
        if let Some(f) = &self.fstype {
            r.insert("fstype".into(), json!(f));
        }
        r.insert("opts".into(), json!(self.mask(&self.opts)));
        r.insert("dump".into(), json!(self.dump));
        r.insert("passno".into(), json!(self.passno));
        r.insert("fstab".into(), json!(self.fstab));
        r.insert("boot".into(), json!(if self.boot { "yes" } else { "no" }));
        r.insert("backup_file".into(), json!(""));
        if !self.warnings.is_empty() {
            r.insert("warnings".into(), json!(self.warnings));
        }
        r
    }
}

impl ModuleTask for MountTask {
    fn probes(&self) -> Vec<Probe> {
        let mut v = Vec::new();
        if self.state.uses_fstab() {
            v.push(common::file_probe(&self.fstab, true));
        }
        if self.state.uses_live() {
            v.push(live_probe(&self.name));
        }
        v
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let want = usize::from(self.state.uses_fstab()) + usize::from(self.state.uses_live());
        if probes.len() < want {
            return Err(ModuleError::Probe("missing mount probes".into()));
        }
        let mut plan = Plan::ok();
        plan.result = self.result();
        let mut next = probes.iter();
        let fstab = if self.state.uses_fstab() {
            let st = common::parse_file_state(next.next().expect("counted"))?;
            let text = match st.kind {
                FileKind::Absent => String::new(),
                FileKind::File => st.text().ok_or_else(|| ModuleError::Failed(format!("mount: {} is not a text file no larger than {} bytes", self.fstab, common::MAX_DIFF_BYTES)))?,
                _ => return Err(ModuleError::Failed(format!("mount: {} is a {}, not a regular file (not supported)", self.fstab, st.kind.name()))),
            };
            Some((st, text))
        } else {
            None
        };
        let live = if self.state.uses_live() { Some(Live::parse(next.next().expect("counted"))?) } else { None };

        match self.state {
            State::Present | State::AbsentFromFstab => {
                let (st, text) = fstab.expect("probed");
                let (new, changed) = if self.state == State::Present { self.set_line(&text) } else { self.unset_line(&text) };
                if changed {
                    self.write_fstab(&mut plan, &st, &new);
                }
            }
            State::Absent => {
                let (st, text) = fstab.expect("probed");
                let live = live.expect("probed");
                let (new, changed) = self.unset_line(&text);
                // As Ansible: without a line in fstab nothing is unmounted or removed.
                if changed {
                    self.write_fstab(&mut plan, &st, &new);
                    let mut s = String::new();
                    if live.mounted(&self.name, None) {
                        plan.diffs.push(Self::state_diff("mounted", "unmounted"));
                        s.push_str(&self.umount_script());
                    }
                    if live.kind != "absent" {
                        plan.diffs.push(Diff::Field { name: "path".into(), before: live.kind.clone(), after: "absent".into() });
                        s.push_str(&format!(
                            "if ! out=$(rmdir -- {} 2>&1); then {}; fi\n",
                            sh_quote(&self.name),
                            Self::fail_sh(&format!("Error rmdir {}", self.name))
                        ));
                    }
                    if !s.is_empty() {
                        plan.actions.push(Action::new(format!("unmount and remove {}", self.name), s, Scope::Host));
                    }
                }
            }
            State::Unmounted => {
                if live.expect("probed").mounted(&self.name, None) {
                    plan.diffs.push(Self::state_diff("mounted", "unmounted"));
                    plan.actions.push(Action::new(format!("unmount {}", self.name), self.umount_script(), Scope::Host));
                }
            }
            State::Remounted => {
                plan.diffs.push(Self::state_diff("mounted", "remounted"));
                plan.actions.push(Action::new(format!("remount {}", self.name), self.remount_script(false), Scope::Host));
            }
            State::Mounted | State::Ephemeral => {
                let live = live.expect("probed");
                let mkdir = live.kind == "absent";
                if mkdir {
                    plan.diffs.push(Diff::Field { name: "path".into(), before: "absent".into(), after: "directory".into() });
                }
                let mut old = None;
                if let Some((st, text)) = fstab {
                    let (new, changed) = self.set_line(&text);
                    if changed {
                        self.write_fstab(&mut plan, &st, &new);
                        // What a failed mount puts back: the lines as Ansible read them.
                        let mut back: String = lines(&text).concat();
                        if !back.is_empty() && !back.ends_with('\n') {
                            back.push('\n');
                        }
                        old = Some(back);
                    }
                }
                let src = self.src.as_deref().unwrap_or("");
                let remount = if live.mounted(&self.name, Some(src)) {
                    if self.state == State::Ephemeral && !live.same_src(&self.name, src) {
                        return Err(ModuleError::Failed(
                            "Ephemeral mount point is already mounted with a different source than the specified one. Failing in order to prevent an unwanted unmount or override operation. Try replacing this command with a \"state: unmounted\" followed by a \"state: ephemeral\", or use a different destination path.".into(),
                        ));
                    }
                    if self.state == State::Mounted && old.is_none() {
                        return Ok(plan);
                    }
                    true
                } else {
                    false
                };
                let (script, summary) = if remount {
                    plan.diffs.push(Self::state_diff("mounted", "remounted"));
                    (self.remount_script(old.is_some()), format!("remount {}", self.name))
                } else {
                    plan.diffs.push(Self::state_diff("unmounted", "mounted"));
                    (self.mount_script(mkdir, old.is_some()), format!("mount {}", self.name))
                };
                let mut a = Action::new(summary, script, Scope::Host);
                if let Some(o) = old {
                    a = a.with_stdin(o.into_bytes());
                }
                plan.actions.push(a);
            }
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        record_backup(&mut plan, outputs);
        // A mount step that failed: its message, as Ansible words it, with the options masked.
        if let Some((i, o)) = outputs.iter().enumerate().next_back().filter(|(_, o)| o.exit_code != 0) {
            if plan.actions.get(i).is_some_and(|a| a.touches == Scope::Host) {
                plan.failed = Some(self.mask(o.stderr_str().trim()));
                plan.changed = Some(false);
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, file, ok, sh};
    use super::*;

    fn task(v: Value) -> MountTask {
        build(v.as_object().unwrap()).unwrap()
    }

    fn err(v: Value) -> String {
        build(v.as_object().unwrap()).unwrap_err().to_string()
    }

    /// Live probe output: the path's kind, ismount, mountinfo lines.
    fn live(kind: &str, ismount: bool, mountinfo: &str) -> ProbeResult {
        ok(&format!("path|{kind}|{}\nmountinfo\n{mountinfo}", u8::from(ismount)))
    }

    const ROOT: &str = "1236 1201 0:104 / / rw,relatime shared:274 - overlay overlay rw,lowerdir=/x\n1237 1236 0:108 / /tmp rw,nosuid,nodev shared:291 - tmpfs tmpfs rw\n";
    const TMPFS: &str = "1546 1236 0:168 / /mnt/x rw,relatime shared:562 - tmpfs tmpfs rw,size=1024k\n";
    const BIND: &str = "1549 1236 0:104 /srv/a /mnt/b rw,relatime shared:274 - overlay overlay rw,lowerdir=/x\n";

    fn stdin(a: &Action) -> String {
        String::from_utf8(a.stdin.clone().unwrap_or_default()).unwrap()
    }

    /// The fstab diff's new content.
    fn after(p: &Plan) -> String {
        p.diffs
            .iter()
            .find_map(|d| match d {
                Diff::Text { after, .. } => after.clone(),
                _ => None,
            })
            .unwrap()
    }

    const BASE: &str = "# /etc/fstab: static file system information.\nUUID=1234 / ext4 errors=remount-ro 0 1\ntmpfs /mnt/mdx tmpfs size=1m 0 0 # scratch\n/dev/sdb1 /mnt/mdx ext4 defaults\n/srv/old /mnt/md-old none bind 0 0\n\t# indented comment\n\n/dev/sda2 none swap sw 0 0\n/dev/sda3 none swap sw 0 0\n/srv/x\\040y /mnt/md\\040sp none bind 0 0\nbroken line\nproc /proc proc defaults 0 0";

    /// fstab after a `present`/`absent_from_fstab` plan on `BASE` (None: no change).
    fn edited(v: Value, content: &str) -> Option<String> {
        let t = task(v);
        let p = t.plan(&[file(content)]).unwrap();
        if p.actions.is_empty() {
            assert!(p.diffs.is_empty());
            return None;
        }
        let w = p.actions.last().unwrap();
        assert_eq!(stdin(w), after(&p));
        // The result with the new content plans nothing more.
        assert!(t.plan(&[file(&stdin(w))]).unwrap().actions.is_empty(), "not idempotent");
        Some(stdin(w))
    }

    /// What ansible-core 2.19 with ansible.posix (Ansible 12.3) wrote from `BASE`, case by case.
    #[test]
    fn fstab_edits_match_ansible() {
        let tail = "/srv/old /mnt/md-old none bind 0 0\n\t# indented comment\n\n/dev/sda2 none swap sw 0 0\n/dev/sda3 none swap sw 0 0\n/srv/x\\040y /mnt/md\\040sp none bind 0 0\nbroken line\nproc /proc proc defaults 0 0";
        let head = "# /etc/fstab: static file system information.\nUUID=1234 / ext4 errors=remount-ro 0 1\n";
        // Both lines of the mount point are replaced; the last line gets its newline.
        assert_eq!(
            edited(json!({"path": "/mnt/mdx", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=2m", "state": "present"}), BASE).unwrap(),
            format!("{head}tmpfs /mnt/mdx tmpfs size=2m 0 0\ntmpfs /mnt/mdx tmpfs size=2m 0 0\n{tail}\n")
        );
        // Same values: the line with its comment stays.
        assert_eq!(edited(json!({"path": "/mnt/mdx", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=1m", "state": "present"}), "tmpfs /mnt/mdx tmpfs size=1m 0 0 # scratch\n"), None);
        // A new line at the end, fields escaped, noauto for boot: false.
        assert_eq!(
            edited(json!({"path": "/mnt/md new&x", "src": "/srv/a\\b c", "fstype": "none", "opts": "bind", "boot": false, "state": "present"}), BASE).unwrap(),
            format!("{BASE}\n/srv/a\\134b\\040c /mnt/md\\040new\\046x none bind,noauto 0 0\n")
        );
        // Removal takes 6-field lines only: a line with a comment or 4 fields stays.
        assert_eq!(edited(json!({"path": "/mnt/mdx", "state": "absent_from_fstab"}), BASE), None);
        assert_eq!(edited(json!({"path": "/mnt/md-old", "state": "absent_from_fstab"}), BASE).unwrap(), BASE.replace("/srv/old /mnt/md-old none bind 0 0\n", ""));
        // Swap lines (mount point `none`) are told apart by their source.
        assert_eq!(
            edited(json!({"path": "none", "src": "/dev/sda3", "fstype": "swap", "opts": "sw,pri=1", "state": "present"}), BASE).unwrap(),
            format!("{}\n", BASE.replace("/dev/sda3 none swap sw 0 0", "/dev/sda3 none swap sw,pri=1 0 0"))
        );
        assert_eq!(edited(json!({"path": "none", "src": "/dev/sda2", "state": "absent_from_fstab"}), BASE).unwrap(), BASE.replace("/dev/sda2 none swap sw 0 0\n", ""));
        // A 4-field line with the same values is rewritten with 6.
        assert_eq!(edited(json!({"path": "/mnt/mdx", "src": "/dev/sdb1", "fstype": "ext4", "state": "present"}), "/dev/sdb1 /mnt/mdx ext4 defaults\n").unwrap(), "/dev/sdb1 /mnt/mdx ext4 defaults 0 0\n");
        // An escaped mount point is found.
        assert_eq!(edited(json!({"path": "/mnt/md sp", "state": "absent_from_fstab"}), BASE).unwrap(), BASE.replace("/srv/x\\040y /mnt/md\\040sp none bind 0 0\n", ""));
        assert_eq!(edited(json!({"path": "/mnt/md sp", "src": "/srv/x y", "fstype": "none", "opts": "bind", "state": "present"}), BASE), None);
        // boot: false appends noauto even when opts has it (as Ansible), with dump and passno.
        assert_eq!(
            edited(json!({"path": "/mnt/mdk", "src": "tmpfs", "fstype": "tmpfs", "opts": "noauto,size=1m", "boot": false, "dump": 1, "passno": 2, "state": "present"}), "").unwrap(),
            "tmpfs /mnt/mdk tmpfs noauto,size=1m,noauto 1 2\n"
        );
    }

    #[test]
    fn arguments_as_ansible_checks_them() {
        assert_eq!(err(json!({"path": "/mnt/x"})), "mount: missing required arguments: state");
        assert_eq!(err(json!({"state": "mounted"})), "mount: missing required arguments: path");
        assert!(err(json!({"path": "/mnt/x", "state": "gone"})).contains("value of state must be one of: absent, absent_from_fstab, mounted"));
        assert_eq!(err(json!({"path": "/mnt/x", "state": "mounted"})), "mount: state is mounted but all of the following are missing: src, fstype");
        assert_eq!(err(json!({"path": "/mnt/x", "state": "ephemeral", "src": "tmpfs"})), "mount: state is ephemeral but all of the following are missing: fstype");
        assert!(err(json!({"path": "mnt/x", "state": "unmounted"})).contains("path must be absolute"));
        assert!(err(json!({"path": "/mnt/x", "src": "a\nb", "fstype": "none", "state": "present"})).contains("line break"));
        assert!(err(json!({"path": "/mnt/x", "state": "absent", "owner": "root"})).contains("unsupported parameter 'owner'"));
        // `name` is the old name of `path`; unmounted and remounted need no src.
        let t = task(json!({"name": "/mnt/x", "state": "unmounted"}));
        assert_eq!(t.name, "/mnt/x");
        assert_eq!((t.opts.as_str(), t.dump.as_str(), t.passno.as_str(), t.fstab.as_str()), ("defaults", "0", "0", "/etc/fstab"));
    }

    #[test]
    fn result_keys_as_ansible() {
        let t = task(json!({"path": "/mnt/x", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=1m", "boot": "no", "state": "present"}));
        let p = t.plan(&[file("tmpfs /mnt/x tmpfs size=1m,noauto 0 0\n")]).unwrap();
        assert!(p.actions.is_empty());
        assert_eq!(
            Value::Object(p.result),
            json!({"name": "/mnt/x", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=1m,noauto", "dump": "0", "passno": "0", "fstab": "/etc/fstab", "boot": "no", "backup_file": ""})
        );
        // noauto in opts wins over boot: true, with Ansible's warning.
        let t = task(json!({"path": "/mnt/x", "src": "tmpfs", "fstype": "tmpfs", "opts": "noauto", "state": "present"}));
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert_eq!(p.result["warnings"], json!(["Ignore the 'boot' due to 'opts' contains 'noauto'."]));
        assert_eq!(p.result["boot"], json!("yes"));
        assert_eq!(stdin(&p.actions[0]), "tmpfs /mnt/x tmpfs noauto 0 0\n");
    }

    #[test]
    fn present_writes_only_fstab_creating_it_with_its_folder() {
        let t = task(json!({"path": "/mnt/x", "src": "tmpfs", "fstype": "tmpfs", "state": "present", "fstab": "/srv/chroot/etc/fstab"}));
        assert_eq!(t.probes().len(), 1, "no live probe");
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(p.actions[0].script.starts_with("mkdir -p -- /srv/chroot/etc\n"), "{}", p.actions[0].script);
        assert_eq!(p.actions[0].touches, Scope::path("/srv/chroot/etc/fstab"));
        assert_eq!(p.diffs, vec![Diff::Text { path: "/srv/chroot/etc/fstab".into(), before: None, after: Some("tmpfs /mnt/x tmpfs defaults 0 0\n".into()) }]);
        // An existing file keeps its owner and mode.
        let p = t.plan(&[super::super::testutil::file_with_mode("600", "# x\n")]).unwrap();
        assert!(p.actions[0].script.contains("chmod 0600") && !p.actions[0].script.contains("mkdir -p"), "{}", p.actions[0].script);
        assert!(t.plan(&[ok("link|root|root|0|0|777|5|1\ntarget|/x\n")]).is_err());
    }

    #[test]
    fn backup_before_writing_and_reported() {
        let t = task(json!({"path": "/mnt/x", "state": "absent_from_fstab", "backup": true}));
        let p = t.plan(&[file("tmpfs /mnt/x tmpfs defaults 0 0\n")]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions[0].summary.starts_with("back up /etc/fstab"));
        assert_eq!(stdin(&p.actions[1]), "");
        let out = |s: &str| ActionOutput { stdout: s.as_bytes().to_vec(), stderr: Vec::new(), exit_code: 0 };
        let done = t.finish(p, &[out("backup|/etc/fstab.1.2026-01-01@00:00:00~\n"), out("")]).unwrap();
        assert_eq!(done.result["backup_file"], json!("/etc/fstab.1.2026-01-01@00:00:00~"));
        // Nothing to back up when there was no file.
        let t = task(json!({"path": "/mnt/x", "src": "tmpfs", "fstype": "tmpfs", "state": "present", "backup": true}));
        assert_eq!(t.plan(&[ok("absent\n")]).unwrap().actions.len(), 1);
    }

    #[test]
    fn mounted_on_a_fresh_host_writes_creates_and_mounts_then_nothing() {
        let t = task(json!({"path": "/mnt/x", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=1m", "state": "mounted"}));
        let old = "# static\nproc /proc proc defaults 0 0";
        let p = t.plan(&[file(old), live("absent", false, ROOT)]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert_eq!(stdin(&p.actions[0]), "# static\nproc /proc proc defaults 0 0\ntmpfs /mnt/x tmpfs size=1m 0 0\n");
        let m = &p.actions[1];
        assert_eq!((m.summary.as_str(), &m.touches), ("mount /mnt/x", &Scope::Host));
        assert!(m.script.contains("for d in /mnt /mnt/x; do") && m.script.contains("if ! out=$(mount /mnt/x 2>&1); then"), "{}", m.script);
        // What a failed mount puts back: the old lines, the last one ended.
        assert_eq!(stdin(m), format!("{old}\n"));
        assert_eq!(
            p.diffs,
            vec![
                Diff::Field { name: "path".into(), before: "absent".into(), after: "directory".into() },
                Diff::Text { path: "/etc/fstab".into(), before: Some(old.into()), after: Some(stdin(&p.actions[0])) },
                Diff::Field { name: "state".into(), before: "unmounted".into(), after: "mounted".into() },
            ]
        );
        assert_sh_syntax(&m.script);
        let p = t.plan(&[file(&stdin(&p.actions[0])), live("directory", true, &format!("{ROOT}{TMPFS}"))]).unwrap();
        assert!(p.actions.is_empty() && p.diffs.is_empty(), "{:?}", p.diffs);
    }

    #[test]
    fn mounted_with_a_changed_line_remounts() {
        let t = task(json!({"path": "/mnt/x", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=2m", "state": "mounted", "fstab": "/srv/fstab"}));
        let p = t.plan(&[file("tmpfs /mnt/x tmpfs size=1m 0 0\n"), live("directory", true, &format!("{ROOT}{TMPFS}"))]).unwrap();
        assert_eq!(p.actions.len(), 2);
        let r = &p.actions[1];
        assert_eq!(r.summary, "remount /mnt/x");
        assert!(r.script.starts_with("if ! out=$(mount -o remount -T /srv/fstab /mnt/x 2>&1); then\nif out=$(umount /mnt/x 2>&1) && out=$(mount -T /srv/fstab /mnt/x 2>&1); then :; else cat > /srv/fstab; "), "{}", r.script);
        assert_eq!(stdin(r), "tmpfs /mnt/x tmpfs size=1m 0 0\n");
        assert!(p.diffs.contains(&Diff::Field { name: "state".into(), before: "mounted".into(), after: "remounted".into() }));
        assert_sh_syntax(&r.script);
        // The line as wanted but nothing mounted: a mount alone, nothing to put back.
        let p = t.plan(&[file("tmpfs /mnt/x tmpfs size=2m 0 0\n"), live("directory", false, ROOT)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(p.actions[0].script.contains("mount -T /srv/fstab /mnt/x") && !p.actions[0].script.contains("for d in"), "{}", p.actions[0].script);
        assert_eq!(p.actions[0].stdin, None);
    }

    #[test]
    fn bind_mounts_are_known_by_their_source_folder() {
        let t = task(json!({"path": "/mnt/b", "src": "/srv/a", "fstype": "none", "opts": "bind", "state": "mounted"}));
        let line = "/srv/a /mnt/b none bind 0 0\n";
        // Same device as its parent (no ismount), but mountinfo shows /srv/a there.
        let p = t.plan(&[file(line), live("directory", false, &format!("{ROOT}{BIND}"))]).unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        // Another folder bound there: Ansible mounts (on top).
        let p = t.plan(&[file(line), live("directory", false, &format!("{ROOT}{}", BIND.replace("/srv/a", "/srv/z")))]).unwrap();
        assert_eq!(p.actions[0].summary, "mount /mnt/b");
        // unmounted sees any mount there.
        let u = task(json!({"path": "/mnt/b", "state": "unmounted"}));
        let p = u.plan(&[live("directory", false, &format!("{ROOT}{BIND}"))]).unwrap();
        assert_eq!(p.actions[0].script, "if ! out=$(umount /mnt/b 2>&1); then printf '%s: %s\\n' 'Error unmounting /mnt/b' \"$out\" >&2; exit 1; fi\n");
        assert!(u.plan(&[live("directory", false, ROOT)]).unwrap().actions.is_empty());
        assert!(u.plan(&[live("absent", false, ROOT)]).unwrap().actions.is_empty());
    }

    #[test]
    fn mountinfo_sources_as_ansible_computes_them() {
        // Ansible's own examples: a bind inside a bind-rooted mount, a bind of a tmpfs folder.
        let m = parse_mountinfo(
            "140 136 253:2 /rootfs / rw - ext4 /dev/sdb2 rw\n141 140 253:2 /rootfs/tmp/aaa /tmp/bbb rw - ext4 /dev/sdb2 rw\n\
             42 60 0:35 / /tmp rw - tmpfs tmpfs rw\n78 42 0:35 /aaa /tmp/b\\040b rw shared:1 master:2 - tmpfs tmpfs rw\nbad line\n",
        );
        let got: Vec<(&str, &str, &str)> = m.iter().map(|m| (m.dst.as_str(), m.src.as_str(), m.source.as_str())).collect();
        assert_eq!(got, [("/", "/dev/sdb2", "/dev/sdb2"), ("/tmp/bbb", "/tmp/aaa", "/dev/sdb2"), ("/tmp", "tmpfs", "tmpfs"), ("/tmp/b b", "/tmp/aaa", "tmpfs")]);
        assert_eq!(unescape_octal("a\\040b\\134c\\0"), "a b\\c\\0");
    }

    #[test]
    fn absent_removes_line_unmounts_and_removes_the_folder() {
        let t = task(json!({"path": "/mnt/x", "state": "absent"}));
        let fstab = "# keep\ntmpfs /mnt/x tmpfs size=1m 0 0\n";
        let p = t.plan(&[file(fstab), live("directory", true, &format!("{ROOT}{TMPFS}"))]).unwrap();
        assert_eq!(stdin(&p.actions[0]), "# keep\n");
        let s = &p.actions[1].script;
        assert!(s.starts_with("if ! out=$(umount /mnt/x 2>&1)") && s.contains("if ! out=$(rmdir -- /mnt/x 2>&1); then printf '%s: %s\\n' 'Error rmdir /mnt/x'"), "{s}");
        assert_sh_syntax(s);
        assert_eq!(p.diffs.len(), 3);
        // Unmounted already: the folder goes.
        let p = t.plan(&[file(fstab), live("directory", false, ROOT)]).unwrap();
        assert!(!p.actions[1].script.contains("umount"));
        // No folder, not mounted: the line alone.
        assert_eq!(t.plan(&[file(fstab), live("absent", false, ROOT)]).unwrap().actions.len(), 1);
        // No line: nothing, even mounted (Ansible: use unmounted).
        let p = t.plan(&[file("# keep\n"), live("directory", true, &format!("{ROOT}{TMPFS}"))]).unwrap();
        assert!(p.actions.is_empty() && !p.changed());
        assert!(t.plan(&[ok("absent\n"), live("absent", false, ROOT)]).unwrap().actions.is_empty());
    }

    #[test]
    fn remounted_always_changes() {
        let t = task(json!({"path": "/mnt/x", "state": "remounted"}));
        assert!(t.probes().is_empty());
        let p = t.plan(&[]).unwrap();
        assert!(p.changed());
        assert!(p.actions[0].script.starts_with("if ! out=$(mount -o remount /mnt/x 2>&1); then\nif out=$(umount /mnt/x"), "{}", p.actions[0].script);
        let t = task(json!({"path": "/mnt/x", "state": "remounted", "opts": "ro"}));
        let s = t.plan(&[]).unwrap().actions[0].script.clone();
        assert!(s.starts_with("if ! out=$(mount -o remount,ro /mnt/x 2>&1); then\necho 'Options were specified with remounted"), "{s}");
        assert_sh_syntax(&s);
    }

    #[test]
    fn ephemeral_mounts_without_fstab_and_always_changes() {
        let t = task(json!({"path": "/mnt/x", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=1m", "state": "ephemeral", "fstab": "/srv/fstab"}));
        assert_eq!(t.probes().len(), 1, "no fstab probe");
        let p = t.plan(&[live("directory", false, ROOT)]).unwrap();
        assert!(p.actions[0].script.contains("if ! out=$(mount -t tmpfs -o size=1m tmpfs /mnt/x 2>&1)"), "{}", p.actions[0].script);
        let p = t.plan(&[live("directory", true, &format!("{ROOT}{TMPFS}"))]).unwrap();
        assert!(p.actions[0].script.starts_with("if ! out=$(mount -o remount -t tmpfs -o size=1m tmpfs /mnt/x 2>&1)"), "{}", p.actions[0].script);
        let other = TMPFS.replace("- tmpfs tmpfs", "- ext4 /dev/sdc1");
        let e = t.plan(&[live("directory", true, &format!("{ROOT}{other}"))]).unwrap_err().to_string();
        assert!(e.starts_with("Ephemeral mount point is already mounted with a different source"), "{e}");
        // Defaults are no -o.
        let t = task(json!({"path": "/mnt/b", "src": "/srv/a", "fstype": "none", "state": "ephemeral"}));
        assert!(t.plan(&[live("absent", false, ROOT)]).unwrap().actions[0].script.contains("mount -t none /srv/a /mnt/b"));
    }

    #[test]
    fn opts_no_log_masks_the_options() {
        let t = task(json!({"path": "/mnt/s", "src": "//nas/share", "fstype": "cifs", "opts": "username=u,password=s3cr&t", "opts_no_log": true, "state": "mounted"}));
        let p = t.plan(&[file("//nas/share /mnt/s cifs username=u,password=old 0 0\n"), live("directory", true, ROOT)]).unwrap();
        assert_eq!(p.result["opts"], json!(NO_LOG_VALUE));
        let shown = format!("{:?}", p.diffs);
        assert!(!shown.contains("s3cr") && shown.contains(REDACTED), "{shown}");
        // The file itself gets the real options.
        assert_eq!(stdin(&p.actions[0]), "//nas/share /mnt/s cifs username=u,password=s3cr\\046t 0 0\n");
        let fail = ActionOutput { stdout: vec![], stderr: b"Error mounting /mnt/s: mount error: bad username=u,password=s3cr&t\n".to_vec(), exit_code: 1 };
        let ok0 = ActionOutput::default();
        let done = t.finish(p, &[ok0, fail]).unwrap();
        assert_eq!(done.failed.as_deref(), Some("Error mounting /mnt/s: mount error: bad ********"));
        assert!(!done.changed());
    }

    /// The mount script itself with a `mount` that fails: the created folders and the old
    /// fstab come back, and the message is Ansible's.
    #[test]
    fn a_failed_mount_takes_its_changes_back() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("mount"), "#!/bin/sh\necho \"mount: $*: boom\" >&2\nexit 32\n").unwrap();
        std::fs::write(bin.join("umount"), "#!/bin/sh\nexit 0\n").unwrap();
        for f in ["mount", "umount"] {
            sh(&format!("chmod +x {}", bin.join(f).display()), None);
        }
        let fstab = d.path().join("fstab");
        std::fs::write(&fstab, "# old\n").unwrap();
        let mp = d.path().join("a/b c");
        let t = task(json!({"path": mp.to_str().unwrap(), "src": "tmpfs", "fstype": "tmpfs", "state": "mounted", "fstab": fstab.to_str().unwrap()}));
        let p = t.plan(&[file("# old\n"), live("absent", false, ROOT)]).unwrap();
        let path = format!("PATH={}:$PATH\n", bin.display());
        let (rc, _, _) = sh(&format!("{path}{}", p.actions[0].script), p.actions[0].stdin.as_deref());
        assert_eq!(rc, 0);
        assert!(std::fs::read_to_string(&fstab).unwrap().contains("tmpfs"));
        let (rc, _, err) = sh(&format!("{path}{}", p.actions[1].script), p.actions[1].stdin.as_deref());
        assert_eq!(rc, 1);
        assert_eq!(err, format!("Error mounting {}: mount: -T {} {}: boom\n", mp.display(), fstab.display(), mp.display()));
        assert_eq!(std::fs::read_to_string(&fstab).unwrap(), "# old\n");
        assert!(!d.path().join("a").exists(), "created folders removed");
        // With a mount that works, the folders stay.
        std::fs::write(bin.join("mount"), "#!/bin/sh\nexit 0\n").unwrap();
        let (rc, _, err) = sh(&format!("{path}{}", p.actions[1].script), p.actions[1].stdin.as_deref());
        assert_eq!(rc, 0, "{err}");
        assert!(mp.is_dir());
    }

    #[test]
    fn live_probe_runs_here() {
        let r = super::super::testutil::run_probe(&live_probe("/").script);
        let l = Live::parse(&r).unwrap();
        assert_eq!(l.kind, "directory");
        assert!(l.ismount && l.top("/").is_some());
        let d = tempfile::tempdir().unwrap();
        let r = super::super::testutil::run_probe(&live_probe(d.path().join("x y").to_str().unwrap()).script);
        assert!(r.stdout.starts_with("path|absent|0\nmountinfo\n"), "{}", r.stdout);
        let r = super::super::testutil::run_probe(&live_probe(d.path().to_str().unwrap()).script);
        assert!(r.stdout.starts_with("path|directory|0\n"), "{}", r.stdout);
        assert!(Live::parse(&ok("no-mountinfo\n")).unwrap_err().to_string().contains("only Linux hosts"));
    }
}
