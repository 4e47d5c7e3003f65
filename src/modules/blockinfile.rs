//! `blockinfile`: a block of lines between marker lines, inserted, updated or removed with
//! Ansible's placement rules. Shares the probe/write helpers of `lineinfile`.

use super::args::{self, opt_boolish, opt_string};
use super::lineinfile::{current_text, edit_plan, parse_text_file, py_regex, record_backup, split_lines, text_file_probe, FileArgs};
use super::{ActionOutput, ModuleError, ModuleTask, Plan, Probe, ProbeResult};
use serde::Deserialize;
use serde_json::{Map, Value};

pub struct BlockinfileModule;

const PARAMS: &[&str] = &[
    "path",
    "dest",
    "destfile",
    "name",
    "state",
    "marker",
    "block",
    "content",
    "insertafter",
    "insertbefore",
    "create",
    "backup",
    "marker_begin",
    "marker_end",
    "append_newline",
    "prepend_newline",
    "owner",
    "group",
    "mode",
    "validate",
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
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default, alias = "content", deserialize_with = "opt_string")]
    block: Option<String>,
    #[serde(default)]
    insertafter: Option<String>,
    #[serde(default)]
    insertbefore: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    create: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    marker_begin: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    marker_end: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    append_newline: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    prepend_newline: Option<bool>,
    #[serde(flatten)]
    file: FileArgs,
}

#[derive(Debug)]
struct BlockTask {
    path: String,
    present: bool,
    block: String,
    marker0: String,
    marker1: String,
    /// Some(true) after, Some(false) before, with a regex; None + `bof` for BOF, else EOF.
    insert_re: Option<(regex::Regex, bool)>,
    bof: bool,
    create: bool,
    backup: bool,
    append_newline: bool,
    prepend_newline: bool,
    file: FileArgs,
}

module_impl!(BlockinfileModule, "blockinfile");

fn build(args: &Map<String, Value>) -> Result<BlockTask, ModuleError> {
    let a: Args = args::parse("blockinfile", PARAMS, args)?;
    a.file.check("blockinfile")?;
    let present = args::present_state("blockinfile", a.state.as_deref())?;
    if a.insertafter.is_some() && a.insertbefore.is_some() {
        return Err(ModuleError::Args(
            "blockinfile: parameters are mutually exclusive: insertafter, insertbefore".into(),
        ));
    }
    let marker = a.marker.unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into());
    let mark = |m: &str| format!("{}\n", marker.replace("{mark}", m));
    let (insert_re, bof) = match (a.insertafter.as_deref(), a.insertbefore.as_deref()) {
        (Some("EOF") | None, None) => (None, false),
        (Some(r), None) => (Some((py_regex("blockinfile", "insertafter", r)?, true)), false),
        (None, Some("BOF")) => (None, true),
        (None, Some(r)) => (Some((py_regex("blockinfile", "insertbefore", r)?, false)), false),
        _ => unreachable!(),
    };
    Ok(BlockTask {
        path: a.path,
        present,
        block: a.block.unwrap_or_default(),
        marker0: mark(a.marker_begin.as_deref().unwrap_or("BEGIN")),
        marker1: mark(a.marker_end.as_deref().unwrap_or("END")),
        insert_re,
        bof,
        create: a.create.unwrap_or(false),
        backup: a.backup.unwrap_or(false),
        append_newline: a.append_newline.unwrap_or(false),
        prepend_newline: a.prepend_newline.unwrap_or(false),
        file: a.file,
    })
}

impl BlockTask {
    /// New content and a message (Ansible's algorithm).
    fn apply(&self, original: Option<&str>) -> (String, &'static str) {
        let mut lines = original.map(split_lines).unwrap_or_default();
        let mut blocklines: Vec<String> = Vec::new();
        if self.present && !self.block.is_empty() {
            let mut b = self.block.clone();
            if !b.ends_with('\n') && !b.ends_with('\r') {
                b.push('\n');
            }
            blocklines.push(self.marker0.clone());
            blocklines.extend(split_lines(&b));
            blocklines.push(self.marker1.clone());
        }
        let (mut n0, mut n1) = (None, None);
        for (i, l) in lines.iter().enumerate() {
            if *l == self.marker0 {
                n0 = Some(i);
            }
            if *l == self.marker1 {
                n1 = Some(i);
            }
        }
        let n0 = match (n0, n1) {
            (Some(a), Some(b)) => {
                let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                lines.drain(lo..=hi);
                lo
            }
            _ => {
                if let Some((re, after)) = &self.insert_re {
                    let mut found = None;
                    for (i, l) in lines.iter().enumerate() {
                        if re.is_match(l.strip_suffix('\n').unwrap_or(l)) {
                            found = Some(i);
                        }
                    }
                    match found {
                        None => lines.len(),
                        Some(i) if *after => i + 1,
                        Some(i) => i,
                    }
                } else if self.bof {
                    0
                } else {
                    lines.len()
                }
            }
        };
        if n0 > 0 && !lines[n0 - 1].ends_with('\n') && !lines[n0 - 1].ends_with('\r') {
            lines[n0 - 1].push('\n');
        }
        if self.present && !blocklines.is_empty() {
            if self.prepend_newline && n0 != 0 && lines[n0 - 1] != "\n" && lines[n0 - 1] != "\r\n" {
                blocklines.insert(0, "\n".into());
            }
            if self.append_newline && n0 != lines.len() && lines[n0] != "\n" && lines[n0] != "\r\n" {
                blocklines.push("\n".into());
            }
        }
        let inserted = !blocklines.is_empty();
        lines.splice(n0..n0, blocklines);
        let result = lines.concat();
        let msg = if original == Some(result.as_str()) {
            ""
        } else if original.is_none() {
            "File created"
        } else if !inserted {
            "Block removed"
        } else {
            "Block inserted"
        };
        (result, msg)
    }
}

