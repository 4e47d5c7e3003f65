//! `assemble`: concatenate a directory of fragments (`src`) into one file (`dest`), as
//! ansible.builtin.assemble does: fragments in file-name (byte) order, regular files only
//! (symbolic links to files count), filtered by `regexp` (searched in the name) and
//! `ignore_hidden`; a newline between fragments when the previous one lacks one; `delimiter`
//! (escapes like `\n` decoded) between fragments, followed by a newline. Written atomically
//! only when the content differs (after `validate`, with `backup`), then owner/group/mode as
//! `file` would. Result: `src`, `dest`, `checksum` (SHA-1), `md5sum`, `msg`, `backup_file`.
//!
//! `remote_src: true` (the default): one probe lists the directory on the host and reads the
//! fragments and `dest`. The regular files of `src` (before `regexp`; hidden ones left out
//! with `ignore_hidden`) may total at most 256 KiB: a bigger directory is refused.
//! `remote_src: false`: the directory is found on the controller like `copy`'s `src`.
//!
//! Ansible's quirks kept (checked against ansible-core 2.19): the delimiter is decoded again
//! before every fragment after the second (`<\\n>` gives `<\n>` first, then a newline), and
//! with `remote_src: false` a newline always follows the delimiter, even one ending in a
//! newline. Differences: `regexp` is the `regex` crate's syntax (no look-around or
//! backreferences; refused with Ansible's "Invalid Regexp" message), `--diff` shows the
//! content diff for `remote_src: true` too, a `dest` that is a symbolic link or not a regular
//! file is refused, `backup_file` is not reported in check mode. Vault-encrypted fragments from the controller
//! are decrypted (`decrypt: false` keeps them as they are).

use super::args::{self, opt_boolish, opt_string, Mode};
use super::common::{attributes_plan, content_diff, parse_file_state, sha256_hex, stat_lines, write_file_validated_action, FileKind, MAX_DIFF_BYTES};
use super::file::chmod_arg;
use super::lineinfile::{backup_action, record_backup};
use super::{sh_quote, Action, ActionOutput, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct AssembleModule;

const PARAMS: &[&str] = &["src", "dest", "delimiter", "regexp", "ignore_hidden", "remote_src", "backup", "validate", "owner", "group", "mode", "decrypt", "unsafe_writes"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    src: String,
    dest: String,
    #[serde(default, deserialize_with = "opt_string")]
    delimiter: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    regexp: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    ignore_hidden: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    remote_src: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    validate: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group: Option<String>,
    #[serde(default)]
    mode: Option<Value>,
    #[serde(default, deserialize_with = "opt_boolish")]
    decrypt: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    unsafe_writes: Option<bool>,
}

/// A fragment: file name and content.
type Fragment = (Vec<u8>, Vec<u8>);

#[derive(Debug)]
struct Assemble {
    src: String,
    dest: String,
    /// `remote_src: false`: the controller directory's regular files (unfiltered).
    local: Option<Vec<Fragment>>,
    delimiter: Option<String>,
    regexp: Option<regex::Regex>,
    ignore_hidden: bool,
    backup: bool,
    validate: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    mode: Option<Mode>,
}

impl Module for AssembleModule {
    fn name(&self) -> &'static str {
        "assemble"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build(args, Some(ctx))?))
    }
}

fn build(args: &Map<String, Value>, ctx: Option<&PrepareContext>) -> Result<Assemble, ModuleError> {
    let a: Args = args::parse("assemble", PARAMS, args)?;
    let _ = a.unsafe_writes;
    let regexp = match &a.regexp {
        Some(r) => Some(regex::Regex::new(r).map_err(|e| ModuleError::Args(format!("Invalid Regexp ({}) in \"{r}\"", one_line(&e.to_string()))))?),
        None => None,
    };
    let validate = a.validate.filter(|v| !v.trim().is_empty());
    if let Some(v) = &validate {
        if !v.contains("%s") {
            return Err(ModuleError::Args(format!("validate must contain %s: {v}")));
        }
    }
    let mode = match &a.mode {
        None | Some(Value::Null) => None,
        Some(v) => Some(Mode::parse(v).map_err(|e| ModuleError::Args(format!("assemble: {e}")))?),
    };
    let local = if a.remote_src.unwrap_or(true) {
        None
    } else {
        let ctx = ctx.ok_or_else(|| ModuleError::LocalFile(format!("assemble: cannot look up {}", a.src)))?;
        let dir = ctx
            .find_local("files", &a.src)
            .ok_or_else(|| ModuleError::LocalFile(format!("Could not find or access '{}' (searched files/ of the role and the playbook directory)", a.src)))?;
        if !dir.is_dir() {
            return Err(ModuleError::LocalFile(format!("Source ({}) is not a directory", dir.display())));
        }
        Some(read_local(&dir, a.decrypt != Some(false))?)
    };
    Ok(Assemble {
        src: a.src,
        dest: a.dest,
        local,
        delimiter: a.delimiter,
        regexp,
        ignore_hidden: a.ignore_hidden.unwrap_or(false),
        backup: a.backup.unwrap_or(false),
        validate,
        owner: a.owner.filter(|s| !s.is_empty()),
        group: a.group.filter(|s| !s.is_empty()),
        mode,
    })
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The regular files (links followed) of a controller directory.
fn read_local(dir: &std::path::Path, decrypt: bool) -> Result<Vec<Fragment>, ModuleError> {
    use std::os::unix::ffi::OsStrExt;
    let err = |p: &std::path::Path, e: std::io::Error| ModuleError::LocalFile(format!("assemble: cannot read {}: {e}", p.display()));
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let e = e.map_err(|e| err(dir, e))?;
        let path = e.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            let data = if decrypt { crate::vault::read_file(&path) } else { std::fs::read(&path) };
            out.push((e.file_name().as_bytes().to_vec(), data.map_err(|e| err(&path, e))?));
        }
    }
    Ok(out)
}

