//! Ansible's filters and global functions (`lookup`, `query`), on top of minijinja's builtins.
//! Builtins kept as they are: lower, upper, capitalize, title, replace, trim, length/count,
//! first, last, min, max, sum, unique, reverse, sort, map, select, reject, selectattr,
//! rejectattr, join, split, list, indent, urlencode, dictsort, items, zip, round, abs,
//! default/d (with Ansible's second `true` argument), batch, format.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use base64::Engine as _;
use indexmap::IndexMap;
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};
use rand::{Rng, SeedableRng};
use serde_json::Value as Json;

use super::digest;
use super::serialize::{self, JsonOpts};

pub(crate) fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_filter("bool", to_bool);
    env.add_filter("int", to_int);
    env.add_filter("float", to_float);
    env.add_filter("string", to_string);
    env.add_filter("mandatory", mandatory);
    env.add_filter("to_json", to_json);
    env.add_filter("tojson", to_json);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_nice_yaml);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("union", union);
    env.add_filter("intersect", intersect);
    env.add_filter("difference", difference);
    env.add_filter("symmetric_difference", symmetric_difference);
    env.add_filter("flatten", flatten);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("product", product);
    env.add_filter("zip_longest", zip_longest);
    env.add_filter("combine", combine);
    env.add_filter("truncate", truncate);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", regex_escape);
    env.add_filter("quote", quote);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("expanduser", expanduser);
    env.add_filter("splitext", splitext);
    env.add_filter("realpath", realpath);
    env.add_filter("relpath", relpath);
    env.add_filter("normpath", realpath);
    env.add_filter("hash", hash);
    env.add_filter("checksum", checksum);
    env.add_filter("sha1", |s: String| digest::sha1_hex(s.as_bytes()));
    env.add_filter("md5", |s: String| digest::md5_hex(s.as_bytes()));
    env.add_filter("password_hash", password_hash);
    env.add_filter("filesizeformat", filesizeformat);
    env.add_filter("random", random);
    env.add_filter("shuffle", shuffle);
    env.add_filter("ternary", ternary);
    env.add_filter("type_debug", type_debug);
    env.add_filter("human_readable", human_readable);
    env.add_filter("human_to_bytes", human_to_bytes);
    env.add_filter("comment", comment);
    env.add_filter("center", center);
    env.add_filter("wordcount", wordcount);
    env.add_filter("extract", extract);
    env.add_filter("version_compare", super::checks::version_test);
    env.add_filter("to_uuid", to_uuid);
    env.add_filter("default", default);
    env.add_filter("d", default);
    env.add_filter("subelements", subelements);
    env.add_filter("path_join", path_join);
    env.add_filter("urlsplit", urlsplit);
    env.add_function("dict", dict);
    env.add_function("now", now);
    super::lookups::register(env);
}

fn json_of(v: &Value) -> Result<Json, Error> {
    super::to_json(v)
}

pub(crate) fn iter_values(v: &Value) -> Result<Vec<Value>, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "undefined value used as a list",
        ));
    }
    if v.is_none() {
        return Ok(Vec::new());
    }
    Ok(v.try_iter()?.collect())
}

// ---------------------------------------------------------------- conversions

/// Ansible's `bool`: yes/on/1/true/y (any case) and 1 are true, everything else false.
fn to_bool(v: &Value) -> bool {
    match v.kind() {
        ValueKind::Bool => v.is_true(),
        ValueKind::Number => v.as_i64() == Some(1) || f64::try_from(v.clone()).ok() == Some(1.0),
        ValueKind::String => matches!(
            v.as_str()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
                .as_str(),
            "yes" | "on" | "1" | "true" | "y" | "t"
        ),
        _ => false,
    }
}

fn parse_int_str(s: &str, base: u32) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let lower = digits.to_ascii_lowercase();
    let digits = match base {
        16 => lower.strip_prefix("0x").unwrap_or(&lower).to_string(),
        8 => lower.strip_prefix("0o").unwrap_or(&lower).to_string(),
        2 => lower.strip_prefix("0b").unwrap_or(&lower).to_string(),
        _ => lower,
    };
    let n = i64::from_str_radix(&digits, base).ok()?;
    Some(if neg { -n } else { n })
}

/// Ansible's `int(default=0, base=10)`: unparsable values give the default.
fn to_int(
    v: &Value,
    default: Option<Value>,
    base: Option<u32>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let default = match default {
        Some(d) => d,
        None => kwargs
            .get::<Option<Value>>("default")?
            .unwrap_or(Value::from(0)),
    };
    let base = match base {
        Some(b) => b,
        None => kwargs.get::<Option<u32>>("base")?.unwrap_or(10),
    };
    if !(2..=36).contains(&base) {
        return Err(err("int: base must be between 2 and 36"));
    }
    Ok(match v.kind() {
        ValueKind::Bool => Value::from(v.is_true() as i64),
        ValueKind::Number => {
            if v.is_integer() {
                v.clone()
            } else {
                match f64::try_from(v.clone()) {
                    Ok(f) if f.is_finite() => Value::from(f.trunc() as i64),
                    _ => default,
                }
            }
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or("");
            match parse_int_str(s, base) {
                Some(n) => Value::from(n),
                None if base == 10 => match s.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() => Value::from(f.trunc() as i64),
                    _ => default,
                },
                None => default,
            }
        }
        _ => default,
    })
}

