//! `replace`: replace every match of a Python-style regular expression in a text file, with
//! Ansible's semantics for `regexp` (MULTILINE), `replace` (Python's replacement template:
//! `\1`, `\g<1>`, `\g<name>`, `\n`...), and the `after`/`before` window (found with a DOTALL
//! search of `<after>(?P<subsection>.*?)<before>`, `<after>(?P<subsection>.*)` or
//! `(?P<subsection>.*)<before>`, as Ansible builds it; with `before` alone the window ends at
//! its *last* match, as in Ansible's code). The new content is computed here from the probed
//! content (the probe follows a final symlink, like Ansible writes the link's target) and
//! written atomically with `lineinfile`'s helpers, validated first when asked.
//!
//! Differences from Ansible:
//! - Patterns are compiled by the `regex` crate, not Python's `re`: no look-around and no
//!   backreferences inside the pattern (such patterns fail as invalid); `\Z` is translated.
//!   Without MULTILINE (the `after`/`before` window), `$` matches only at the very end, where
//!   Python's also matches before a final newline.
//! - The replacement template is checked (bad escapes, references to groups the pattern lacks)
//!   before the host is probed, so such errors are argument errors even for a missing file.
//! - After an empty match, the next match is searched from the next character; Python's `re`
//!   would first try a non-empty match at the same position (only differs for patterns whose
//!   preferred match there is empty while another alternative is not).
//! - `encoding` only accepts UTF-8 (and its Python aliases); files that are not UTF-8, or larger
//!   than 256 KiB, fail. The file's bytes are kept as they are: Ansible's text-mode read turns
//!   `\r\n` into `\n` when it rewrites a file.
//! - `attributes` (chattr) are rejected; SELinux contexts, `unsafe_writes` and `follow` are
//!   accepted and ignored (writes are always atomic, a final symlink is always followed).
//! - A failed `validate` reports "validation failed: ..." rather than "failed to validate: rc:...".

