//! `ini_file` (community.general): set, change or remove one option (or a whole section) of an
//! INI-style file, with community.general's line rules: sections are found by `[ name ]`
//! headers (spaces inside the brackets and text after them allowed; the first section of that
//! name is used, or with `section_has_values` the first one holding those options), options by
//! `option = value` lines with any spaces around `=`, and a commented-out `# option` or
//! `; option` is taken over when `modify_inactive_option` is true. New options go after the
//! section's last line that is neither blank nor a comment, a missing section at the end of the
//! file, an option without `section` above the first section. A missing final newline is added
//! (a change of its own, msg `OK`), a UTF-8 BOM is dropped and `\r\n`/`\r` line ends become
//! `\n` in a file that is written, as Python reads and writes it. `msg` is the module's own
//! (`option added`, `option changed`, `section and option added`, `only section added`,
//! `section removed`, `OK`). The new content is computed here from the probed file and written
//! atomically through `lineinfile`'s helpers (backup, owner/group/mode, diffs).
//!
//! Differences from Ansible:
//! - `state: absent` with neither `section` nor `option` is refused: Ansible then removes the
//!   lines above the first section *and that section's header*.
//! - `value`/`values` without `option` under `state: present` (and `allow_no_value: false`)
//!   is refused: Ansible adds only the section when it is missing and crashes once it exists.
//! - `attributes` (chattr) are refused, as in `lineinfile`; SELinux contexts and
//!   `unsafe_writes` are accepted and ignored.
//! - With `follow: false` (the default) a symlink at `path` is replaced by a regular file on
//!   write, as Ansible does; owner/group/mode then apply to the file the link pointed to when
//!   nothing else changes (Ansible tries to set them on the link itself).
//! - Parent directories of a missing file are created only when the file is written (Ansible
//!   creates them on any run that is not in check mode); check mode also predicts owner, group
//!   and mode changes (Ansible's check mode only reports content changes).
//! - Files over 256 KiB or not UTF-8 fail (Ansible reads them).

use super::args::{self, opt_boolish, opt_string};
use super::lineinfile::{current_text, edit_plan, parse_text_file, record_backup, text_file_probe, FileArgs};
use super::{ActionOutput, ModuleError, ModuleTask, Plan, Probe, ProbeResult};
use regex::Regex;
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct IniFileModule;

const PARAMS: &[&str] = &[
    "path",
    "dest",
    "section",
    "section_has_values",
    "option",
    "value",
    "values",
    "state",
    "exclusive",
    "backup",
    "create",
    "no_extra_spaces",
    "ignore_spaces",
    "allow_no_value",
    "modify_inactive_option",
    "follow",
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
];

// No deny_unknown_fields: serde does not support it with `flatten`; args::parse checks names.
#[derive(Deserialize, Debug)]
struct Args {
    #[serde(alias = "dest")]
    path: String,
    #[serde(default, deserialize_with = "opt_string")]
    section: Option<String>,
    #[serde(default)]
    section_has_values: Option<Vec<HasValuesArg>>,
    #[serde(default, deserialize_with = "opt_string")]
    option: Option<String>,
    #[serde(default, deserialize_with = "opt_py_str")]
    value: Option<String>,
    #[serde(default, deserialize_with = "opt_py_list")]
    values: Option<Vec<String>>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    exclusive: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    create: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    no_extra_spaces: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    ignore_spaces: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    allow_no_value: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    modify_inactive_option: Option<bool>,
    #[serde(flatten)]
    file: FileArgs,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct HasValuesArg {
    #[serde(deserialize_with = "py_str")]
    option: String,
    #[serde(default, deserialize_with = "opt_py_str")]
    value: Option<String>,
    #[serde(default, deserialize_with = "opt_py_list")]
    values: Option<Vec<String>>,
}

/// A scalar as Ansible's `type: str` makes it: Python's `str()` (`True`, not `true`).
fn py_scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::Bool(true) => Ok("True".into()),
        Value::Bool(false) => Ok("False".into()),
        other => args::scalar_string(other),
    }
}

fn py_str<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    py_scalar(&Value::deserialize(d)?).map_err(D::Error::custom)
}

fn opt_py_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => py_scalar(&v).map(Some).map_err(D::Error::custom),
    }
}

/// A list of strings: a YAML list, or a string split on commas (Ansible's `type: list`).
fn opt_py_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(a) => a.iter().map(py_scalar).collect::<Result<_, _>>().map(Some).map_err(D::Error::custom),
        Value::String(s) => Ok(Some(s.split(',').map(str::to_string).collect())),
        v => py_scalar(&v).map(|s| Some(vec![s])).map_err(D::Error::custom),
    }
}

/// One `section_has_values` condition: the section holds `option` (with one of `values`, if any).
#[derive(Debug)]
struct Condition {
    option: String,
    values: Vec<String>,
    re: Regex,
}