fn to_float(v: &Value, default: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let default = match default {
        Some(d) => d,
        None => kwargs
            .get::<Option<Value>>("default")?
            .unwrap_or(Value::from(0.0)),
    };
    Ok(match v.kind() {
        ValueKind::Bool => Value::from(if v.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(v.clone()).map(Value::from).unwrap_or(default),
        ValueKind::String => v
            .as_str()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map(Value::from)
            .unwrap_or(default),
        _ => default,
    })
}

/// Python `str()`.
fn to_string(v: &Value) -> Result<Value, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "undefined value passed to 'string'",
        ));
    }
    if v.kind() == ValueKind::String {
        return Ok(v.clone());
    }
    let mut s = String::new();
    if v.is_none() {
        s.push_str("None");
    } else {
        serialize::python_str(v, &mut s);
    }
    Ok(Value::from(s))
}

fn mandatory(v: &Value, msg: Option<String>) -> Result<Value, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            msg.unwrap_or_else(|| "mandatory variable not defined".to_string()),
        ));
    }
    Ok(v.clone())
}

// ---------------------------------------------------------------- json / yaml

fn to_json(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let opts = JsonOpts {
        indent: kwargs.get::<Option<usize>>("indent")?,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true),
    };
    Ok(Value::from_safe_string(serialize::json_dumps(
        &json_of(v)?,
        &opts,
    )))
}

fn to_nice_json(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let opts = JsonOpts {
        indent: Some(kwargs.get::<Option<usize>>("indent")?.unwrap_or(4)),
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true),
    };
    Ok(Value::from_safe_string(serialize::json_dumps(
        &json_of(v)?,
        &opts,
    )))
}

fn from_json(s: String) -> Result<Value, Error> {
    serde_json::from_str::<Json>(&s)
        .map(|j| Value::from(minijinja::value::Serde(&j)))
        .map_err(|e| err(format!("from_json: invalid JSON: {e}")))
}

fn to_yaml(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = kwargs.get::<Option<usize>>("indent")?.unwrap_or(2);
    Ok(Value::from_safe_string(serialize::yaml_dump(
        &json_of(v)?,
        indent,
        false,
    )))
}

fn to_nice_yaml(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = kwargs.get::<Option<usize>>("indent")?.unwrap_or(4);
    Ok(Value::from_safe_string(serialize::yaml_dump(
        &json_of(v)?,
        indent,
        true,
    )))
}

fn from_yaml(s: String) -> Result<Value, Error> {
    if s.trim().is_empty() {
        return Ok(Value::from(()));
    }
    // The same YAML reading as playbooks and vars files (PyYAML's booleans, octal `0644`).
    let file = std::sync::Arc::new(std::path::PathBuf::from("from_yaml"));
    crate::yaml::parse_str(&file, &s)
        .map(|n| Value::from(minijinja::value::Serde(&n.to_json())))
        .map_err(|e| err(format!("from_yaml: invalid YAML (line {}, column {}): {}", e.location.line, e.location.column, e.message)))
}

// ---------------------------------------------------------------- sets and lists

fn dedup(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn union(a: &Value, b: &Value) -> Result<Value, Error> {
    let mut items = iter_values(a)?;
    items.extend(iter_values(b)?);
    Ok(Value::from(dedup(items)))
}

fn intersect(a: &Value, b: &Value) -> Result<Value, Error> {
    let other = iter_values(b)?;
    Ok(Value::from(dedup(
        iter_values(a)?
            .into_iter()
            .filter(|x| other.contains(x))
            .collect(),
    )))
}

fn difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let other = iter_values(b)?;
    Ok(Value::from(dedup(
        iter_values(a)?
            .into_iter()
            .filter(|x| !other.contains(x))
            .collect(),
    )))
}

fn symmetric_difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let left = iter_values(a)?;
    let right = iter_values(b)?;
    let mut out: Vec<Value> = left
        .iter()
        .filter(|x| !right.contains(x))
        .cloned()
        .collect();
    out.extend(right.iter().filter(|x| !left.contains(x)).cloned());
    Ok(Value::from(dedup(out)))
}

fn flatten_into(
    v: &Value,
    levels: Option<i64>,
    skip_nulls: bool,
    out: &mut Vec<Value>,
) -> Result<(), Error> {
    for item in iter_values(v)? {
        if skip_nulls && item.is_none() {
            continue;
        }
        if item.kind() == ValueKind::Seq && levels.is_none_or(|l| l > 0) {
            flatten_into(&item, levels.map(|l| l - 1), skip_nulls, out)?;
        } else {
            out.push(item);
        }
    }
    Ok(())
}