use super::args::{self, opt_boolish, opt_string};
use super::lineinfile::{current_text, edit_plan, parse_text_file, py_regex, record_backup, text_file_probe, FileArgs};
use super::{ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct ReplaceModule;

const PARAMS: &[&str] = &[
    "path",
    "dest",
    "destfile",
    "name",
    "regexp",
    "replace",
    "after",
    "before",
    "backup",
    "validate",
    "encoding",
    "owner",
    "group",
    "mode",
    "unsafe_writes",
    "attributes",
    "attr",
    "seuser",
    "serole",
    "setype",
    "selevel",
    "follow",
];

// No deny_unknown_fields: serde does not support it with `flatten`; args::parse checks names.
#[derive(Deserialize, Debug)]
struct Args {
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    path: String,
    #[serde(default, deserialize_with = "opt_string")]
    regexp: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    replace: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    after: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    before: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    encoding: Option<String>,
    #[serde(flatten)]
    file: FileArgs,
}

#[derive(Debug)]
struct ReplaceTask {
    path: String,
    regexp: regex::Regex,
    /// The replacement in the `regex` crate's template syntax (see [`py_template`]).
    template: String,
    /// The `after`/`before` window: the compiled DOTALL search and Ansible's pattern text (for
    /// its "did not match" message).
    window: Option<(regex::Regex, String)>,
    backup: bool,
    file: FileArgs,
}

module_impl!(ReplaceModule, "replace");

/// Python codec names for UTF-8 (`codecs.lookup` normalises case, `-` and spaces).
fn utf8_encoding(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    matches!(n.as_str(), "utf_8" | "utf8" | "u8" | "utf" | "utf8_ucs2" | "utf8_ucs4" | "cp65001")
}

fn build(args: &Map<String, Value>) -> Result<ReplaceTask, ModuleError> {
    let a: Args = args::parse("replace", PARAMS, args)?;
    a.file.check("replace")?;
    let regexp = a
        .regexp
        .ok_or_else(|| ModuleError::Args("replace: missing required arguments: regexp".into()))?;
    if let Some(e) = a.encoding.as_deref().filter(|e| !utf8_encoding(e)) {
        return Err(ModuleError::Args(format!("replace: encoding '{e}' is not supported (only utf-8)")));
    }
    let regexp = py_regex("replace", "regexp", &format!("(?m){regexp}"))?;
    let template = py_template(a.replace.as_deref().unwrap_or(""), &regexp)
        .map_err(|e| ModuleError::Args(format!("replace: Unable to process replace due to error: {e}")))?;
    // Ansible treats empty after/before as not given.
    let after = a.after.filter(|s| !s.is_empty());
    let before = a.before.filter(|s| !s.is_empty());
    let pattern = match (&after, &before) {
        (Some(a), Some(b)) => Some(format!("{a}(?P<subsection>.*?){b}")),
        (Some(a), None) => Some(format!("{a}(?P<subsection>.*)")),
        (None, Some(b)) => Some(format!("(?P<subsection>.*){b}")),
        (None, None) => None,
    };
    let window = pattern
        .map(|p| py_regex("replace", "after/before", &format!("(?s){p}")).map(|re| (re, p)))
        .transpose()?;
    Ok(ReplaceTask {
        path: a.path,
        regexp,
        template,
        window,
        backup: a.backup.unwrap_or(false),
        file: a.file,
    })
}

/// Translate a Python `re` replacement template (`re.sub`'s `repl`) into the `regex` crate's
/// (`$`-based) syntax: `\1`..`\99` and `\g<1>` become `${1}`, `\g<name>` the named group's
/// `${index}` (any name `re` accepts, whatever characters `regex` allows in `${name}`), the
/// escapes `\a \b \f \n \r \t \v \\` and octal `\0`, `\012` their characters, a literal `$`
/// `$$`; other escapes of non-letters stay as written (backslash included), as in Python.
/// Errors are Python's, for templates it rejects.
pub(crate) fn py_template(repl: &str, re: &regex::Regex) -> Result<String, String> {
    let chars: Vec<char> = repl.chars().collect();
    let groups = re.captures_len(); // including group 0
    let mut out = String::new();
    let group_ref = |out: &mut String, index: usize, pos: usize| -> Result<(), String> {
        if index >= groups {
            return Err(format!("invalid group reference {index} at position {pos}"));
        }
        out.push_str(&format!("${{{index}}}"));
        Ok(())
    };
    let octal = |c: char| ('0'..='7').contains(&c);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            out.push_str("$$");
            i += 1;
            continue;
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&n) = chars.get(i + 1) else {
            return Err(format!("bad escape (end of pattern) at position {i}"));
        };
        i += 2;
        match n {
            'g' => {
                if chars.get(i) != Some(&'<') {
                    return Err(format!("missing < at position {i}"));
                }
                let start = i + 1;
                let Some(len) = chars[start..].iter().position(|&c| c == '>') else {
                    return Err(format!("missing >, unterminated name at position {start}"));
                };
                let name: String = chars[start..start + len].iter().collect();
                if name.is_empty() {
                    return Err(format!("missing group name at position {start}"));
                }
                i = start + len + 1;
                if name.bytes().all(|b| b.is_ascii_digit()) {
                    let index = name.parse::<usize>().unwrap_or(usize::MAX);
                    group_ref(&mut out, index, start)?;
                } else if is_identifier(&name) {
                    let index = re
                        .capture_names()
                        .position(|n| n == Some(name.as_str()))
                        .ok_or_else(|| format!("unknown group name '{name}'"))?;
                    out.push_str(&format!("${{{index}}}"));
                } else {
                    return Err(format!("bad character in group name '{name}' at position {start}"));
                }
            }
            '0' => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match chars.get(i) {
                        Some(&d) if octal(d) => {
                            v = v * 8 + d.to_digit(8).unwrap_or(0);
                            i += 1;
                        }
                        _ => break,
                    }
                }
                push_literal(&mut out, char::from_u32(v & 0xff).unwrap_or('\0'));
            }
            '1'..='9' => {
                let pos = i - 1;
                match chars.get(i) {
                    Some(&d2) if d2.is_ascii_digit() => {
                        if octal(n) && octal(d2) && chars.get(i + 1).is_some_and(|&d3| octal(d3)) {
                            let s: String = chars[i - 1..i + 2].iter().collect();
                            let v = u32::from_str_radix(&s, 8).unwrap_or(0);
                            if v > 0o377 {
                                return Err(format!("octal escape value \\{s} outside of range 0-0o377 at position {}", pos - 1));
                            }
                            push_literal(&mut out, char::from_u32(v).unwrap_or('\0'));
                            i += 2;
                        } else {
                            let index = (n as usize - '0' as usize) * 10 + (d2 as usize - '0' as usize);
                            group_ref(&mut out, index, pos)?;
                            i += 1;
                        }
                    }
                    _ => group_ref(&mut out, n as usize - '0' as usize, pos)?,
                }
            }
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            c if c.is_ascii_alphabetic() => return Err(format!("bad escape \\{c} at position {}", i - 2)),
            c => {
                out.push('\\');
                push_literal(&mut out, c);
            }
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '$' {
        out.push_str("$$");
    } else {
        out.push(c);
    }
}