/// Python's `codecs.escape_decode`: `\\ \' \" \a \b \f \n \r \t \v`, octal `\ooo`, `\xhh`,
/// a backslash-newline dropped; other escapes kept as they are.
fn escape_decode(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let Some(&c) = s.get(i + 1) else { return Err("Trailing \\ in string".into()) };
        i += 2;
        match c {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(c),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hex = s.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(v) = hex else { return Err(format!("invalid \\x escape at position {}", i - 2)) };
                out.push(v);
                i += 2;
            }
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    Ok(out)
}

impl Assemble {
    /// The fragments used, in order.
    fn select(&self, mut frags: Vec<Fragment>) -> Vec<Fragment> {
        frags.sort_by(|a, b| a.0.cmp(&b.0));
        frags
            .into_iter()
            .filter(|(name, _)| self.regexp.as_ref().is_none_or(|re| re.is_match(&String::from_utf8_lossy(name))))
            .filter(|(name, _)| !(self.ignore_hidden && name.starts_with(b".")))
            .collect()
    }

    /// Ansible's `_assemble_from_fragments` (module and action plugin).
    fn assemble(&self, frags: &[Fragment]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut delimiter = self.delimiter.clone().map(String::into_bytes);
        let mut add_newline = false;
        for (i, (_, content)) in frags.iter().enumerate() {
            if add_newline {
                out.push(b'\n');
            }
            if i > 0 {
                if let Some(d) = delimiter.as_ref().filter(|d| !d.is_empty()) {
                    // Ansible decodes the (already decoded) delimiter again every time.
                    let d = escape_decode(d)?;
                    out.extend_from_slice(&d);
                    // The action plugin compares an int with b'\n': always a newline.
                    if self.local.is_some() || d.last() != Some(&b'\n') {
                        out.push(b'\n');
                    }
                    delimiter = Some(d);
                }
            }
            out.extend_from_slice(content);
            add_newline = !content.ends_with(b"\n");
        }
        Ok(out)
    }

    fn probe_script(&self) -> String {
        let globs = if self.ignore_hidden { "\"$s\"/*" } else { "\"$s\"/* \"$s\"/.[!.]* \"$s\"/..?*" };
        format!(
            "s={src}\n\
             if [ ! -e \"$s\" ]; then echo 'src|absent'\n\
             elif [ ! -d \"$s\" ]; then echo 'src|notdir'\n\
             else echo 'src|dir'; t=0\n\
             for f in {globs}; do [ -f \"$f\" ] || continue; z=$(stat -L -c %s -- \"$f\") || exit 1; t=$((t+z)); done\n\
             if [ \"$t\" -gt {MAX_DIFF_BYTES} ]; then echo \"toobig|$t\"; else\n\
             for f in {globs}; do [ -f \"$f\" ] || continue; n=$(printf '%s' \"${{f##*/}}\" | base64 -w0) && c=$(base64 -w0 < \"$f\") || exit 1; printf 'frag|%s|%s\\n' \"$n\" \"$c\"; done\n\
             fi\nfi\necho dest\np={dest}\n{stat}",
            src = sh_quote(&self.src),
            dest = sh_quote(&self.dest),
            stat = stat_lines(true),
        )
    }