fn flatten(v: &Value, levels: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let levels = match levels {
        Some(l) => Some(l),
        None => kwargs.get::<Option<Value>>("levels")?,
    };
    let levels = match levels {
        Some(l) if l.is_none() => None,
        Some(l) => Some(
            l.as_i64()
                .ok_or_else(|| err("flatten: levels must be an integer"))?,
        ),
        None => None,
    };
    let skip_nulls = kwargs.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
    let mut out = Vec::new();
    flatten_into(v, levels, skip_nulls, &mut out)?;
    Ok(Value::from(out))
}

pub(crate) fn dict2items(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key_name = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value_name = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    if v.kind() != ValueKind::Map {
        return Err(err(format!(
            "dict2items requires a dictionary, got {}",
            v.kind()
        )));
    }
    let mut out = Vec::new();
    for k in v.try_iter()? {
        let val = v.get_item(&k)?;
        let mut m = IndexMap::new();
        m.insert(Value::from(key_name.as_str()), k);
        m.insert(Value::from(value_name.as_str()), val);
        out.push(Value::from(m));
    }
    Ok(Value::from(out))
}

fn items2dict(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key_name = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value_name = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    let mut m = IndexMap::new();
    for item in iter_values(v)? {
        let k = item.get_attr(&key_name)?;
        let val = item.get_attr(&value_name)?;
        if k.is_undefined() || val.is_undefined() {
            return Err(err(format!(
                "items2dict: each item needs '{key_name}' and '{value_name}'"
            )));
        }
        m.insert(k, val);
    }
    Ok(Value::from(m))
}

fn product(v: &Value, others: Rest<Value>) -> Result<Value, Error> {
    let mut acc: Vec<Vec<Value>> = iter_values(v)?.into_iter().map(|x| vec![x]).collect();
    for other in others.iter() {
        let items = iter_values(other)?;
        let mut next = Vec::with_capacity(acc.len() * items.len());
        for prefix in &acc {
            for i in &items {
                let mut p = prefix.clone();
                p.push(i.clone());
                next.push(p);
            }
        }
        acc = next;
    }
    Ok(Value::from(
        acc.into_iter().map(Value::from).collect::<Vec<_>>(),
    ))
}