/// Python's `str.isidentifier` (close enough: a letter or `_`, then letters, digits or `_`).
fn is_identifier(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && cs.all(|c| c == '_' || c.is_alphanumeric())
}

/// Python's `re.subn(re, repl, text)`: every match replaced by `template` (already translated by
/// [`py_template`]), with Python's rules for empty matches (one is replaced right after a
/// non-empty match, never twice at the same place): (new text, number of replacements).
pub(crate) fn py_subn(re: &regex::Regex, template: &str, text: &str) -> (String, usize) {
    let mut out = String::new();
    let mut copied = 0; // text[..copied] is in `out`
    let mut pos = 0; // where the next search starts
    let mut count = 0;
    while pos <= text.len() {
        let Some(caps) = re.captures_at(text, pos) else { break };
        let m = caps.get(0).expect("group 0 always matches");
        out.push_str(&text[copied..m.start()]);
        caps.expand(template, &mut out);
        copied = m.end();
        count += 1;
        pos = if m.is_empty() {
            // The next match must not be empty here again: search from the next character.
            match text[m.end()..].chars().next() {
                Some(c) => m.end() + c.len_utf8(),
                None => break,
            }
        } else {
            m.end()
        };
    }
    out.push_str(&text[copied..]);
    (out, count)
}

