//! The INI inventory format, following Ansible's `ini` inventory plugin:
//! `[group]` host lines (`name[:port] key=value ...`, shell-quoted, `#` comments),
//! `[group:children]`, `[group:vars]`, `#`/`;` comment lines, hosts before any section are
//! ungrouped. Values are read as Python literals (see `pylit`).

use super::patterns::{expand_host_range, split_host_port};
use super::pylit::parse_value;
use super::{Inventory, InventoryError};
use indexmap::IndexMap;
use serde_json::Value;
use std::path::Path;

#[derive(Clone, Copy, PartialEq)]
enum State {
    Hosts,
    Children,
    Vars,
}

/// A reference to a group that must be declared somewhere in the file.
struct Pending {
    line: usize,
    state: State,
    parents: Vec<String>,
}

pub(super) fn parse(inv: &mut Inventory, file: &Path, text: &str) -> Result<(), InventoryError> {
    let err = |line: usize, msg: String| {
        InventoryError::Parse(format!("{}:{}: {}", file.display(), line, msg))
    };
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    let mut pending: IndexMap<String, Pending> = IndexMap::new();

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            if let Some((name, suffix)) = parse_section(line) {
                state = match suffix {
                    None | Some("hosts") => State::Hosts,
                    Some("children") => State::Children,
                    Some("vars") => State::Vars,
                    Some(other) => {
                        return Err(err(
                            lineno,
                            format!("section [{name}:{other}] has unknown type '{other}' (expected hosts, children or vars)"),
                        ))
                    }
                };
                group = name.to_string();
                if !inv.groups.contains_key(&group) {
                    // [g] or [g:children] declare a group; [g:vars] needs a declaration elsewhere.
                    if state == State::Vars && !pending.contains_key(&group) {
                        pending.insert(
                            group.clone(),
                            Pending {
                                line: lineno,
                                state,
                                parents: Vec::new(),
                            },
                        );
                    }
                    inv.ensure_group(&group);
                }
                if state != State::Vars {
                    if let Some(p) = pending.get(&group) {
                        if p.state == State::Children {
                            let p = pending.shift_remove(&group).unwrap();
                            for parent in p.parents {
                                inv.add_child(&parent, &group).map_err(|m| err(p.line, m))?;
                            }
                        } else {
                            pending.shift_remove(&group);
                        }
                    }
                }
                continue;
            } else if line.ends_with(']') {
                return Err(err(
                    lineno,
                    format!("invalid section entry '{line}': section names may not contain spaces or other invalid characters"),
                ));
            }
        }
        match state {
            State::Hosts => {
                let tokens = shell_split(line).map_err(|m| {
                    err(
                        lineno,
                        format!("cannot parse host definition '{line}': {m}"),
                    )
                })?;
                let Some((first, rest)) = tokens.split_first() else {
                    continue;
                };
                let (pattern, port) = split_host_port(first);
                let names = expand_host_range(&pattern).map_err(|m| err(lineno, m))?;
                let mut vars: Vec<(String, Value)> = Vec::new();
                for t in rest {
                    let Some((k, v)) = t.split_once('=') else {
                        return Err(err(
                            lineno,
                            format!("expected key=value host variable assignment, got '{t}'"),
                        ));
                    };
                    vars.push((k.to_string(), parse_value(v)));
                }
                for name in names {
                    inv.add_host(&name, &group);
                    if let Some(port) = port {
                        inv.set_host_var(&name, "ansible_port", Value::from(port));
                    }
                    for (k, v) in &vars {
                        inv.set_host_var(&name, k, v.clone());
                    }
                }
            }
            State::Children => {
                let child = parse_group_name(line)
                    .ok_or_else(|| err(lineno, format!("expected a group name, got '{line}'")))?;
                if inv.groups.contains_key(child) && !pending.contains_key(child) {
                    inv.add_child(&group, child).map_err(|m| err(lineno, m))?;
                } else if let Some(p) = pending.get_mut(child) {
                    if p.state == State::Vars {
                        // [child:vars] came first and the group is still undeclared.
                        p.state = State::Children;
                        p.line = lineno;
                    }
                    p.parents.push(group.clone());
                } else {
                    pending.insert(
                        child.to_string(),
                        Pending {
                            line: lineno,
                            state: State::Children,
                            parents: vec![group.clone()],
                        },
                    );
                }
            }
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(err(lineno, format!("expected key=value, got '{line}'")));
                };
                inv.set_group_var(&group, k.trim(), parse_value(v.trim()));
            }
        }
    }

    if let Some((name, p)) = pending.into_iter().next() {
        return Err(match p.state {
            State::Vars => err(
                p.line,
                format!("section [{name}:vars] not valid for undefined group '{name}'"),
            ),
            _ => err(
                p.line,
                format!(
                    "section [{}:children] includes undefined group '{name}'",
                    p.parents.last().map(String::as_str).unwrap_or("?")
                ),
            ),
        });
    }
    Ok(())
}

/// `[name]` or `[name:suffix]`, optionally followed by a comment. Names have no spaces, `:` or `]`.
fn parse_section(line: &str) -> Option<(&str, Option<&str>)> {
    let inner_end = line.find(']')?;
    let after = line[inner_end + 1..].trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let inner = &line[1..inner_end];
    let (name, suffix) = match inner.split_once(':') {
        Some((n, s)) => (n, Some(s)),
        None => (inner, None),
    };
    let name_ok =
        !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '[' || c == ':');
    let suffix_ok =
        suffix.is_none_or(|s| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_'));
    (name_ok && suffix_ok).then_some((name, suffix))
}

fn parse_group_name(line: &str) -> Option<&str> {
    let name = match line.find('#') {
        Some(i) => line[..i].trim(),
        None => line.trim(),
    };
    (!name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == ':' || c == ']'))
        .then_some(name)
}

/// POSIX shell-like splitting as Python's `shlex.split(line, comments=True)`: quotes, backslash
/// escapes, and `#` starting a comment outside quotes.
pub(super) fn shell_split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            '#' => break,
            '\\' => {
                let e = chars.next().ok_or("no escaped character")?;
                cur.push(e);
                in_token = true;
            }
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        None => return Err("no closing quotation".into()),
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        None => return Err("no closing quotation".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            None => return Err("no closing quotation".into()),
                            Some(e @ ('"' | '\\')) => cur.push(e),
                            Some(e) => {
                                cur.push('\\');
                                cur.push(e);
                            }
                        },
                        Some(c) => cur.push(c),
                    }
                }
            }
            c => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_splitting() {
        assert_eq!(
            shell_split("h a=1 b='x y' c=\"q\\\"z\" # comment").unwrap(),
            ["h", "a=1", "b=x y", "c=q\"z"]
        );
        assert_eq!(shell_split("h a=b#c").unwrap(), ["h", "a=b"]);
        assert_eq!(shell_split("h x=''").unwrap(), ["h", "x="]);
        assert!(shell_split("h a='x").is_err());
    }

    #[test]
    fn sections() {
        assert_eq!(parse_section("[web]"), Some(("web", None)));
        assert_eq!(parse_section("[web:vars] # c"), Some(("web", Some("vars"))));
        assert_eq!(parse_section("[web x]"), None);
        assert_eq!(parse_section("[web:]"), None);
    }
}
