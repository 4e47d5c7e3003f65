//! Which plays must wait for which: plays whose hosts don't overlap run at the same time,
//! unless the later one may read what the earlier one sets.
//!
//! In Ansible plays run one after another. Two plays on disjoint hosts can only see each other
//! through `hostvars`: the facts of the other play's hosts (the executor always gathers every
//! earlier play's facts before a later play starts) and the variables the other play sets on
//! its hosts (`register`, `set_fact`). So a later play waits for an earlier one to finish when
//! - they share a host (a host runs its plays in order, and sits out later plays after a
//!   failure), or
//! - the earlier play sets a variable whose name the later play mentions anywhere: its playbook
//!   file, its task files, any file of its roles (templates included), its hosts' inventory
//!   variables or the extra vars; or the earlier play sets names that can't be known before
//!   running it (a templated `set_fact` key).
//!
//! The check is textual and errs on the side of waiting: a name mentioned in a comment makes
//! the plays sequential, never the other way round.

use crate::playbook::{Play, Task};
use crate::template::Vars;
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// Variable names a play may set on its hosts, or `None` when some can't be known statically.
pub fn names_set(play: &Play) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for t in play.tasks.iter().chain(play.handlers.iter()) {
        names.extend(t.register.clone());
        if crate::modules::lookup(&t.module).is_some_and(|m| m.name() == "include_vars") {
            return None; // the names are in a file, maybe chosen at run time
        }
        if is_module(t, "set_fact") {
            match &t.args {
                Value::Object(m) => {
                    for k in m.keys() {
                        if k.contains("{{") || k.contains("{%") {
                            return None;
                        }
                        if k != "cacheable" {
                            names.insert(k.clone());
                        }
                    }
                }
                Value::String(s) => {
                    for w in s.split_whitespace() {
                        let k = w.split_once('=').map(|(k, _)| k).unwrap_or(w);
                        if k.contains("{{") || k.contains("{%") {
                            return None;
                        }
                        names.insert(k.to_string());
                    }
                }
                _ => return None,
            }
        }
    }
    Some(names)
}

/// Whether `t` calls the module `name` (by any of its names).
pub fn is_module(t: &Task, name: &str) -> bool {
    crate::modules::lookup(&t.module).is_some_and(|m| m.name() == name)
}

/// Everything a play could read a variable name from: the files that define it (playbook, task
/// files, its roles' whole directories) and the variables of its hosts.
pub fn play_text(play: &Play, host_vars: &[Vars], extra_vars: &Vars) -> String {
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    files.insert(play.location.file.as_ref().clone());
    for t in play.tasks.iter().chain(play.handlers.iter()) {
        files.insert(t.location.file.as_ref().clone());
    }
    let mut seen_dirs = HashSet::new();
    for r in &play.roles {
        if seen_dirs.insert(r.path.clone()) {
            collect_files(&r.path, &mut files, 0);
        }
    }
    let mut text = String::new();
    for f in files {
        match std::fs::read(&f) {
            Ok(bytes) if bytes.len() <= 4 << 20 => text.push_str(&String::from_utf8_lossy(&bytes)),
            // Unreadable or huge: can't tell what it mentions, so say everything.
            _ => return String::from(EVERYTHING),
        }
        text.push('\n');
    }
    for v in host_vars.iter().chain([extra_vars, &play.vars]) {
        text.push_str(&serde_json::to_string(v).unwrap_or_default());
        text.push('\n');
    }
    text
}

/// Stands for a text that mentions every name.
const EVERYTHING: &str = "\u{0}everything\u{0}";

fn collect_files(dir: &Path, out: &mut BTreeSet<PathBuf>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => collect_files(&p, out, depth + 1),
            Ok(_) => {
                out.insert(p);
            }
            Err(_) => {}
        }
    }
}