impl ModuleTask for BlockTask {
    fn probes(&self) -> Vec<Probe> {
        vec![text_file_probe(&self.path)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let (real, st) = parse_text_file(
            &self.path,
            probes.first().ok_or_else(|| ModuleError::Probe("missing file probe".into()))?,
        )?;
        let text = current_text("blockinfile", &self.path, &st)?;
        let mut plan = Plan::ok();
        if text.is_none() {
            if !self.present {
                return Ok(plan);
            }
            if !self.create {
                return Err(ModuleError::Failed(format!("Path {} does not exist !", self.path)));
            }
        }
        let (new, msg) = self.apply(text.as_deref());
        let changed = text.as_deref() != Some(new.as_str());
        if changed {
            plan.msg = Some(msg.to_string());
        }
        let (diffs, actions) = edit_plan(&self.path, &real, &st, changed.then_some(new.as_str()), &self.file, self.backup);
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
    use super::*;
    use serde_json::json;

    fn run(v: Value, content: Option<&str>) -> Option<String> {
        let mut v = v;
        v.as_object_mut().unwrap().insert("path".into(), json!("/etc/x.conf"));
        let t = build(v.as_object().unwrap()).unwrap();
        let p = t.plan(&[content.map(file).unwrap_or_else(absent)]).unwrap();
        p.actions
            .iter()
            .find(|a| a.summary.starts_with("write"))
            .map(|a| String::from_utf8(a.stdin.clone().unwrap()).unwrap())
    }

    #[test]
    fn inserts_updates_removes() {
        let b = "# BEGIN ANSIBLE MANAGED BLOCK\nx\ny\n# END ANSIBLE MANAGED BLOCK\n";
        assert_eq!(run(json!({"block": "x\ny"}), Some("a\n")).unwrap(), format!("a\n{b}"));
        assert_eq!(run(json!({"block": "x\ny\n"}), Some(&format!("a\n{b}"))), None);
        assert_eq!(
            run(json!({"block": "z"}), Some(&format!("a\n{b}c\n"))).unwrap(),
            "a\n# BEGIN ANSIBLE MANAGED BLOCK\nz\n# END ANSIBLE MANAGED BLOCK\nc\n"
        );
        assert_eq!(run(json!({"state": "absent"}), Some(&format!("a\n{b}c\n"))).unwrap(), "a\nc\n");
        assert_eq!(run(json!({"block": ""}), Some(&format!("a\n{b}"))).unwrap(), "a\n");
        assert_eq!(
            run(json!({"block": "x", "create": true}), None).unwrap(),
            "# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"
        );
        // a new file's missing folders are made first, as Ansible does
        let t = build(json!({"block": "x", "create": true, "path": "/etc/x.conf"}).as_object().unwrap()).unwrap();
        let p = t.plan(&[absent()]).unwrap();
        assert!(p.actions[0].script.starts_with("mkdir -p -- /etc\n"), "{}", p.actions[0].script);
    }

    #[test]
    fn placement_and_markers() {
        assert_eq!(
            run(json!({"block": "x", "insertbefore": "BOF", "marker": "<!-- {mark} -->"}), Some("a")).unwrap(),
            "<!-- BEGIN -->\nx\n<!-- END -->\na"
        );
        assert_eq!(
            run(
                json!({"block": "x", "insertafter": "^a", "marker_begin": "S", "marker_end": "E"}),
                Some("a\nb\n")
            )
            .unwrap(),
            "a\n# S ANSIBLE MANAGED BLOCK\nx\n# E ANSIBLE MANAGED BLOCK\nb\n"
        );
        assert_eq!(
            run(
                json!({"block": "x", "insertbefore": "^b", "prepend_newline": true, "append_newline": true, "marker": "#{mark}"}),
                Some("a\nb\n")
            )
            .unwrap(),
            "a\n\n#BEGIN\nx\n#END\n\nb\n"
        );
        assert_eq!(
            run(json!({"block": "x", "marker": "#{mark}"}), Some("a")).unwrap(),
            "a\n#BEGIN\nx\n#END\n"
        );
    }
}