    /// The fragments on the host from the probe's output (or why there are none), and the
    /// output of the `dest` part.
    fn parse_remote<'a>(&self, out: &'a str) -> Result<(Result<Vec<Fragment>, String>, &'a str), ModuleError> {
        let (head, dest) = out.split_once("dest\n").ok_or_else(|| ModuleError::Probe(format!("assemble: {out}")))?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| ModuleError::Probe(format!("assemble: fragment: {e}")));
        let mut frags = Vec::new();
        for line in head.lines() {
            match line.split('|').collect::<Vec<_>>()[..] {
                ["src", "absent"] => return Ok((Err(format!("Source ({}) does not exist", self.src)), dest)),
                ["src", "notdir"] => return Ok((Err(format!("Source ({}) is not a directory", self.src)), dest)),
                ["toobig", n] => {
                    return Ok((Err(format!("assemble: the files of {} total {n} bytes: more than the {MAX_DIFF_BYTES} bytes this module reads from a host (use remote_src: false)", self.src)), dest))
                }
                ["frag", n, c] => frags.push((b64(n)?, b64(c)?)),
                ["src", "dir"] => {}
                _ => return Err(ModuleError::Probe(format!("assemble: '{line}'"))),
            }
        }
        Ok((Ok(frags), dest))
    }
}