#[derive(Debug)]
struct IniTask {
    path: String,
    /// None: the lines above the first section.
    section: Option<String>,
    has_values: Option<Vec<Condition>>,
    option: Option<String>,
    values: Vec<String>,
    present: bool,
    exclusive: bool,
    backup: bool,
    create: bool,
    no_extra_spaces: bool,
    ignore_spaces: bool,
    allow_no_value: bool,
    modify_inactive: bool,
    follow: bool,
    file: FileArgs,
}

module_impl!(IniFileModule, "ini_file");

/// Name of the section standing for the lines above the first section (community.general's).
const TOP: &str = "ad01e11446efb704fcdbdb21f2c43757423d91c5";

/// An option line, perhaps commented out (`inactive`): groups as community.general's
/// `match_opt` (2: the comment mark, 8: the value).
fn option_regex(option: &str, inactive: bool) -> Regex {
    let o = regex::escape(option);
    let head = if inactive { "( |\\t)*([#;]?)" } else { "()()" };
    Regex::new(&format!("^{head}( |\\t)*({o})( |\\t)*(=|$)( |\\t)*(.*)")).expect("escaped option makes a valid regex")
}

/// A line without its final `\n` (Python's `$` also matches before it, ours only at the end).
fn body(l: &str) -> &str {
    l.strip_suffix('\n').unwrap_or(l)
}

