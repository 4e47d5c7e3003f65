//! Ansible's Jinja tests (`is succeeded`, `is version('1.2', '>=')`, `is match(...)`, ...).
//! minijinja's builtins cover defined/undefined/none/string/number/mapping/sequence/
//! iterable/in/eq/... already.

use std::cmp::Ordering;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, Value};

use super::filters::err;

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_test("succeeded", succeeded);
    env.add_test("success", succeeded);
    env.add_test("successful", succeeded);
    env.add_test("failed", failed);
    env.add_test("failure", failed);
    env.add_test("changed", changed);
    env.add_test("change", changed);
    env.add_test("skipped", skipped);
    env.add_test("unreachable", |v: &Value| Ok::<_, Error>(field_true(&result_field(v, "unreachable", "unreachable")?)));
    env.add_test("reachable", |v: &Value| Ok::<_, Error>(!field_true(&result_field(v, "unreachable", "reachable")?)));
    env.add_test("skip", skipped);
    env.add_test("finished", |v: &Value| async_state(v, "finished"));
    env.add_test("started", |v: &Value| async_state(v, "started"));
    env.add_test("match", |v: String, pattern: String, kwargs: Kwargs| {
        regex_test(v, pattern, kwargs, "match")
    });
    env.add_test("search", |v: String, pattern: String, kwargs: Kwargs| {
        regex_test(v, pattern, kwargs, "search")
    });
    env.add_test("regex", |v: String, pattern: String, kwargs: Kwargs| {
        let mt = kwargs
            .get::<Option<String>>("match_type")?
            .unwrap_or_else(|| "search".into());
        regex_test(v, pattern, kwargs, &mt)
    });
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_test("truthy", truthy);
    env.add_test("falsy", |v: &Value, kwargs: Kwargs| {
        truthy(v, kwargs).map(|b| !b)
    });
    env.add_test(
        "contains",
        |seq: &Value, item: &Value| -> Result<bool, Error> {
            Ok(seq.try_iter()?.any(|x| &x == item))
        },
    );
    env.add_test("subset", |a: &Value, b: &Value| -> Result<bool, Error> {
        let b: Vec<Value> = b.try_iter()?.collect();
        Ok(a.try_iter()?.all(|x| b.contains(&x)))
    });
    env.add_test("superset", |a: &Value, b: &Value| -> Result<bool, Error> {
        let a: Vec<Value> = a.try_iter()?.collect();
        Ok(b.try_iter()?.all(|x| a.contains(&x)))
    });
    env.add_test("any", |v: &Value| -> Result<bool, Error> {
        Ok(v.try_iter()?.any(|x| x.is_true()))
    });
    env.add_test("all", |v: &Value| -> Result<bool, Error> {
        Ok(v.try_iter()?.all(|x| x.is_true()))
    });
}

fn result_field(v: &Value, field: &str, test: &str) -> Result<Value, Error> {
    if v.kind() != ValueKind::Map {
        return Err(err(format!(
            "the '{test}' test expects a registered task result (a dictionary), got {}",
            v.kind()
        )));
    }
    v.get_attr(field)
}

fn field_true(v: &Value) -> bool {
    match v.as_str() {
        Some(s) => matches!(s.to_ascii_lowercase().as_str(), "yes" | "true" | "1" | "on"),
        None => v.is_true(),
    }
}

fn failed(v: &Value) -> Result<bool, Error> {
    Ok(field_true(&result_field(v, "failed", "failed")?))
}

fn succeeded(v: &Value) -> Result<bool, Error> {
    Ok(!field_true(&result_field(v, "failed", "succeeded")?))
}

fn changed(v: &Value) -> Result<bool, Error> {
    Ok(field_true(&result_field(v, "changed", "changed")?))
}

fn skipped(v: &Value) -> Result<bool, Error> {
    Ok(field_true(&result_field(v, "skipped", "skipped")?))
}