fn zip_longest(v: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let fill = kwargs
        .get::<Option<Value>>("fillvalue")?
        .unwrap_or(Value::from(()));
    let mut lists = vec![iter_values(v)?];
    for o in others.iter() {
        lists.push(iter_values(o)?);
    }
    let n = lists.iter().map(Vec::len).max().unwrap_or(0);
    let out: Vec<Value> = (0..n)
        .map(|i| {
            Value::from(
                lists
                    .iter()
                    .map(|l| l.get(i).cloned().unwrap_or(fill.clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    Ok(Value::from(out))
}

fn merge_json(a: Json, b: Json, recursive: bool, list_merge: &str) -> Json {
    match (a, b) {
        (Json::Object(mut x), Json::Object(y)) => {
            for (k, v) in y {
                match x.get_mut(&k) {
                    Some(slot) => {
                        let old = std::mem::take(slot);
                        *slot = match old {
                            old if recursive => merge_json(old, v, recursive, list_merge),
                            old @ Json::Array(_) if v.is_array() => merge_lists(old, v, list_merge),
                            _ => v,
                        };
                    }
                    None => {
                        x.insert(k, v);
                    }
                }
            }
            Json::Object(x)
        }
        (a @ Json::Array(_), b @ Json::Array(_)) => merge_lists(a, b, list_merge),
        (_, b) => b,
    }
}

fn merge_lists(a: Json, b: Json, mode: &str) -> Json {
    let (Json::Array(x), Json::Array(y)) = (a, b) else {
        return Json::Null;
    };
    let out = match mode {
        "keep" => x,
        "append" => x.into_iter().chain(y).collect(),
        "prepend" => y.into_iter().chain(x).collect(),
        "append_rp" => {
            let mut r: Vec<Json> = x.into_iter().filter(|i| !y.contains(i)).collect();
            r.extend(y);
            r
        }
        "prepend_rp" => {
            let mut r = y.clone();
            r.extend(x.into_iter().filter(|i| !y.contains(i)));
            r
        }
        _ => y,
    };
    Json::Array(out)
}

/// Jinja's `truncate(length=255, killwords=False, end='...', leeway=5)`.
fn truncate(s: String, length: Option<usize>, killwords: Option<bool>, end: Option<String>, leeway: Option<usize>) -> Result<String, Error> {
    let length = length.unwrap_or(255);
    let end = end.unwrap_or_else(|| "...".into());
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= length + leeway.unwrap_or(5) {
        return Ok(s);
    }
    let keep: String = chars[..length.saturating_sub(end.chars().count())].iter().collect();
    if killwords.unwrap_or(false) {
        return Ok(keep + &end);
    }
    let cut = keep.rsplit_once(' ').map_or(keep.as_str(), |(head, _)| head);
    Ok(format!("{cut}{end}"))
}

fn combine(v: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let recursive = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge = kwargs
        .get::<Option<String>>("list_merge")?
        .unwrap_or_else(|| "replace".into());
    if ![
        "replace",
        "keep",
        "append",
        "prepend",
        "append_rp",
        "prepend_rp",
    ]
    .contains(&list_merge.as_str())
    {
        return Err(err(format!("combine: invalid list_merge '{list_merge}'")));
    }
    kwargs.assert_all_used()?;
    // `[d1, d2] | combine`: the list's dicts, like the arguments'
    let mut dicts = if v.kind() == ValueKind::Seq { iter_values(v)? } else { vec![v.clone()] };
    for o in others.iter() {
        // combine also accepts lists of dicts
        if o.kind() == ValueKind::Seq {
            dicts.extend(iter_values(o)?);
        } else {
            dicts.push(o.clone());
        }
    }
    let mut acc = Json::Object(Default::default());
    for d in dicts {
        if d.kind() != ValueKind::Map {
            return Err(err(format!(
                "combine: expected dictionaries, got {}",
                d.kind()
            )));
        }
        acc = merge_json(acc, json_of(&d)?, recursive, &list_merge);
    }
    Ok(Value::from(minijinja::value::Serde(&acc)))
}

fn extract(item: &Value, container: &Value, morekeys: Option<Value>) -> Result<Value, Error> {
    let mut v = container.get_item(item)?;
    if let Some(keys) = morekeys {
        let keys = if keys.kind() == ValueKind::Seq {
            iter_values(&keys)?
        } else {
            vec![keys]
        };
        for k in keys {
            v = v.get_item(&k)?;
        }
    }
    Ok(v)
}

// ---------------------------------------------------------------- strings

fn b64encode(s: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn b64decode(s: String) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim().as_bytes())
        .map_err(|e| err(format!("b64decode: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn build_regex(pattern: &str, ignorecase: bool, multiline: bool) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| {
            err(format!(
                "invalid regular expression '{pattern}': {}",
                e.to_string().replace('\n', " ")
            ))
        })
}

/// Python replacement syntax (`\1`, `\g<name>`) to the regex crate's (`${1}`, `${name}`).
fn python_replacement(rep: &str) -> String {
    let mut out = String::with_capacity(rep.len());
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    let mut num = String::new();
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        num.push(d);
                        chars.next();
                        if num.len() == 2 {
                            break;
                        }
                    }
                    out.push_str(&format!("${{{num}}}"));
                }
                Some('g') => {
                    chars.next();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

fn regex_replace(
    value: String,
    pattern: Option<String>,
    replacement: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let pattern = pattern.or(kwargs.get("pattern")?).unwrap_or_default();
    let replacement = replacement
        .or(kwargs.get("replacement")?)
        .unwrap_or_default();
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    let count = kwargs.get::<Option<usize>>("count")?.unwrap_or(0);
    let re = build_regex(&pattern, ignorecase, multiline)?;
    let rep = python_replacement(&replacement);
    Ok(re.replacen(&value, count, rep.as_str()).into_owned())
}

fn regex_search(
    value: String,
    pattern: String,
    groups: Rest<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    let re = build_regex(&pattern, ignorecase, multiline)?;
    let Some(caps) = re.captures(&value) else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(Value::from(caps.get(0).map(|m| m.as_str()).unwrap_or("")));
    }
    let mut out = Vec::new();
    for g in groups.iter() {
        let m = if let Some(n) = g.strip_prefix("\\g<").and_then(|r| r.strip_suffix('>')) {
            match n.parse::<usize>() {
                Ok(i) => caps.get(i),
                Err(_) => caps.name(n),
            }
        } else if let Some(n) = g.strip_prefix('\\') {
            caps.get(
                n.parse::<usize>()
                    .map_err(|_| err(format!("regex_search: invalid group '{g}'")))?,
            )
        } else {
            return Err(err(format!("regex_search: unknown argument '{g}'")));
        };
        out.push(
            m.map(|m| Value::from(m.as_str()))
                .unwrap_or(Value::from(())),
        );
    }
    Ok(Value::from(out))
}

fn regex_findall(value: String, pattern: String, kwargs: Kwargs) -> Result<Value, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    let re = build_regex(&pattern, ignorecase, multiline)?;
    let ngroups = re.captures_len() - 1;
    let out: Vec<Value> = re
        .captures_iter(&value)
        .map(|c| match ngroups {
            0 => Value::from(c.get(0).map(|m| m.as_str()).unwrap_or("")),
            1 => Value::from(c.get(1).map(|m| m.as_str()).unwrap_or("")),
            n => Value::from(
                (1..=n)
                    .map(|i| Value::from(c.get(i).map(|m| m.as_str()).unwrap_or("")))
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    Ok(Value::from(out))
}

fn regex_escape(s: String) -> String {
    regex::escape(&s)
}

/// Python's `shlex.quote`.
pub(crate) fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_string();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn quote(v: &Value) -> Result<String, Error> {
    if v.is_none() {
        return Ok("''".into());
    }
    let mut s = String::new();
    serialize::python_str(v, &mut s);
    Ok(shell_quote(&s))
}

fn basename(s: String) -> String {
    match s.rfind('/') {
        Some(i) => s[i + 1..].to_string(),
        None => s,
    }
}

fn dirname(s: String) -> String {
    match s.rfind('/') {
        Some(i) => {
            let head = &s[..=i];
            if head.chars().all(|c| c == '/') {
                head.to_string()
            } else {
                head.trim_end_matches('/').to_string()
            }
        }
        None => String::new(),
    }
}

fn expanduser(s: String) -> String {
    if s == "~" || s.starts_with("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return format!(
                "{}{}",
                home.to_string_lossy().trim_end_matches('/'),
                &s[1..]
            );
        }
    }
    s
}

fn splitext(s: String) -> Value {
    let base_start = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    let base = &s[base_start..];
    let leading_dots = base.len() - base.trim_start_matches('.').len();
    match base[leading_dots..].rfind('.') {
        Some(i) => {
            let split = base_start + leading_dots + i;
            Value::from(vec![Value::from(&s[..split]), Value::from(&s[split..])])
        }
        None => Value::from(vec![Value::from(s.as_str()), Value::from("")]),
    }
}

/// Lexical normalisation (Python's `normpath`): no filesystem access.
fn realpath(s: String) -> String {
    if s.is_empty() {
        return ".".into();
    }
    let absolute = s.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// Python's `os.path.relpath(path, start)`: both made absolute from the controller's working
/// folder and normalized (lexically), then the way from `start` to `path`.
fn relpath(path: String, start: Option<String>) -> Result<String, Error> {
    if path.is_empty() {
        return Err(err("relpath: no path specified"));
    }
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "/".into());
    let absolute = |p: &str| realpath(if p.starts_with('/') { p.to_string() } else { format!("{cwd}/{p}") });
    let (path, start) = (absolute(&path), absolute(start.as_deref().unwrap_or(".")));
    let parts = |p: &str| -> Vec<String> { p.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect() };
    let (to, from) = (parts(&path), parts(&start));
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let rel: Vec<&str> = std::iter::repeat_n("..", from.len() - common).chain(to[common..].iter().map(String::as_str)).collect();
    Ok(if rel.is_empty() { ".".into() } else { rel.join("/") })
}

fn hash(s: String, algo: Option<String>) -> Result<String, Error> {
    let algo = algo.unwrap_or_else(|| "sha1".into());
    digest::hex_digest(&algo, s.as_bytes())
        .ok_or_else(|| err(format!("hash: unsupported algorithm '{algo}'")))
}

fn checksum(s: String) -> String {
    digest::sha1_hex(s.as_bytes())
}

/// Ansible's `password_hash`: `sha512` (the default), `sha256` and `md5`, also by passlib's
/// names (`sha512_crypt`...), as glibc's crypt makes them; a random salt when none is given
/// (16 characters, 8 for md5). `rounds` only for the SHA ones.
fn password_hash(
    s: String,
    scheme: Option<String>,
    salt: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let scheme = scheme
        .or(kwargs.get("hashtype")?)
        .unwrap_or_else(|| "sha512".into());
    let salt = salt.or(kwargs.get("salt")?);
    let rounds = kwargs.get::<Option<usize>>("rounds")?;
    let salt_size = kwargs.get::<Option<usize>>("salt_size")?;
    let random_salt = |n: usize| -> String {
        const CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut rng = rand::rng();
        (0..n).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
    };
    match scheme.as_str() {
        "sha512" | "sha512_crypt" | "sha256" | "sha256_crypt" => {
            let salt = salt.unwrap_or_else(|| random_salt(salt_size.unwrap_or(16)));
            Ok(digest::sha_crypt(scheme.starts_with("sha512"), s.as_bytes(), salt.as_bytes(), rounds))
        }
        "md5" | "md5_crypt" => {
            if rounds.is_some() {
                return Err(err("password_hash: md5 takes no rounds"));
            }
            let salt = salt.unwrap_or_else(|| random_salt(salt_size.unwrap_or(8)));
            Ok(digest::md5_crypt(s.as_bytes(), salt.as_bytes()))
        }
        other => Err(err(format!(
            "password_hash: unsupported hash type '{other}' (these are: sha512, sha256, md5)"
        ))),
    }
}

/// Jinja's `filesizeformat`: bytes as `1 Byte`, `999 Bytes`, `12.3 MB`, or with `binary`
/// `11.8 MiB` (one decimal, the largest unit below the value).
fn filesizeformat(value: Value, binary: Option<bool>, kwargs: Kwargs) -> Result<String, Error> {
    let binary = binary.or(kwargs.get("binary")?);
    kwargs.assert_all_used()?;
    let bytes = match value.as_str() {
        Some(s) => s.trim().parse::<f64>().map_err(|_| err(format!("filesizeformat: not a number: {s:?}")))?,
        None => f64::try_from(value.clone()).map_err(|_| err(format!("filesizeformat: not a number: {value}")))?,
    };
    let binary = binary.unwrap_or(false);
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let prefixes: [&str; 8] = if binary {
        ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    } else {
        ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    };
    if bytes == 1.0 {
        return Ok("1 Byte".into());
    }
    if bytes < base {
        return Ok(format!("{} Bytes", bytes.trunc() as i64));
    }
    let mut unit = base;
    for (i, prefix) in prefixes.iter().enumerate() {
        unit = base.powi(i as i32 + 2);
        if bytes < unit || i == prefixes.len() - 1 {
            return Ok(format!("{:.1} {prefix}", base * bytes / unit));
        }
    }
    Ok(format!("{:.1} {}", base * bytes / unit, prefixes[7]))
}

fn rng_for(seed: Option<Value>) -> rand::rngs::StdRng {
    match seed {
        Some(seed) if !seed.is_none() && !seed.is_undefined() => {
            let mut h = DefaultHasher::new();
            seed.to_string().hash(&mut h);
            rand::rngs::StdRng::seed_from_u64(h.finish())
        }
        _ => rand::rngs::StdRng::from_rng(&mut rand::rng()),
    }
}

/// `list | random`, `n | random(start=0, step=1)`, with optional `seed=`.
fn random(
    v: &Value,
    start: Option<i64>,
    step: Option<i64>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let seed = kwargs.get::<Option<Value>>("seed")?;
    let start = start.or(kwargs.get("start")?).unwrap_or(0);
    let step = step.or(kwargs.get("step")?).unwrap_or(1).max(1);
    let mut rng = rng_for(seed);
    if v.kind() == ValueKind::Number {
        let end = v
            .as_i64()
            .ok_or_else(|| err("random: expected an integer"))?;
        if end <= start {
            return Err(err("random: empty range"));
        }
        let n = (end - start + step - 1) / step;
        return Ok(Value::from(start + rng.random_range(0..n) * step));
    }
    let items = iter_values(v)?;
    if items.is_empty() {
        return Err(err("random: empty sequence"));
    }
    Ok(items[rng.random_range(0..items.len())].clone())
}

fn shuffle(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    use rand::seq::SliceRandom;
    let seed = kwargs.get::<Option<Value>>("seed")?;
    let mut items = iter_values(v)?;
    items.shuffle(&mut rng_for(seed));
    Ok(Value::from(items))
}

fn ternary(v: &Value, yes: Value, no: Value, none: Option<Value>) -> Value {
    if v.is_none() {
        if let Some(n) = none {
            return n;
        }
    }
    if v.is_true() {
        yes
    } else {
        no
    }
}

fn type_debug(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

fn human_readable(v: &Value, isbits: Option<bool>, unit: Option<String>) -> Result<String, Error> {
    let n = f64::try_from(v.clone()).map_err(|_| err("human_readable: expected a number"))?;
    let isbits = isbits.unwrap_or(false);
    let suffix = if isbits { "b" } else { "B" };
    let units = ["", "K", "M", "G", "T", "P", "E", "Z", "Y"];
    let idx = match unit {
        Some(u) => units
            .iter()
            .position(|x| x.eq_ignore_ascii_case(u.trim_end_matches(['B', 'b']).trim()))
            .ok_or_else(|| err(format!("human_readable: unknown unit '{u}'")))?,
        None => {
            let mut i = 0;
            while i + 1 < units.len() && n.abs() >= 1024f64.powi(i as i32 + 1) {
                i += 1;
            }
            i
        }
    };
    let scaled = n / 1024f64.powi(idx as i32);
    let label = if idx == 0 {
        if isbits {
            "bits".to_string()
        } else {
            "Bytes".to_string()
        }
    } else {
        format!("{}{}", units[idx], suffix)
    };
    Ok(format!("{scaled:.2} {label}"))
}

fn human_to_bytes(
    s: &Value,
    default_unit: Option<String>,
    isbits: Option<bool>,
) -> Result<i64, Error> {
    let _ = isbits;
    if let Some(n) = s.as_i64() {
        return Ok(n);
    }
    let text = s
        .as_str()
        .ok_or_else(|| err("human_to_bytes: expected a string"))?
        .trim()
        .to_string();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let num: f64 = text[..split]
        .trim()
        .parse()
        .map_err(|_| err(format!("human_to_bytes: can't interpret '{text}'")))?;
    let mut unit = text[split..].trim().to_string();
    if unit.is_empty() {
        unit = default_unit.unwrap_or_default();
    }
    let letter = unit.chars().next().map(|c| c.to_ascii_uppercase());
    let power = match letter {
        None | Some('B') => 0,
        Some('K') => 1,
        Some('M') => 2,
        Some('G') => 3,
        Some('T') => 4,
        Some('P') => 5,
        Some('E') => 6,
        Some('Z') => 7,
        Some('Y') => 8,
        _ => return Err(err(format!("human_to_bytes: unknown unit in '{text}'"))),
    };
    Ok((num * 1024f64.powi(power)).round() as i64)
}

fn comment(s: String, style: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let style = style.unwrap_or_else(|| "plain".into());
    let (prefix, decoration) = match style.as_str() {
        "plain" => ("#", "# "),
        "c" => ("//", "// "),
        "cblock" => ("/*", " * "),
        "erlang" => ("%", "% "),
        "xml" => ("<!--", " - "),
        _ => return Err(err(format!("comment: unknown style '{style}'"))),
    };
    let decoration = kwargs
        .get::<Option<String>>("decoration")?
        .unwrap_or_else(|| decoration.to_string());
    let postfix = match style.as_str() {
        "cblock" => "*/",
        "xml" => "-->",
        _ => prefix,
    };
    let mut out = String::new();
    out.push_str(prefix);
    out.push('\n');
    for line in s.lines() {
        out.push_str(decoration.trim_end_matches(' '));
        if !line.is_empty() {
            out.push_str(&decoration[decoration.trim_end_matches(' ').len()..]);
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(postfix);
    Ok(out)
}

fn center(s: String, width: Option<usize>) -> String {
    let width = width.unwrap_or(80);
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let total = width - len;
    // Python: left padding gets the extra space when `total` is odd and `len` is odd
    let left = total / 2 + (total & len & 1);
    let right = total - left;
    format!("{}{}{}", " ".repeat(left), s, " ".repeat(right))
}

fn wordcount(s: String) -> usize {
    s.split_whitespace().count()
}

fn to_uuid(s: String, namespace: Option<String>) -> String {
    // Deterministic name-based id (SHA-1 based, RFC 4122 version 5 layout).
    let ns = namespace.unwrap_or_else(|| "361E6D51-FAEC-444A-9079-341386DA8E2E".into());
    let ns_bytes = hex::decode(ns.replace('-', "")).unwrap_or_default();
    let mut data = ns_bytes;
    data.extend_from_slice(s.as_bytes());
    let h = digest::sha1(&data);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

// ---------------------------------------------------------------- defaults, paths, urls, dates

/// Ansible's `default(value='', boolean=False)` (also `d`): the value when `v` is undefined,
/// or (with `boolean`) false-ish; as keywords too (`default_value=`, `boolean=`), which
/// minijinja's own `default` takes for positional values. (A variable whose own value reads
/// an undefined name is undefined already: see the lazy variables.)
fn default(v: &Value, other: Option<Value>, boolean: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let other = match other {
        Some(o) => o,
        None => kwargs.get::<Option<Value>>("default_value")?.unwrap_or_else(|| Value::from("")),
    };
    let boolean = match boolean {
        Some(b) => b.is_true(),
        None => kwargs.get::<Option<bool>>("boolean")?.unwrap_or(false),
    };
    if v.is_undefined() || (boolean && !v.is_true()) {
        return Ok(other);
    }
    Ok(v.clone())
}

/// `users | subelements('keys', skip_missing=False)`: one `[element, subelement]` pair per
/// item of each element's list (`key` may be a dotted path).
fn subelements(v: &Value, key: String, skip_missing: Option<bool>, kwargs: Kwargs) -> Result<Value, Error> {
    let skip = match skip_missing {
        Some(s) => s,
        None => kwargs.get::<Option<bool>>("skip_missing")?.unwrap_or(false),
    };
    Ok(Value::from(subelement_pairs(v, &key, skip, false)?))
}

/// The pairs of `subelements` (filter and lookup). The lookup gives each element without
/// the list it iterates (`drop_key`), as Ansible's `with_subelements` does.
pub(crate) fn subelement_pairs(v: &Value, key: &str, skip_missing: bool, drop_key: bool) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for elem in iter_values(v)? {
        if elem.kind() != ValueKind::Map {
            return Err(err("subelements: the list must hold mappings"));
        }
        let mut cur = elem.clone();
        let mut missing = false;
        for part in key.split('.') {
            match cur.get_attr(part) {
                Ok(x) if !x.is_undefined() => cur = x,
                _ => {
                    missing = true;
                    break;
                }
            }
        }
        if missing {
            if skip_missing {
                continue;
            }
            return Err(err(format!("subelements: could not find '{key}' key in iterated item {}", json_of(&elem).map(|j| j.to_string()).unwrap_or_default())));
        }
        if cur.kind() != ValueKind::Seq {
            return Err(err(format!("subelements: the key '{key}' should point to a list")));
        }
        let parent = if drop_key && !key.contains('.') {
            let mut m = IndexMap::new();
            for k in elem.try_iter()? {
                if k.as_str() != Some(key) {
                    m.insert(k.clone(), elem.get_item(&k)?);
                }
            }
            Value::from(m)
        } else {
            elem.clone()
        };
        for sub in cur.try_iter()? {
            out.push(Value::from(vec![parent.clone(), sub]));
        }
    }
    Ok(out)
}

/// `['/etc', 'nginx', 'x.conf'] | path_join` as Python's `os.path.join`: a component that
/// starts with `/` starts over.
fn path_join(v: &Value) -> Result<String, Error> {
    if let Some(s) = v.as_str() {
        return Ok(s.to_string());
    }
    let mut out = String::new();
    for part in iter_values(v)? {
        let p = part.as_str().map(str::to_string).unwrap_or_else(|| part.to_string());
        if p.starts_with('/') {
            out = p;
        } else if out.is_empty() || out.ends_with('/') {
            out.push_str(&p);
        } else {
            out.push('/');
            out.push_str(&p);
        }
    }
    Ok(out)
}

/// `url | urlsplit` / `urlsplit('hostname')`: Python's `urllib.parse.urlsplit` fields
/// (scheme, netloc, path, query, fragment, username, password, hostname, port).
fn urlsplit(url: String, query: Option<String>) -> Result<Value, Error> {
    let mut rest = url.as_str();
    let mut scheme = "";
    if let Some(i) = rest.find(':') {
        let cand = &rest[..i];
        if !cand.is_empty() && cand.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && cand.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            scheme = cand;
            rest = &rest[i + 1..];
        }
    }
    let mut netloc = "";
    if let Some(r) = rest.strip_prefix("//") {
        let end = r.find(['/', '?', '#']).unwrap_or(r.len());
        netloc = &r[..end];
        rest = &r[end..];
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, q) = rest.split_once('?').unwrap_or((rest, ""));
    let (userinfo, hostport) = match netloc.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, netloc),
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Value::from(a), Value::from(b)),
            None => (Value::from(u), Value::from(())),
        },
        None => (Value::from(()), Value::from(())),
    };
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        match r.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').unwrap_or("")),
            None => (r, ""),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (hostport, ""),
        }
    };
    let port = if port.is_empty() {
        Value::from(())
    } else {
        match port.parse::<u16>() {
            Ok(p) => Value::from(p),
            Err(_) => return Err(err(format!("urlsplit: port could not be cast to integer value as '{port}'"))),
        }
    };
    let hostname = if host.is_empty() { Value::from(()) } else { Value::from(host.to_lowercase()) };
    let fields: Vec<(&str, Value)> = vec![
        ("fragment", Value::from(fragment)),
        ("hostname", hostname),
        ("netloc", Value::from(netloc)),
        ("password", password),
        ("path", Value::from(path)),
        ("port", port),
        ("query", Value::from(q)),
        ("scheme", Value::from(scheme.to_lowercase())),
        ("username", username),
    ];
    match query {
        None => Ok(Value::from(fields.into_iter().map(|(k, v)| (Value::from(k), v)).collect::<IndexMap<Value, Value>>())),
        Some(q) => fields
            .into_iter()
            .find(|(k, _)| *k == q)
            .map(|(_, v)| v)
            .ok_or_else(|| err(format!("urlsplit: unknown URL component: {q}"))),
    }
}