/// Does `text` mention `name` as a whole word?
pub fn mentions(text: &str, name: &str) -> bool {
    if text == EVERYTHING {
        return true;
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// Whether a play's failures are meant to stop what comes after it (`any_errors_fatal`,
/// `max_fail_percentage`, a rolling `serial` update): with `--overlap-plays`, later plays
/// still wait for it.
pub fn gates_later_plays(play: &Play) -> bool {
    play.any_errors_fatal || play.max_fail_percentage.is_some() || !play.serial.is_empty() || play.tasks.iter().chain(play.handlers.iter()).any(|t| t.any_errors_fatal)
}

/// Whether a play's hosts must all have gathered facts before any of them runs a task: the
/// play reads `hostvars` (other hosts' facts), runs tasks once for all its hosts, or may end
/// the batch on one host's condition (see [`ends_batch_on_condition`]).
pub fn needs_barrier(text: &str, play: &Play) -> bool {
    mentions(text, "hostvars") || mentions(text, "run_once") || play.tasks.iter().any(|t| ends_batch_on_condition(t) || t.any_errors_fatal)
}

/// The action of a `meta` task (`end_play`, `flush_handlers`...); None for any other task.
pub fn meta_action(task: &Task) -> Option<&str> {
    (crate::modules::lookup(&task.module).is_none() && task.module.ends_with("meta")).then(|| task.args.as_str().unwrap_or("").trim())
}

/// `meta: end_play` or `end_batch` under a `when`: one host's answer ends the batch for all,
/// so no host may run the task after it before every host has answered (Ansible's linear
/// strategy runs the task after it only then). The hosts meet after it.
pub fn ends_batch_on_condition(task: &Task) -> bool {
    !task.when.is_empty() && matches!(meta_action(task), Some("end_play" | "end_batch"))
}

/// For every play, the earlier plays it must wait for (finish), given each play's hosts, the
/// names each play sets and each play's text.
pub fn dependencies(hosts: &[BTreeSet<String>], sets: &[Option<BTreeSet<String>>], texts: &[String]) -> Vec<BTreeSet<usize>> {
    (0..hosts.len())
        .map(|k| {
            (0..k)
                .filter(|&j| {
                    !hosts[j].is_disjoint(&hosts[k])
                        || match &sets[j] {
                            None => true,
                            Some(names) => names.iter().any(|n| mentions(&texts[k], n)),
                        }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn whole_words_only() {
        assert!(mentions("{{ unit.changed }}", "unit"));
        assert!(mentions("hostvars['db1']['db_password']", "db_password"));
        assert!(!mentions("{{ gunicorn_unit.changed }}", "unit"));
        assert!(!mentions("units", "unit"));
        assert!(mentions(EVERYTHING, "anything"));
    }

    #[test]
    fn barrier_only_for_hostvars_or_run_once() {
        let plays = load("- hosts: all\n  tasks:\n    - meta: end_play\n    - meta: end_batch\n      when: x\n    - debug: msg=end_play\n      when: x\n- hosts: all\n  tasks:\n    - meta: end_play\n    - meta: end_host\n      when: x\n");
        let play = &plays.plays[1];
        assert!(needs_barrier("{{ hostvars[h].ansible_host }}", play));
        assert!(needs_barrier("- command: x\n  run_once: true", play));
        assert!(needs_barrier(EVERYTHING, play));
        assert!(!needs_barrier("{{ my_hostvars_copy }} {{ groups.web }}", play), "ending the play on every host or one host's end needs no meeting");
        assert!(needs_barrier("", &plays.plays[0]));
        let ends: Vec<bool> = plays.plays[0].tasks.iter().map(ends_batch_on_condition).collect();
        assert_eq!(ends, [false, true, false]);
        assert_eq!(meta_action(&plays.plays[0].tasks[1]), Some("end_batch"));
        assert_eq!(meta_action(&plays.plays[0].tasks[2]), None);
    }

    fn load(text: &str) -> crate::playbook::Playbook {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("pb.yml"), text).unwrap();
        crate::playbook::load(&d.path().join("pb.yml")).unwrap()
    }

    #[test]
    fn disjoint_plays_that_dont_read_each_other_run_together() {
        let hosts = vec![set(&["web1", "web2"]), set(&["search1"]), set(&["web1"])];
        let sets = vec![Some(set(&["gunicorn_unit", "secret"])), Some(set(&[])), Some(set(&[]))];
        let texts = vec!["".to_string(), "es config: {{ hostvars[h].ansible_host }}".to_string(), "".to_string()];
        // play 1 (search) needs nothing; play 2 shares web1 with play 0
        assert_eq!(dependencies(&hosts, &sets, &texts), vec![BTreeSet::new(), BTreeSet::new(), [0].into()]);
    }

    #[test]
    fn reading_a_name_an_earlier_play_sets_makes_it_wait() {
        let hosts = vec![set(&["db1"]), set(&["web1"])];
        let sets = vec![Some(set(&["db_password"])), Some(set(&[]))];
        let texts = vec![String::new(), "password: \"{{ hostvars['db1'].db_password }}\"".to_string()];
        assert_eq!(dependencies(&hosts, &sets, &texts)[1], [0].into());
        // unknown names (templated set_fact keys): wait too
        assert_eq!(dependencies(&hosts, &[None, Some(set(&[]))], &[String::new(), String::new()])[1], [0].into());
    }
}