impl ModuleTask for ReplaceTask {
    fn probes(&self) -> Vec<Probe> {
        vec![text_file_probe(&self.path)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let (real, st) = parse_text_file(
            &self.path,
            probes.first().ok_or_else(|| ModuleError::Probe("missing file probe".into()))?,
        )?;
        let contents = current_text("replace", &self.path, &st)?
            .ok_or_else(|| ModuleError::Failed(format!("Path {} does not exist !", self.path)))?;
        let mut plan = Plan::ok();
        plan.result.insert("rc".into(), json!(0));
        let (lo, hi) = match &self.window {
            None => (0, contents.len()),
            Some((re, pattern)) => match re.captures(&contents).and_then(|c| c.name("subsection")) {
                Some(m) => (m.start(), m.end()),
                None => {
                    // Ansible exits here: no attribute changes either.
                    let msg = format!("Pattern for before/after params did not match the given file: {pattern}");
                    plan.result.insert("msg".into(), json!(msg));
                    plan.msg = Some(msg);
                    return Ok(plan);
                }
            },
        };
        let section = &contents[lo..hi];
        let (replaced, count) = py_subn(&self.regexp, &self.template, section);
        let changed = count > 0 && replaced != section;
        let new = changed.then(|| format!("{}{replaced}{}", &contents[..lo], &contents[hi..]));
        let (diffs, actions) = edit_plan(&self.path, &real, &st, new.as_deref(), &self.file, self.backup);
        let mut msg = if changed { format!("{count} replacements made") } else { String::new() };
        if diffs.iter().any(|d| matches!(d, Diff::Field { .. })) {
            if changed {
                msg.push_str(" and ");
            }
            msg.push_str("ownership, perms or SE linux context changed");
        }
        plan.result.insert("msg".into(), json!(msg));
        plan.msg = (!msg.is_empty()).then_some(msg);
        plan.diffs = diffs;
        plan.actions = actions;
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        record_backup(&mut plan, outputs);
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lineinfile::tests::{absent, file};
    use super::super::testutil::{self, assert_sh_syntax, ok};
    use super::*;

    fn t(v: Value) -> ReplaceTask {
        let mut v = v;
        v.as_object_mut().unwrap().insert("path".into(), json!("/etc/x.conf"));
        build(v.as_object().unwrap()).unwrap()
    }
    fn build_err(v: Value) -> String {
        let mut v = v;
        v.as_object_mut().unwrap().insert("path".into(), json!("/etc/x.conf"));
        build(v.as_object().unwrap()).unwrap_err().to_string()
    }
    /// Resulting file content (None = no write).
    fn run(v: Value, content: &str) -> Option<String> {
        let p = t(v).plan(&[file(content)]).unwrap();
        for a in &p.actions {
            assert_sh_syntax(&a.script);
        }
        p.actions
            .iter()
            .find(|a| a.summary.starts_with("write"))
            .map(|a| String::from_utf8(a.stdin.clone().unwrap()).unwrap())
    }

    #[test]
    fn replaces_every_match_and_reports_the_count() {
        let task = t(json!({"regexp": "old", "replace": "new"}));
        let p = task.plan(&[file("old a\nb old old\n")]).unwrap();
        assert_eq!(p.msg.as_deref(), Some("3 replacements made"));
        assert_eq!(p.result["msg"], json!("3 replacements made"));
        assert_eq!(p.result["rc"], json!(0));
        assert!(p.changed());
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"new a\nb new new\n"[..]));
        assert_eq!(
            p.diffs,
            vec![Diff::Text {
                path: "/etc/x.conf".into(),
                before: Some("old a\nb old old\n".into()),
                after: Some("new a\nb new new\n".into()),
            }]
        );
        assert_sh_syntax(&p.actions[0].script);
        // The existing mode is kept on the rewritten file.
        assert!(p.actions[0].script.contains("chmod 0644 \"$tmp\""), "{}", p.actions[0].script);
        // `replace` defaults to empty: matches are removed.
        assert_eq!(run(json!({"regexp": " ?old"}), "old a old\n").unwrap(), " a\n");
        // A number given in YAML is a string.
        assert_eq!(run(json!({"regexp": 8080, "replace": 8081}), "port=8080\n").unwrap(), "port=8081\n");
    }

    #[test]
    fn no_match_is_ok_without_actions() {
        let p = t(json!({"regexp": "^nomatch", "replace": "x"})).plan(&[file("a\nb\n")]).unwrap();
        assert!(p.actions.is_empty() && p.diffs.is_empty() && !p.changed());
        assert_eq!(p.msg, None);
        assert_eq!(p.result["msg"], json!(""));
        // Matches whose replacement is the same text change nothing either (Ansible).
        let p = t(json!({"regexp": "(a)", "replace": "\\1"})).plan(&[file("a\n")]).unwrap();
        assert!(p.actions.is_empty());
        assert_eq!(p.result["msg"], json!(""));
    }