/// `is finished` / `is started` of an `async` task's result; true for a result without the
/// field (a task that wasn't async), as in Ansible.
fn async_state(v: &Value, field: &str) -> Result<bool, Error> {
    let f = result_field(v, field, field)?;
    Ok(f.is_undefined() || f.is_true())
}

fn regex_test(v: String, pattern: String, kwargs: Kwargs, match_type: &str) -> Result<bool, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    let anchored = match match_type {
        "match" => format!("^(?:{pattern})"),
        "fullmatch" => format!("^(?:{pattern})$"),
        "search" => pattern.clone(),
        other => return Err(err(format!("regex: invalid match_type '{other}'"))),
    };
    // `^` must anchor at the start of the string even in multiline mode
    let anchored = if match_type == "search" {
        anchored
    } else {
        anchored.replacen('^', "\\A", 1)
    };
    let anchored = if match_type == "fullmatch" {
        format!("{}\\z", anchored.strip_suffix('$').unwrap_or(&anchored))
    } else {
        anchored
    };
    let re = regex::RegexBuilder::new(&anchored)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| {
            err(format!(
                "invalid regular expression '{pattern}': {}",
                e.to_string().replace('\n', " ")
            ))
        })?;
    Ok(re.is_match(&v))
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Num(u64),
    Str(String),
}

/// LooseVersion-like split: runs of digits compare numerically, letters as strings.
fn version_parts(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut cur_digit = false;
    let flush = |cur: &mut String, digit: bool, parts: &mut Vec<Part>| {
        if !cur.is_empty() {
            parts.push(if digit {
                Part::Num(cur.parse().unwrap_or(u64::MAX))
            } else {
                Part::Str(std::mem::take(cur))
            });
            cur.clear();
        }
    };
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            if !cur_digit {
                flush(&mut cur, false, &mut parts);
            }
            cur_digit = true;
            cur.push(c);
        } else if c.is_alphanumeric() {
            if cur_digit {
                flush(&mut cur, true, &mut parts);
            }
            cur_digit = false;
            cur.push(c);
        } else {
            flush(&mut cur, cur_digit, &mut parts);
        }
    }
    flush(&mut cur, cur_digit, &mut parts);
    parts
}

pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    version_parts(a).cmp(&version_parts(b))
}

/// `'1.2' is version('1.10', '<')` (operator default `eq`).
pub(crate) fn version_test(
    v: &Value,
    other: &Value,
    op: Option<String>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    let op = match op {
        Some(op) => op,
        None => kwargs
            .get::<Option<String>>("operator")?
            .unwrap_or_else(|| "eq".into()),
    };
    let _strict = kwargs.get::<Option<bool>>("strict")?;
    let _vt = kwargs.get::<Option<String>>("version_type")?;
    let to_s = |x: &Value| -> Result<String, Error> {
        if x.is_undefined() {
            return Err(err("version: undefined value"));
        }
        Ok(x.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| x.to_string()))
    };
    let ord = compare_versions(&to_s(v)?, &to_s(other)?);
    Ok(match op.as_str() {
        "==" | "=" | "eq" => ord == Ordering::Equal,
        "!=" | "<>" | "ne" => ord != Ordering::Equal,
        "<" | "lt" => ord == Ordering::Less,
        "<=" | "le" => ord != Ordering::Greater,
        ">" | "gt" => ord == Ordering::Greater,
        ">=" | "ge" => ord != Ordering::Less,
        other => return Err(err(format!("version: invalid operator '{other}'"))),
    })
}

/// Ansible's `truthy(convert_bool=False)`.
fn truthy(v: &Value, kwargs: Kwargs) -> Result<bool, Error> {
    let convert = kwargs.get::<Option<bool>>("convert_bool")?.unwrap_or(false);
    if convert {
        if let Some(s) = v.as_str() {
            match s.to_ascii_lowercase().as_str() {
                "yes" | "on" | "1" | "true" | "y" | "t" => return Ok(true),
                "no" | "off" | "0" | "false" | "n" | "f" => return Ok(false),
                _ => {}
            }
        }
    }
    Ok(v.is_true())
}