/// `dict(a=1)`, `dict(mapping)`, and Ansible's `dict(keys | zip(values))`: a mapping from
/// another mapping or from a list of pairs, then the keyword arguments.
fn dict(from: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let mut m: IndexMap<Value, Value> = IndexMap::new();
    if let Some(v) = from {
        if v.kind() == ValueKind::Map {
            for k in v.try_iter()? {
                let val = v.get_item(&k)?;
                m.insert(k, val);
            }
        } else if !v.is_none() {
            for pair in iter_values(&v)? {
                let kv = iter_values(&pair)?;
                if kv.len() != 2 {
                    return Err(err("dict(): each item of the list must be a pair (key, value)"));
                }
                m.insert(kv[0].clone(), kv[1].clone());
            }
        }
    }
    for k in kwargs.args() {
        m.insert(Value::from(k), kwargs.get::<Value>(k)?);
    }
    Ok(Value::from(m))
}

/// `now()`, `now(utc=true)`, `now(fmt='%Y-%m-%d')`: the controller's time, as a value with
/// Python datetime's fields (`year`... `microsecond`) and methods (`strftime`, `isoformat`,
/// `timestamp`), printed like Python's `str(datetime)`.
fn now(kwargs: Kwargs) -> Result<Value, Error> {
    let utc = kwargs.get::<Option<bool>>("utc")?.unwrap_or(false);
    let fmt = kwargs.get::<Option<String>>("fmt")?;
    kwargs.assert_all_used()?;
    let at = chrono::Utc::now();
    let t = if utc { at.naive_utc() } else { at.with_timezone(&chrono::Local).naive_local() };
    match fmt {
        Some(f) => Ok(Value::from(strftime(&t, &f)?)),
        None => Ok(Value::from_object(DateTime(t, at.timestamp_micros()))),
    }
}