    #[test]
    fn backreferences_numbered_and_named() {
        let c = "listen_addresses = 'localhost'\nport = 5432\n";
        assert_eq!(
            run(json!({"regexp": "^(listen_addresses) = .*$", "replace": "\\1 = '*'"}), c).unwrap(),
            "listen_addresses = '*'\nport = 5432\n"
        );
        assert_eq!(
            run(json!({"regexp": "^(?P<key>\\w+) = (?P<val>\\d+)$", "replace": "\\g<key>=\\g<val>\\g<0>"}), c).unwrap(),
            "listen_addresses = 'localhost'\nport=5432port = 5432\n"
        );
        assert_eq!(run(json!({"regexp": "(\\d+)", "replace": "[\\g<1>]0"}), c).unwrap(), "listen_addresses = 'localhost'\nport = [5432]0\n");
        // A group that did not take part is empty (Python 3.5+).
        assert_eq!(run(json!({"regexp": "(a)|b", "replace": "[\\1]"}), "ab\n").unwrap(), "[a][]\n");
        // Escapes and octal; `\.` stays as written.
        assert_eq!(run(json!({"regexp": "x", "replace": "1\\n2\\t3\\\\4\\.5\\0416"}), "x").unwrap(), "1\n2\t3\\4\\.5!6");
    }

    #[test]
    fn dollar_in_the_replacement_is_literal() {
        assert_eq!(
            run(json!({"regexp": "^(PATH)=.*$", "replace": "\\1=$HOME/bin:${PATH}:$1"}), "PATH=/usr/bin\n").unwrap(),
            "PATH=$HOME/bin:${PATH}:$1\n"
        );
        assert_eq!(run(json!({"regexp": "price", "replace": "\\$5"}), "price\n").unwrap(), "\\$5\n");
    }

    #[test]
    fn bad_templates_fail_as_python_does() {
        assert!(build_err(json!({"regexp": "a", "replace": "\\1"})).contains("invalid group reference 1 at position 1"));
        assert!(build_err(json!({"regexp": "(a)", "replace": "x\\g<2>"})).contains("invalid group reference 2 at position 4"));
        assert!(build_err(json!({"regexp": "(a)", "replace": "\\g<nope>"})).contains("unknown group name 'nope'"));
        assert!(build_err(json!({"regexp": "(a)", "replace": "\\q"})).contains("bad escape \\q"));
        assert!(build_err(json!({"regexp": "(a)", "replace": "x\\"})).contains("bad escape (end of pattern)"));
        assert!(build_err(json!({"regexp": "(a", "replace": ""})).contains("invalid regexp"));
        assert!(build_err(json!({"replace": "x"})).contains("missing required arguments: regexp"));
        assert!(build_err(json!({"regexp": "a", "encoding": "latin-1"})).contains("encoding"));
        assert!(build_err(json!({"regexp": "a", "validate": "visudo -c"})).contains("%s"));
        for e in ["utf-8", "UTF8", "utf_8", "U8"] {
            t(json!({"regexp": "a", "encoding": e}));
        }
    }