fn build(args: &Map<String, Value>) -> Result<IniTask, ModuleError> {
    let a: Args = args::parse("ini_file", PARAMS, args)?;
    a.file.check("ini_file")?;
    let present = args::present_state("ini_file", a.state.as_deref())?;
    if a.value.is_some() && a.values.is_some() {
        return Err(ModuleError::Args("ini_file: parameters are mutually exclusive: value|values".into()));
    }
    let allow_no_value = a.allow_no_value.unwrap_or(false);
    if present && !allow_no_value && a.value.is_none() && a.values.as_ref().is_none_or(Vec::is_empty) {
        return Err(ModuleError::Args(
            "ini_file: Parameter 'value(s)' must be defined if state=present and allow_no_value=False.".into(),
        ));
    }
    let section = a.section.filter(|s| !s.is_empty());
    let option = a.option.filter(|o| !o.is_empty());
    let mut values: Vec<String> = Vec::new();
    for v in a.value.map(|v| vec![v]).or(a.values).unwrap_or_default() {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    if present && option.is_none() && !allow_no_value && !values.is_empty() {
        return Err(ModuleError::Args(
            "ini_file: option is required with value or values (Ansible adds only the section when it is missing and fails once it exists)".into(),
        ));
    }
    if !present && section.is_none() && option.is_none() {
        return Err(ModuleError::Args(
            "ini_file: state=absent needs a section or an option (refused: Ansible would remove the lines above the first section and that section's header)".into(),
        ));
    }
    let has_values = a
        .section_has_values
        .map(|cs| {
            cs.into_iter()
                .map(|c| {
                    if c.value.is_some() && c.values.is_some() {
                        return Err(ModuleError::Args(
                            "ini_file: section_has_values: parameters are mutually exclusive: value|values".into(),
                        ));
                    }
                    Ok(Condition {
                        re: option_regex(&c.option, true),
                        option: c.option,
                        values: c.value.map(|v| vec![v]).or(c.values).unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(IniTask {
        path: a.path,
        section,
        has_values,
        option,
        values,
        present,
        exclusive: a.exclusive.unwrap_or(true),
        backup: a.backup.unwrap_or(false),
        create: a.create.unwrap_or(true),
        no_extra_spaces: a.no_extra_spaces.unwrap_or(false),
        ignore_spaces: a.ignore_spaces.unwrap_or(false),
        allow_no_value,
        modify_inactive: a.modify_inactive_option.unwrap_or(true),
        follow: a.file.follow.unwrap_or(false),
        file: a.file,
    })
}

/// What an edit comes to: the new content, whether the module counts it as a change (a file
/// read with `\r\n` line ends is not rewritten for that alone), and Ansible's `msg`.
#[derive(Debug, PartialEq, Eq)]
struct Edit {
    content: String,
    changed: bool,
    msg: &'static str,
}

/// Lines as Python reads the file (`utf-8-sig`, universal newlines): BOM dropped, `\r\n` and
/// `\r` turned into `\n`, each line keeping its `\n`.
fn read_lines(text: &str) -> Vec<String> {
    let t = text.strip_prefix('\u{feff}').unwrap_or(text);
    let t = t.replace("\r\n", "\n").replace('\r', "\n");
    t.split_inclusive('\n').map(str::to_string).collect()
}

impl IniTask {
    fn assignment(&self, option: &str, value: &str) -> String {
        if self.no_extra_spaces {
            format!("{option}={value}\n")
        } else {
            format!("{option} = {value}\n")
        }
    }

    /// Does a section's lines satisfy every `section_has_values` condition?
    fn has_values(&self, lines: &[String]) -> bool {
        let Some(conds) = &self.has_values else { return true };
        conds.iter().all(|c| {
            lines.iter().any(|l| {
                c.re.captures(body(l))
                    .is_some_and(|m| c.values.is_empty() || c.values.iter().any(|v| v == m.get(8).map_or("", |g| g.as_str())))
            })
        })
    }

    /// community.general's `do_ini` on the file's text (None: missing).
    fn edit(&self, text: Option<&str>) -> Edit {
        let mut lines = text.map(read_lines).unwrap_or_default();
        let mut changed = false;
        let mut msg = "OK";
        if lines.is_empty() {
            lines.push("\n".into());
        }
        if let Some(last) = lines.last_mut() {
            if !last.ends_with('\n') {
                last.push('\n');
                changed = true;
            }
        }
        // Sentinels: a section for the top of the file, and a header ending the last section.
        lines.insert(0, format!("[{TOP}]"));
        lines.push("[".into());
        let section = self.section.as_deref().unwrap_or(TOP);
        let header = Regex::new(&format!(r"^\[\s*{}\s*\]", regex::escape(section.trim()))).expect("escaped section makes a valid regex");

        let mut within = false;
        let (mut start, mut end) = (0, 0);
        for (i, line) in lines.iter().enumerate() {
            if within && line.starts_with('[') {
                if self.has_values(&lines[start..i]) {
                    end = i;
                    break;
                }
                within = false;
                start = 0;
            }
            if header.is_match(line) {
                within = true;
                start = i;
            }
        }
        let after = lines.split_off(end);
        let mut sect = lines.split_off(start);
        let before = lines;
        let mut touched = vec![false; sect.len()];
        let mut values = self.values.clone();
        let full_re = self.option.as_deref().map(|o| option_regex(o, true));
        let active_re = self.option.as_deref().map(|o| option_regex(o, false));
        let match_re = if self.modify_inactive { &full_re } else { &active_re };
        let matches = |l: &str| match_re.as_ref().is_some_and(|re| re.is_match(body(l)));

        // Replace line `i` (counted as handled even when it stays as it is).
        let update = |sect: &mut Vec<String>, touched: &mut Vec<bool>, i: usize, new: String, changed: &mut bool, msg: &mut &'static str| {
            let mut differs = None;
            if self.ignore_spaces {
                if let Some(re) = &full_re {
                    if let (Some(old), Some(new)) = (re.captures(body(&sect[i])), re.captures(body(&new))) {
                        if old.get(2).is_none_or(|g| g.as_str().is_empty()) {
                            differs = Some(old.get(8).map(|g| g.as_str()) != new.get(8).map(|g| g.as_str()));
                        }
                    }
                }
            }
            let differs = differs.unwrap_or(sect[i] != new);
            if differs {
                sect[i] = new;
                *changed = true;
                *msg = "option changed";
            }
            touched[i] = true;
        };

        let mut no_value_present = false;
        if let (true, Some(option)) = (self.present, self.option.as_deref()) {
            // 1. lines whose value is one of `values` (or, allow_no_value and no values, the
            //    first line of the option) take the new form
            for i in 0..sect.len() {
                let Some(m) = match_re.as_ref().and_then(|re| re.captures(body(&sect[i]))) else { continue };
                let found = m.get(8).map_or("", |g| g.as_str()).to_string();
                if !values.is_empty() && values.contains(&found) {
                    let new = if found.is_empty() && self.allow_no_value {
                        no_value_present = true;
                        format!("{option}\n")
                    } else {
                        self.assignment(option, &found)
                    };
                    update(&mut sect, &mut touched, i, new, &mut changed, &mut msg);
                    values.retain(|v| *v != found);
                } else if values.is_empty() && self.allow_no_value {
                    update(&mut sect, &mut touched, i, format!("{option}\n"), &mut changed, &mut msg);
                    no_value_present = true;
                    break;
                }
            }
            // 2. exclusive: other lines of the option take the remaining values, the rest go
            if self.exclusive && !self.allow_no_value {
                if !values.is_empty() {
                    for i in 0..sect.len() {
                        if !touched[i] && matches(&sect[i]) {
                            let v = values.remove(0);
                            update(&mut sect, &mut touched, i, self.assignment(option, &v), &mut changed, &mut msg);
                            if values.is_empty() {
                                break;
                            }
                        }
                    }
                }
                for i in (1..sect.len()).rev() {
                    if !touched[i] && matches(&sect[i]) {
                        sect.remove(i);
                        touched.remove(i);
                        changed = true;
                        msg = "option changed";
                    }
                }
            }
        }
        if self.present {
            // 3. what is still missing goes after the section's last line that is neither
            //    blank nor a comment
            let blank = Regex::new(r"^[ \t]*([#;].*)?$").expect("valid regex");
            if let Some(at) = (1..=sect.len()).rev().find(|&i| !blank.is_match(body(&sect[i - 1]))) {
                if let Some(option) = self.option.as_deref() {
                    if !values.is_empty() {
                        for v in values.iter().rev() {
                            sect.insert(at, self.assignment(option, v));
                        }
                        msg = "option added";
                        changed = true;
                    } else if self.allow_no_value && !no_value_present {
                        sect.insert(at, format!("{option}\n"));
                        msg = "option added";
                        changed = true;
                    }
                }
            }
        } else if let Some(active) = &active_re {
            let keep: Vec<String> = if self.exclusive {
                sect.iter().filter(|l| !active.is_match(body(l))).cloned().collect()
            } else if !values.is_empty() {
                sect.iter()
                    .filter(|l| !active.captures(body(l)).is_some_and(|m| values.iter().any(|v| v == m.get(8).map_or("", |g| g.as_str()))))
                    .cloned()
                    .collect()
            } else {
                sect.clone()
            };
            if keep != sect {
                changed = true;
                msg = "option changed";
                sect = keep;
            }
        } else if !sect.is_empty() {
            sect.clear();
            msg = "section removed";
            changed = true;
        }

        let mut lines = before;
        lines.extend(sect);
        lines.extend(after);
        lines.remove(0);
        lines.pop();

        if !within && self.present {
            lines.push(format!("[{section}]\n"));
            msg = "section and option added";
            for c in self.has_values.iter().flatten() {
                if Some(c.option.as_str()) != self.option.as_deref() {
                    if !c.values.is_empty() {
                        for v in &c.values {
                            lines.push(self.assignment(&c.option, v));
                        }
                    } else if self.allow_no_value {
                        lines.push(format!("{}\n", c.option));
                    }
                } else if !self.exclusive {
                    for v in &c.values {
                        if !values.contains(v) {
                            values.push(v.clone());
                        }
                    }
                }
            }
            match self.option.as_deref() {
                Some(option) if !values.is_empty() => {
                    for v in &values {
                        lines.push(self.assignment(option, v));
                    }
                }
                Some(option) if self.allow_no_value => lines.push(format!("{option}\n")),
                _ => msg = "only section added",
            }
            changed = true;
        }
        Edit { content: lines.concat(), changed, msg }
    }
}

impl ModuleTask for IniTask {
    fn probes(&self) -> Vec<Probe> {
        vec![text_file_probe(&self.path)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let (real, st) = parse_text_file(
            &self.path,
            probes.first().ok_or_else(|| ModuleError::Probe("missing file probe".into()))?,
        )?;
        // follow: the link's target is edited; else (as Ansible) the file replaces the link.
        let target = if self.follow { real } else { self.path.clone() };
        let text = current_text("ini_file", &self.path, &st)?;
        if text.is_none() && !self.create {
            return Err(ModuleError::Failed(format!("Destination {target} does not exist!")));
        }
        let edit = self.edit(text.as_deref());
        let mut plan = Plan::ok();
        plan.result.insert("msg".into(), json!(edit.msg));
        plan.result.insert("path".into(), json!(self.path));
        if edit.changed {
            plan.msg = Some(edit.msg.to_string());
        }
        let new = edit.changed.then_some(edit.content.as_str());
        // (a new file's missing folders are made too)
        let (diffs, actions) = edit_plan(&self.path, &target, &st, new, &self.file, self.backup);
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
    use super::super::testutil::{assert_sh_syntax, ok};
    use super::super::Diff;
    use super::*;

    fn t(v: Value) -> IniTask {
        let mut v = v;
        v.as_object_mut().unwrap().insert("path".into(), json!("/etc/x.conf"));
        build(v.as_object().unwrap()).unwrap()
    }

    /// (new content, changed, msg) of the task on `content` (None: missing file).
    fn edit(v: Value, content: Option<&str>) -> (String, bool, &'static str) {
        let e = t(v).edit(content);
        (e.content, e.changed, e.msg)
    }

    /// Content the plan writes (None: no write).
    fn written(p: &Plan) -> Option<String> {
        p.actions
            .iter()
            .find(|a| a.summary.starts_with("write"))
            .map(|a| String::from_utf8(a.stdin.clone().unwrap()).unwrap())
    }

    /// Expected values in these tests were checked against ansible-core 2.19 with
    /// community.general 11.4 (ini_file on files under /tmp, `ansible_connection=local`).
    #[test]
    fn options_added_changed_and_sections_appended() {
        let c = "[drinks]\nfav = lemonade\n\n[food]\nx = 1\n";
        assert_eq!(
            edit(json!({"section": "drinks", "option": "beer", "value": "yes"}), Some(c)),
            ("[drinks]\nfav = lemonade\nbeer = yes\n\n[food]\nx = 1\n".into(), true, "option added")
        );
        assert_eq!(
            edit(json!({"section": "drinks", "option": "fav", "value": "cola"}), Some(c)),
            ("[drinks]\nfav = cola\n\n[food]\nx = 1\n".into(), true, "option changed")
        );
        assert_eq!(edit(json!({"section": "drinks", "option": "fav", "value": "lemonade"}), Some(c)), (c.into(), false, "OK"));
        // Another spacing is rewritten in the module's.
        assert_eq!(
            edit(json!({"section": "drinks", "option": "fav", "value": "lemonade"}), Some("[drinks]\nfav=lemonade\n")),
            ("[drinks]\nfav = lemonade\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "food", "option": "x", "value": 1}), Some("[drinks]\nfav = lemonade")),
            ("[drinks]\nfav = lemonade\n[food]\nx = 1\n".into(), true, "section and option added")
        );
        // New options go after the last line that is neither blank nor a comment.
        assert_eq!(
            edit(json!({"section": "a", "option": "d", "value": "2"}), Some("[a]\nb = 1\n\n# end of a\n\n[c]\n")),
            ("[a]\nb = 1\nd = 2\n\n# end of a\n\n[c]\n".into(), true, "option added")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "1"}), Some("# head\n\n[a]\n# only comment\n\n[b]\n")),
            ("# head\n\n[a]\nx = 1\n# only comment\n\n[b]\n".into(), true, "option added")
        );
        // Headers: spaces inside the brackets and text after them; names are case sensitive;
        // the first section of a name is the one edited.
        assert_eq!(
            edit(json!({"section": " a", "option": "b", "value": "2"}), Some("[ a ]  ; comment\nb = 1\n")),
            ("[ a ]  ; comment\nb = 2\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "value": "3"}), Some("[A]\nb = 1\n")),
            ("[A]\nb = 1\n[a]\nb = 3\n".into(), true, "section and option added")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "value": "3"}), Some("[a]\nb = 1\n[a]\nb = 2\n")),
            ("[a]\nb = 3\n[a]\nb = 2\n".into(), true, "option changed")
        );
        // Options: any spaces and tabs around `=`, a regex character taken literally, no
        // prefix match; a value's own spaces are kept.
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "1"}), Some("[a]\n  x\t=  1\nxy = 2\n")),
            ("[a]\nx = 1\nxy = 2\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "b.c", "value": "3"}), Some("[a]\nb.c = 1\nbxc = 2\n")),
            ("[a]\nb.c = 3\nbxc = 2\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "value": " spaced "}), Some("[a]\nb = 1\n")),
            ("[a]\nb =  spaced \n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "value": "1"}), Some("[a]\nb = 1  \n")),
            ("[a]\nb = 1\n".into(), true, "option changed")
        );
        // A YAML boolean is written as Python's str() of it.
        assert_eq!(edit(json!({"section": "a", "option": "x", "value": true}), Some("[a]\n")).0, "[a]\nx = True\n");
    }

    #[test]
    fn options_above_the_first_section() {
        assert_eq!(
            edit(json!({"option": "top", "value": "1"}), Some("# comment\n[drinks]\nfav = lemonade\n")),
            ("top = 1\n# comment\n[drinks]\nfav = lemonade\n".into(), true, "option added")
        );
        assert_eq!(
            edit(json!({"option": "top", "value": "1"}), Some("a = 1\n\n")),
            ("a = 1\ntop = 1\n\n".into(), true, "option added")
        );
        assert_eq!(
            edit(json!({"option": "y", "value": "1"}), Some("\n\n[a]\nx = 1\n")),
            ("y = 1\n\n\n[a]\nx = 1\n".into(), true, "option added")
        );
        assert_eq!(
            edit(json!({"option": "x", "state": "absent"}), Some("x = 1\n[a]\nx = 2\n")),
            ("[a]\nx = 2\n".into(), true, "option changed")
        );
        // A missing (or empty) file starts with the blank line Ansible reads it as.
        assert_eq!(edit(json!({"option": "top", "value": "1"}), None), ("top = 1\n\n".into(), true, "option added"));
        assert_eq!(
            edit(json!({"section": "s", "option": "top", "value": "1"}), None),
            ("\n[s]\ntop = 1\n".into(), true, "section and option added")
        );
        assert_eq!(
            edit(json!({"section": "s", "option": "top", "value": "1"}), Some("")),
            ("\n[s]\ntop = 1\n".into(), true, "section and option added")
        );
    }

    #[test]
    fn absent_options_and_sections() {
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "state": "absent"}), Some("[a]\nx = 1\ny = 2\n# x = 3\nx=4\n[b]\nx = 5\n")),
            ("[a]\ny = 2\n# x = 3\n[b]\nx = 5\n".into(), true, "option changed")
        );
        assert_eq!(edit(json!({"section": "a", "option": "x", "state": "absent"}), Some("[a]\ny = 2\n")), ("[a]\ny = 2\n".into(), false, "OK"));
        assert!(!edit(json!({"section": "a", "option": "x", "state": "absent"}), Some("[a]\n# x = 1\n")).1);
        assert_eq!(
            edit(json!({"section": "a", "state": "absent"}), Some("top = 1\n[a]\nx = 1\n\n[b]\ny = 2\n")),
            ("top = 1\n[b]\ny = 2\n".into(), true, "section removed")
        );
        assert_eq!(edit(json!({"section": "a", "state": "absent"}), Some("[b]\ny = 2\n")), ("[b]\ny = 2\n".into(), false, "OK"));
        // exclusive: false removes only the values given (none given: nothing).
        let c = "[a]\nb = coke\nb = fanta\nc = 1\n";
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "value": "fanta", "exclusive": false, "state": "absent"}), Some(c)),
            ("[a]\nb = coke\nc = 1\n".into(), true, "option changed")
        );
        assert!(!edit(json!({"section": "a", "option": "b", "exclusive": false, "state": "absent"}), Some(c)).1);
        // Refused: Ansible would drop the top lines and the first section's header.
        let e = build(json!({"path": "/x", "state": "absent"}).as_object().unwrap()).unwrap_err().to_string();
        assert!(e.contains("needs a section or an option"), "{e}");
    }

    #[test]
    fn commented_options_are_taken_over_unless_told() {
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "7"}), Some("[a]\n# x = 3\ny = 2\n")),
            ("[a]\nx = 7\ny = 2\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "7", "modify_inactive_option": false}), Some("[a]\n# x = 3\ny = 2\n")),
            ("[a]\n# x = 3\ny = 2\nx = 7\n".into(), true, "option added")
        );
        // exclusive also removes commented duplicates, unless they are left inactive.
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "value": "1"}), Some("[a]\n;b = 0\nb = 1\n# b = 2\n")),
            ("[a]\nb = 1\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "5", "modify_inactive_option": false}), Some("[a]\n# x = 0\nx = 1\nx = 2\n")),
            ("[a]\n# x = 0\nx = 5\n".into(), true, "option changed")
        );
    }

    #[test]
    fn spacing_options() {
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "2", "no_extra_spaces": true}), Some("[a]\nx = 1\n")),
            ("[a]\nx=2\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "1", "no_extra_spaces": true}), Some("[a]\nx = 1\n")),
            ("[a]\nx=1\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "b", "option": "x", "values": ["1", "2"], "no_extra_spaces": true}), Some("[a]\n")),
            ("[a]\n[b]\nx=1\nx=2\n".into(), true, "section and option added")
        );
        assert_eq!(edit(json!({"section": "a", "option": "x", "value": "1", "ignore_spaces": true}), Some("[a]\nx=1\n")), ("[a]\nx=1\n".into(), false, "OK"));
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "2", "ignore_spaces": true}), Some("[a]\nx=1\n")),
            ("[a]\nx = 2\n".into(), true, "option changed")
        );
        // A commented line is taken over even when only spaces differ.
        assert_eq!(
            edit(json!({"section": "a", "option": "x", "value": "1", "ignore_spaces": true}), Some("[a]\n#x=1\n")),
            ("[a]\nx = 1\n".into(), true, "option changed")
        );
    }

    #[test]
    fn options_without_values() {
        let v = |o: Value| {
            let mut o = o;
            o.as_object_mut().unwrap().extend([("section".to_string(), json!("mysqld")), ("allow_no_value".to_string(), json!(true))]);
            o
        };
        assert_eq!(
            edit(v(json!({"option": "skip-name-resolve"})), Some("[mysqld]\nuser = mysql\n")),
            ("[mysqld]\nuser = mysql\nskip-name-resolve\n".into(), true, "option added")
        );
        assert!(!edit(v(json!({"option": "skip-name-resolve"})), Some("[mysqld]\nskip-name-resolve\n")).1);
        assert_eq!(
            edit(v(json!({"option": "skip-name-resolve"})), Some("[mysqld]\nskip-name-resolve = 1\n")),
            ("[mysqld]\nskip-name-resolve\n".into(), true, "option changed")
        );
        assert!(!edit(v(json!({"option": "x", "value": ""})), Some("[mysqld]\nx\ny = 1\n")).1);
        // With a value: added beside the bare option, other values kept (no exclusive pass).
        assert_eq!(
            edit(v(json!({"option": "x", "value": "3"})), Some("[mysqld]\nx\nx = 1\n")),
            ("[mysqld]\nx\nx = 1\nx = 3\n".into(), true, "option added")
        );
        assert_eq!(edit(v(json!({})), Some("[b]\ny = 2\n")), ("[b]\ny = 2\n[mysqld]\n".into(), true, "only section added"));
        assert_eq!(edit(v(json!({})), Some("[mysqld]\n")), ("[mysqld]\n".into(), false, "OK"));
        let e = build(json!({"path": "/x", "section": "a", "option": "y"}).as_object().unwrap()).unwrap_err().to_string();
        assert!(e.contains("Parameter 'value(s)' must be defined if state=present and allow_no_value=False."), "{e}");
        let e = build(json!({"path": "/x", "section": "a", "value": "1"}).as_object().unwrap()).unwrap_err().to_string();
        assert!(e.contains("option is required"), "{e}");
    }

    #[test]
    fn several_values_exclusive_or_not() {
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "values": ["pepsi", "coke"]}), Some("[a]\nb = coke\nb = fanta\nc = 1\nb = sprite\n")),
            ("[a]\nb = coke\nb = pepsi\nc = 1\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "values": ["pepsi", "coke"], "exclusive": false}), Some("[a]\nb = coke\nb = fanta\nc = 1\n")),
            ("[a]\nb = coke\nb = fanta\nc = 1\nb = pepsi\n".into(), true, "option added")
        );
        assert!(!edit(json!({"section": "a", "option": "b", "values": ["1", "2"]}), Some("[a]\nb = 2\nb = 1\n")).1);
        assert_eq!(
            edit(json!({"section": "a", "option": "b", "values": ["1", "2", "1"]}), Some("[a]\n")),
            ("[a]\nb = 1\nb = 2\n".into(), true, "option added")
        );
        // A string is split on commas, spaces kept, as Ansible's list type does.
        assert_eq!(edit(json!({"section": "a", "option": "b", "values": "1, 2"}), Some("[a]\n")).0, "[a]\nb = 1\nb =  2\n");
    }

    #[test]
    fn sections_chosen_by_their_values() {
        let wg = "[Interface]\nAddress = 10.4.0.1/24\n\n[Peer]\nPublicKey = aaa\nAllowedIps = 10.4.0.11/32\n\n[Peer]\nPublicKey = bbb\nAllowedIps = 10.4.0.12/32\n";
        assert_eq!(
            edit(
                json!({"section": "Peer", "section_has_values": [{"option": "AllowedIps", "value": "10.4.0.12/32"}], "option": "PublicKey", "value": "xxx"}),
                Some(wg)
            ),
            (wg.replace("bbb", "xxx"), true, "option changed")
        );
        assert_eq!(
            edit(json!({"section": "Peer", "section_has_values": [{"option": "AllowedIps", "value": "10.4.0.11/32"}], "state": "absent"}), Some(wg)),
            ("[Interface]\nAddress = 10.4.0.1/24\n\n[Peer]\nPublicKey = bbb\nAllowedIps = 10.4.0.12/32\n".into(), true, "section removed")
        );
        let one = "[Interface]\nAddress = 10.4.0.1/24\n\n[Peer]\nPublicKey = aaa\nAllowedIps = 10.4.0.11/32\n";
        assert_eq!(
            edit(
                json!({"section": "Peer", "section_has_values": [{"option": "AllowedIps", "values": ["10.4.0.13/32", "10.4.0.14/32"]}, {"option": "Endpoint"}],
                       "option": "PublicKey", "value": "ccc", "allow_no_value": true}),
                Some(one)
            ),
            (
                format!("{one}[Peer]\nAllowedIps = 10.4.0.13/32\nAllowedIps = 10.4.0.14/32\nEndpoint\nPublicKey = ccc\n"),
                true,
                "section and option added"
            )
        );
        assert_eq!(
            edit(
                json!({"section": "Peer", "section_has_values": [{"option": "AllowedIps", "value": "a"}], "option": "AllowedIps", "value": "b", "exclusive": false}),
                Some("[Interface]\n")
            ),
            ("[Interface]\n[Peer]\nAllowedIps = b\nAllowedIps = a\n".into(), true, "section and option added")
        );
    }

    #[test]
    fn line_ends_bom_and_final_newline_as_python_reads_them() {
        assert_eq!(edit(json!({"section": "a", "option": "b", "value": "1"}), Some("[a]\nb = 1")), ("[a]\nb = 1\n".into(), true, "OK"));
        assert_eq!(edit(json!({"section": "a", "option": "b", "value": "2"}), Some("[a]\r\nb = 1\r\n")), ("[a]\nb = 2\n".into(), true, "option changed"));
        assert!(!edit(json!({"section": "a", "option": "b", "value": "1"}), Some("[a]\r\nb = 1\r\n")).1);
        assert!(!edit(json!({"section": "a", "option": "b", "value": "1"}), Some("[a]\rb = 1\r")).1);
        assert_eq!(edit(json!({"section": "a", "option": "b", "value": "2"}), Some("\u{feff}[a]\nb = 1\n")).0, "[a]\nb = 2\n");
    }

    #[test]
    fn plans_writes_diffs_and_results() {
        let task = t(json!({"section": "drinks", "option": "fav", "value": "cola", "backup": true}));
        let p = task.plan(&[file("[drinks]\nfav = lemonade\n")]).unwrap();
        assert_eq!(p.msg.as_deref(), Some("option changed"));
        assert_eq!((p.result["msg"].clone(), p.result["path"].clone()), (json!("option changed"), json!("/etc/x.conf")));
        assert_eq!(
            p.diffs,
            [Diff::Text { path: "/etc/x.conf".into(), before: Some("[drinks]\nfav = lemonade\n".into()), after: Some("[drinks]\nfav = cola\n".into()) }]
        );
        assert!(p.actions[0].summary.starts_with("back up"));
        assert_eq!(written(&p).as_deref(), Some("[drinks]\nfav = cola\n"));
        // The second run (on what the first wrote) changes nothing.
        let again = task.plan(&[file("[drinks]\nfav = cola\n")]).unwrap();
        assert!(again.actions.is_empty() && again.diffs.is_empty() && again.msg.is_none(), "{again:?}");
        assert_eq!(again.result["msg"], json!("OK"));

        // A missing file is created (and its folder), with the mode asked for.
        let p = t(json!({"section": "s", "option": "k", "value": "v", "mode": "0600"})).plan(&[absent()]).unwrap();
        assert_eq!(p.diffs, [Diff::Text { path: "/etc/x.conf".into(), before: None, after: Some("\n[s]\nk = v\n".into()) }]);
        assert_eq!(p.actions.len(), 1);
        assert!(p.actions[0].script.starts_with("mkdir -p -- /etc\n") && p.actions[0].script.contains("chmod 0600"), "{}", p.actions[0].script);
        assert_sh_syntax(&p.actions[0].script);
        // Content as wanted, mode not: only the mode changes.
        let p = t(json!({"section": "s", "option": "k", "value": "v", "mode": "0600"})).plan(&[file("[s]\nk = v\n")]).unwrap();
        assert_eq!((p.actions.len(), p.actions[0].script.as_str()), (1, "chmod 0600 /etc/x.conf"));
        assert_eq!(p.result["msg"], json!("OK"));

        // create: false on a missing file fails with Ansible's message; absent on it changes nothing.
        let e = t(json!({"section": "a", "option": "b", "value": "1", "create": false})).plan(&[absent()]).unwrap_err();
        assert_eq!(e.to_string(), "Destination /etc/x.conf does not exist!");
        let e = t(json!({"section": "a", "option": "b", "state": "absent", "create": false})).plan(&[absent()]).unwrap_err();
        assert_eq!(e.to_string(), "Destination /etc/x.conf does not exist!");
        let p = t(json!({"section": "a", "option": "b", "state": "absent"})).plan(&[absent()]).unwrap();
        assert!(p.actions.is_empty() && p.diffs.is_empty());
    }

    #[test]
    fn symlinks_replaced_or_followed() {
        let link = ok(&format!("real|/etc/real.conf\n{}", file("[a]\nb = 1\n").stdout.split_once('\n').unwrap().1));
        let p = t(json!({"section": "a", "option": "b", "value": "2"})).plan(std::slice::from_ref(&link)).unwrap();
        assert_eq!(p.actions[0].summary, "write /etc/x.conf");
        let p = t(json!({"section": "a", "option": "b", "value": "2", "follow": true})).plan(&[link]).unwrap();
        assert_eq!(p.actions[0].summary, "write /etc/real.conf");
    }

    #[test]
    fn arguments() {
        assert!(super::super::lookup("community.general.ini_file").is_some_and(|m| m.name() == "ini_file"));
        let e = build(json!({"path": "/x", "option": "a", "value": "1", "values": ["2"]}).as_object().unwrap()).unwrap_err().to_string();
        assert!(e.contains("mutually exclusive"), "{e}");
        let e = build(json!({"path": "/x", "option": "a", "value": "1", "attributes": "+i"}).as_object().unwrap()).unwrap_err().to_string();
        assert!(e.contains("attributes"), "{e}");
        let e = build(json!({"path": "/x", "option": "a", "value": "1", "validate": "true %s"}).as_object().unwrap()).unwrap_err().to_string();
        assert!(e.contains("unsupported parameter 'validate'"), "{e}");
        assert_eq!(build(json!({"dest": "/y", "option": "a", "value": "1"}).as_object().unwrap()).unwrap().path, "/y");
    }
}