fn strftime(t: &chrono::NaiveDateTime, fmt: &str) -> Result<String, Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    write!(out, "{}", t.format(fmt)).map_err(|_| err(format!("strftime: bad format '{fmt}'")))?;
    Ok(out)
}

#[derive(Debug)]
struct DateTime(chrono::NaiveDateTime, i64);

impl minijinja::value::Object for DateTime {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    fn get_value(self: &std::sync::Arc<Self>, key: &Value) -> Option<Value> {
        use chrono::{Datelike, Timelike};
        let t = &self.0;
        Some(Value::from(match key.as_str()? {
            "year" => t.year() as i64,
            "month" => t.month() as i64,
            "day" => t.day() as i64,
            "hour" => t.hour() as i64,
            "minute" => t.minute() as i64,
            "second" => t.second() as i64,
            "microsecond" => (t.nanosecond() / 1000) as i64,
            _ => return None,
        }))
    }

    fn call_method(self: &std::sync::Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let f = args.first().and_then(|a| a.as_str()).ok_or_else(|| err("strftime() needs a format string"))?;
                Ok(Value::from(strftime(&self.0, f)?))
            }
            "isoformat" => Ok(Value::from(self.0.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())),
            "timestamp" => Ok(Value::from(self.1 as f64 / 1e6)),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &std::sync::Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S%.6f"))
    }
}