impl ModuleTask for Assemble {
    fn probes(&self) -> Vec<Probe> {
        if self.local.is_some() {
            return vec![super::common::file_probe(&self.dest, true)];
        }
        vec![Probe::new(self.probe_script(), Scope::Paths(vec![self.src.clone(), self.dest.clone()])).with_stat(&self.dest)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("assemble: no probe result".into()))?;
        let mut plan = Plan::ok();
        plan.result.insert("src".into(), json!(self.src));
        plan.result.insert("dest".into(), json!(self.dest));
        let (frags, dest_out) = match &self.local {
            Some(f) => (Ok(f.clone()), r.stdout.as_str()),
            None => {
                if r.rc != 0 {
                    return Err(ModuleError::Failed(format!("assemble: cannot read {}: {}", self.src, r.stderr.trim())));
                }
                self.parse_remote(&r.stdout)?
            }
        };
        let content = match frags.and_then(|f| self.assemble(&self.select(f))) {
            Ok(c) => c,
            Err(msg) => {
                plan.failed = Some(msg);
                return Ok(plan);
            }
        };
        let st = parse_file_state(&ProbeResult { stdout: dest_out.to_string(), stderr: r.stderr.clone(), rc: r.rc })?;
        plan.result.insert("checksum".into(), json!(hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&content))));
        plan.result.insert("md5sum".into(), json!(format!("{:x}", md5::compute(&content))));
        plan.result.insert("msg".into(), json!("OK"));
        match st.kind {
            FileKind::File | FileKind::Absent => {}
            FileKind::Link { .. } => {
                plan.failed = Some(format!("assemble: {} is a symbolic link: not supported (give the file it points to)", self.dest));
                return Ok(plan);
            }
            _ => {
                plan.failed = Some(format!("assemble: {} is a {}, not a regular file", self.dest, st.kind.name()));
                return Ok(plan);
            }
        }
        let (owner, group, mode) = (self.owner.as_deref(), self.group.as_deref(), self.mode.as_ref());
        if st.exists() && st.sha256.as_deref() == Some(sha256_hex(&content).as_str()) {
            let (diffs, action) = attributes_plan(&self.dest, &st, owner, group, mode, false);
            plan.diffs.extend(diffs);
            plan.actions.extend(action);
            return Ok(plan);
        }
        plan.diffs.push(content_diff(&self.dest, &st, &content));
        if self.backup && st.exists() {
            plan.actions.push(backup_action(&self.dest));
        }
        let write = if st.exists() {
            // Existing file: its owner, group and mode kept unless given.
            let (diffs, _) = attributes_plan(&self.dest, &st, owner, group, mode, false);
            plan.diffs.extend(diffs);
            let m = mode.map_or(st.mode, |m| m.resolve(st.mode, false));
            write_file_validated_action(&self.dest, &content, Some(owner.unwrap_or(&st.owner)), Some(group.unwrap_or(&st.group)), Some(m), None, self.validate.as_deref())
        } else {
            let octal = match mode {
                Some(Mode::Octal(m)) => Some(*m),
                _ => None,
            };
            write_file_validated_action(&self.dest, &content, owner, group, octal, None, self.validate.as_deref())
        };
        plan.actions.push(write);
        if let (false, Some(m @ Mode::Symbolic(_))) = (st.exists(), mode) {
            plan.actions.push(Action::new(format!("set mode of {}", self.dest), format!("chmod {} {}", chmod_arg(m), sh_quote(&self.dest)), Scope::path(&self.dest)));
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        record_backup(&mut plan, outputs);
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{apply, local_probes, ok};
    use super::*;

    fn task(v: Value) -> Assemble {
        build(v.as_object().unwrap(), None).unwrap()
    }

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// Probe output for a directory holding `frags` and a `dest` in state `dest`.
    fn probe(frags: &[(&str, &str)], dest: &str) -> ProbeResult {
        let mut s = String::from("src|dir\n");
        for (n, c) in frags {
            s.push_str(&format!("frag|{}|{}\n", b64(n.as_bytes()), b64(c.as_bytes())));
        }
        ok(&format!("{s}dest\n{dest}"))
    }

    fn file_state(content: &str) -> String {
        format!("file|root|root|0|0|644|{}|1\ncontent\n{}\n", content.len(), b64(content.as_bytes()))
    }

    /// The fragments of the ansible-core 2.19 check (directory order scrambled on purpose).
    const FRAGS: &[(&str, &str)] = &[("c", "three\n"), ("a", "one"), (".hidden", "h\n"), ("b", "two\n"), ("B", "X\n"), ("d_link", "three\n")];

    fn assembled(v: Value) -> String {
        let mut v = v;
        v["src"] = json!("/f");
        v["dest"] = json!("/out");
        let t = task(v);
        let p = t.plan(&[probe(FRAGS, "absent\n")]).unwrap();
        assert_eq!(p.failed, None);
        match &p.diffs[0] {
            super::super::Diff::Text { after: Some(a), .. } => a.clone(),
            d => panic!("{d:?}"),
        }
    }

    fn local(v: Value) -> Assemble {
        let mut v = v;
        v["src"] = json!("/f");
        v["dest"] = json!("/out");
        let mut t = task(v);
        t.local = Some(FRAGS.iter().map(|(n, c)| (n.as_bytes().to_vec(), c.as_bytes().to_vec())).collect());
        t
    }

    fn local_assembled(v: Value) -> String {
        let t = local(v);
        String::from_utf8(t.assemble(&t.select(t.local.clone().unwrap())).unwrap()).unwrap()
    }

    // Expected contents checked against ansible-core 2.19 (ansible-playbook, connection local).
    #[test]
    fn assembles_in_byte_order_with_a_newline_after_fragments_lacking_one() {
        assert_eq!(assembled(json!({})), "h\nX\none\ntwo\nthree\nthree\n");
    }

    #[test]
    fn delimiters_as_ansible_writes_them() {
        assert_eq!(assembled(json!({"delimiter": "### sep"})), "h\n### sep\nX\n### sep\none\n### sep\ntwo\n### sep\nthree\n### sep\nthree\n");
        assert_eq!(assembled(json!({"delimiter": "--\\n"})), "h\n--\nX\n--\none\n--\ntwo\n--\nthree\n--\nthree\n");
        // decoded again before every fragment after the second
        assert_eq!(assembled(json!({"delimiter": "<\\\\n>"})), "h\n<\\n>\nX\n<\n>\none\n<\n>\ntwo\n<\n>\nthree\n<\n>\nthree\n");
        assert_eq!(assembled(json!({"delimiter": "a\\tb\\x41\\q"})), "h\na\tbA\\q\nX\na\tbA\\q\none\na\tbA\\q\ntwo\na\tbA\\q\nthree\na\tbA\\q\nthree\n");
        // remote_src: false: always a newline after the delimiter
        assert_eq!(local_assembled(json!({"delimiter": "--\\n"})), "h\n--\n\nX\n--\n\none\n--\n\ntwo\n--\n\nthree\n--\n\nthree\n");
        assert_eq!(local_assembled(json!({"delimiter": "##"})), "h\n##\nX\n##\none\n##\ntwo\n##\nthree\n##\nthree\n");
        // a trailing backslash fails on the second decoding, as in Ansible
        let t = task(json!({"src": "/f", "dest": "/out", "delimiter": "x\\\\"}));
        assert_eq!(t.plan(&[probe(FRAGS, "absent\n")]).unwrap().failed.as_deref(), Some("Trailing \\ in string"));
        assert_eq!(escape_decode(b"\\101\\0\\x4").unwrap_err(), "invalid \\x escape at position 6");
        assert_eq!(escape_decode(b"\\101\\0z\\\n.").unwrap(), b"A\0z.");
    }

    #[test]
    fn regexp_and_ignore_hidden_filter_names() {
        assert_eq!(assembled(json!({"regexp": "[a-c]$"})), "one\ntwo\nthree\n");
        assert_eq!(assembled(json!({"regexp": "^[a-c.]", "ignore_hidden": true})), "one\ntwo\nthree\n");
        assert_eq!(assembled(json!({"ignore_hidden": "yes"})), "X\none\ntwo\nthree\nthree\n");
        let e = build(json!({"src": "/f", "dest": "/o", "regexp": "("}).as_object().unwrap(), None).unwrap_err().to_string();
        assert!(e.starts_with("Invalid Regexp (") && e.ends_with(") in \"(\""), "{e}");
        let e = build(json!({"src": "/f", "dest": "/o", "validate": "true"}).as_object().unwrap(), None).unwrap_err().to_string();
        assert_eq!(e, "validate must contain %s: true");
    }

    #[test]
    fn changes_only_when_content_or_attributes_differ() {
        let t = task(json!({"src": "/f", "dest": "/out", "regexp": "^[ab]$"}));
        let p = t.plan(&[probe(FRAGS, &file_state("one\ntwo\n"))]).unwrap();
        assert!(!p.changed() && p.diffs.is_empty(), "{:?}", p.diffs);
        assert_eq!(p.result["checksum"], json!(hex::encode(<sha1::Sha1 as sha1::Digest>::digest(b"one\ntwo\n"))));
        assert_eq!(p.result["md5sum"], json!(format!("{:x}", md5::compute(b"one\ntwo\n"))));
        assert_eq!(p.result["msg"], "OK");
        let t = task(json!({"src": "/f", "dest": "/out", "regexp": "^[ab]$", "mode": "0600", "backup": true}));
        let p = t.plan(&[probe(FRAGS, &file_state("one\ntwo\n"))]).unwrap();
        assert_eq!(p.actions.iter().map(|a| a.script.as_str()).collect::<Vec<_>>(), ["chmod 0600 /out"]);
        let p = t.plan(&[probe(FRAGS, &file_state("old\n"))]).unwrap();
        assert_eq!(p.actions.iter().map(|a| a.summary.as_str()).collect::<Vec<_>>(), ["back up /out", "write /out"]);
        assert_eq!(p.actions[1].stdin.as_deref(), Some(&b"one\ntwo\n"[..]));
        let p = t.plan(&[probe(FRAGS, "absent\n")]).unwrap();
        assert_eq!(p.actions.len(), 1, "no backup of a missing file");
    }

    #[test]
    fn host_errors_as_ansible_words_them() {
        let t = task(json!({"src": "/nope", "dest": "/out"}));
        assert_eq!(t.plan(&[ok("src|absent\ndest\nabsent\n")]).unwrap().failed.as_deref(), Some("Source (/nope) does not exist"));
        assert_eq!(t.plan(&[ok("src|notdir\ndest\nabsent\n")]).unwrap().failed.as_deref(), Some("Source (/nope) is not a directory"));
        assert!(t.plan(&[ok("src|dir\ntoobig|300000\ndest\nabsent\n")]).unwrap().failed.unwrap().contains("300000 bytes"));
        let p = t.plan(&[ok("src|dir\ndest\ndirectory|root|root|0|0|755|4096|1\n")]).unwrap();
        assert!(p.failed.unwrap().contains("not a regular file"));
    }

    /// The probe and actions run by `sh` on this machine.
    #[test]
    fn real_directory_roundtrip() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("frag d");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        for (n, c) in [("10-a b", "one"), ("20-x\ny", "two\n"), (".hidden", "h\n"), ("sub/no", "no\n")] {
            std::fs::write(src.join(n), c).unwrap();
        }
        std::os::unix::fs::symlink("10-a b", src.join("30-link")).unwrap();
        let dest = d.path().join("out").display().to_string();
        let t = task(json!({"src": src.display().to_string(), "dest": dest, "delimiter": "#", "mode": "u=rw,g=r,o=", "backup": true}));
        let p = apply(&t);
        assert!(p.changed());
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "h\n#\none\n#\ntwo\n#\none");
        assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o640);
        assert!(!t.plan(&local_probes(&t)).unwrap().changed(), "second run");
        let t = task(json!({"src": src.display().to_string(), "dest": dest, "ignore_hidden": true, "backup": true}));
        let p = apply(&t);
        let b = p.result["backup_file"].as_str().unwrap();
        assert_eq!(std::fs::read_to_string(b).unwrap(), "h\n#\none\n#\ntwo\n#\none");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "one\ntwo\none");
        assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o640, "mode kept");
        let t = task(json!({"src": src.join("sub/no").display().to_string(), "dest": dest}));
        assert!(t.plan(&local_probes(&t)).unwrap().failed.unwrap().ends_with("is not a directory"));
    }
}