    #[test]
    fn multiline_anchors_match_at_line_boundaries() {
        let c = "a=1\n#b=2\nc=3 # not a comment\n";
        assert_eq!(run(json!({"regexp": "^#", "replace": ""}), c).unwrap(), "a=1\nb=2\nc=3 # not a comment\n");
        assert_eq!(run(json!({"regexp": "=(\\d)$", "replace": "=\\1;"}), c).unwrap(), "a=1;\n#b=2;\nc=3 # not a comment\n");
        // Python's results, empty matches included (`^` after the final newline matches too).
        let p = t(json!({"regexp": "^", "replace": "#"})).plan(&[file("a\nb\n")]).unwrap();
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"#a\n#b\n#"[..]));
        assert_eq!(p.msg.as_deref(), Some("3 replacements made"));
        assert_eq!(py_subn(&regex::Regex::new("x*").unwrap(), "-", "abxd"), ("-a-b--d-".into(), 5));
        assert_eq!(py_subn(&regex::Regex::new("(?m)x*$").unwrap(), "Y", "ax\n"), ("aYY\nY".into(), 3));
        assert_eq!(py_subn(&regex::Regex::new("(?m)\\s*$").unwrap(), "", "a  \nb \n"), ("a\nb".into(), 4));
        assert_eq!(py_subn(&regex::Regex::new("é*").unwrap(), "-", "aé"), ("-a--".into(), 3));
    }

    #[test]
    fn after_and_before_limit_the_window() {
        let c = "x=1\n[main]\nx=2\nx=3\n[other]\nx=4\n";
        assert_eq!(
            run(json!({"regexp": "^x=", "replace": "y=", "after": "\\[main\\]"}), c).unwrap(),
            "x=1\n[main]\ny=2\ny=3\n[other]\ny=4\n"
        );
        // `before` alone: up to its last match (Ansible's greedy `(?P<subsection>.*)<before>`).
        assert_eq!(
            run(json!({"regexp": "^x=", "replace": "y=", "before": "\\[other\\]"}), c).unwrap(),
            "y=1\n[main]\ny=2\ny=3\n[other]\nx=4\n"
        );
        assert_eq!(
            run(json!({"regexp": "^x=", "replace": "y=", "before": "\\["}), c).unwrap(),
            "y=1\n[main]\ny=2\ny=3\n[other]\nx=4\n"
        );
        // Both: between the first `after` and the next `before` (DOTALL spans lines).
        assert_eq!(
            run(json!({"regexp": "^x=", "replace": "y=", "after": "\\[main\\]\\n", "before": "\\[other\\]"}), c).unwrap(),
            "x=1\n[main]\ny=2\ny=3\n[other]\nx=4\n"
        );
        // The window is its own text: `^` matches at its start, even mid-line.
        assert_eq!(run(json!({"regexp": "^", "replace": ">", "after": "x=1", "before": "\\n"}), "x=1 a\n").unwrap(), "x=1> a\n");
        // Empty after/before are not given.
        assert_eq!(run(json!({"regexp": "^x=4", "replace": "z", "after": "", "before": ""}), c).unwrap(), "x=1\n[main]\nx=2\nx=3\n[other]\nz\n");
        // No window: ok, Ansible's message, no attribute change either.
        let p = t(json!({"regexp": "x", "after": "\\[nope\\]", "before": "\\[other\\]", "mode": "0600"})).plan(&[file(c)]).unwrap();
        assert!(p.actions.is_empty() && !p.changed());
        assert_eq!(
            p.result["msg"],
            json!("Pattern for before/after params did not match the given file: \\[nope\\](?P<subsection>.*?)\\[other\\]")
        );
    }

    #[test]
    fn missing_file_or_directory_fails() {
        let e = t(json!({"regexp": "a"})).plan(&[absent()]).unwrap_err();
        assert!(matches!(e, ModuleError::Failed(_)));
        assert_eq!(e.to_string(), "Path /etc/x.conf does not exist !");
        let dir = ok("real|/etc/x.conf\ndirectory|root|root|0|0|755|4096|1\n");
        assert_eq!(t(json!({"regexp": "a"})).plan(&[dir]).unwrap_err().to_string(), "Path /etc/x.conf is a directory !");
    }

    #[test]
    fn validate_backup_and_attributes() {
        let task = t(json!({"regexp": "a", "replace": "b", "validate": "visudo -cf %s", "backup": true, "owner": "app", "mode": "0600"}));
        let p = task.plan(&[file("a\n")]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions[0].summary.starts_with("back up"));
        let w = &p.actions[1].script;
        assert!(w.contains("visudo -cf \"$tmp\""), "{w}");
        assert!(w.contains("chmod 0600 \"$tmp\"") && w.contains("chown app \"$tmp\""), "{w}");
        for a in &p.actions {
            assert_sh_syntax(&a.script);
        }
        assert_eq!(p.msg.as_deref(), Some("1 replacements made and ownership, perms or SE linux context changed"));
        // Validation that fails leaves the file alone (run here on a temp file).
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.conf");
        std::fs::write(&f, "a\n").unwrap();
        let t2 = build(json!({"path": f.to_str().unwrap(), "regexp": "a", "replace": "b", "validate": "grep -q nope %s"}).as_object().unwrap()).unwrap();
        let p = t2.plan(&testutil::local_probes(&t2)).unwrap();
        let (rc, _, err) = testutil::sh(&p.actions[0].script, p.actions[0].stdin.as_deref());
        assert_ne!(rc, 0);
        assert!(err.contains("validation failed"), "{err}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "a\n");
        // Content unchanged, mode differs: only the attribute change.
        let p = t(json!({"regexp": "zzz", "mode": "0600"})).plan(&[file("a\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].script, "chmod 0600 /etc/x.conf");
        assert_eq!(p.msg.as_deref(), Some("ownership, perms or SE linux context changed"));
        assert!(build_err(json!({"regexp": "a", "attributes": "+i"})).contains("not supported"));
    }

    #[test]
    fn applies_here_and_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sshd_config");
        std::fs::write(&f, "#PermitRootLogin yes\nPasswordAuthentication yes\n").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let task = build(
            json!({"path": link.to_str().unwrap(), "regexp": "^#?(PermitRootLogin|PasswordAuthentication) yes$", "replace": "\\1 no", "backup": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = testutil::apply(&task);
        assert_eq!(p.msg.as_deref(), Some("2 replacements made"));
        let backup = p.result["backup_file"].as_str().unwrap().to_string();
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), "#PermitRootLogin yes\nPasswordAuthentication yes\n");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "PermitRootLogin no\nPasswordAuthentication no\n");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(testutil::apply(&task).actions.is_empty());
    }

    #[test]
    fn registered() {
        assert_eq!(super::super::lookup("ansible.builtin.replace").map(|m| m.name()), Some("replace"));
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn replace_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run(
            "rm -f /tmp/ms-rp*; printf 'a=1\\n#b=2\\n[s]\\nc=$x\\n' > /tmp/ms-rp.conf; chmod 640 /tmp/ms-rp.conf",
            None,
        );
        let t = build(
            json!({"path": "/tmp/ms-rp.conf", "regexp": "^#?(?P<k>[a-z])=(\\d)$", "replace": "\\g<k>=$\\2", "before": "\\[s\\]", "backup": true, "validate": "grep -q 'b=\\$2' %s"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed(), "{first:?}");
        assert_eq!(first.msg.as_deref(), Some("2 replacements made"));
        assert!(first.result.contains_key("backup_file"), "{:?}", first.result);
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let o = testhost::run("cat /tmp/ms-rp.conf; stat -c %a /tmp/ms-rp.conf", None);
        assert_eq!(o.stdout_str(), "a=$1\nb=$2\n[s]\nc=$x\n640\n");
        // A failing validation leaves the file alone.
        let t = build(json!({"path": "/tmp/ms-rp.conf", "regexp": "c", "replace": "d", "validate": "false %s"}).as_object().unwrap()).unwrap();
        let p = testhost::plan(&t);
        let o = testhost::run(&p.actions[0].script, p.actions[0].stdin.as_deref());
        assert_ne!(o.exit_code, 0);
        assert_eq!(testhost::run("cat /tmp/ms-rp.conf", None).stdout_str(), "a=$1\nb=$2\n[s]\nc=$x\n");
        // A missing file fails.
        let t = build(json!({"path": "/tmp/ms-rp-missing", "regexp": "a"}).as_object().unwrap()).unwrap();
        let probes: Vec<ProbeResult> = t
            .probes()
            .iter()
            .map(|p| {
                let o = testhost::run(&p.script, None);
                ProbeResult { stdout: o.stdout_str(), stderr: o.stderr_str(), rc: o.exit_code }
            })
            .collect();
        assert_eq!(t.plan(&probes).unwrap_err().to_string(), "Path /tmp/ms-rp-missing does not exist !");
        testhost::run("rm -f /tmp/ms-rp*", None);
    }
}
