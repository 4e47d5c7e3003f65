//! Output forms that mimic Python/Ansible: `str()` and `repr()` of values, `json.dumps`
//! (to_json / to_nice_json) and PyYAML's dumper (to_yaml / to_nice_yaml).

use minijinja::value::ValueKind;
use minijinja::Value;
use serde_json::Value as Json;
use std::fmt::Write;

/// Python `str()`: how Ansible prints a value into a template.
pub(crate) fn python_str(v: &Value, out: &mut String) {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => {}
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::String => out.push_str(v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => python_repr(v, out, 0),
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

fn repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python `repr()`.
pub(crate) fn python_repr(v: &Value, out: &mut String, depth: usize) {
    if depth > 100 {
        out.push_str("...");
        return;
    }
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::String => repr_str(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(iter) = v.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    python_repr(&item, out, depth + 1);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(iter) = v.try_iter() {
                for (i, key) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    python_repr(&key, out, depth + 1);
                    out.push_str(": ");
                    let val = v.get_item(&key).unwrap_or(Value::UNDEFINED);
                    python_repr(&val, out, depth + 1);
                }
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

/// Options of Python's `json.dumps` as Ansible's to_json/to_nice_json use them.
pub(crate) struct JsonOpts {
    pub indent: Option<usize>,
    pub sort_keys: bool,
    pub ensure_ascii: bool,
}

pub(crate) fn json_dumps(v: &Json, opts: &JsonOpts) -> String {
    let mut out = String::new();
    json_write(v, opts, 0, &mut out);
    out
}

fn json_str(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_number(n: &serde_json::Number, out: &mut String) {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
            let _ = write!(out, "{f:.1}");
        } else {
            let _ = write!(out, "{f}");
        }
    } else {
        let _ = write!(out, "{n}");
    }
}

fn json_write(v: &Json, opts: &JsonOpts, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(ind) = opts.indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', ind * level));
        }
    };
    let item_sep = if opts.indent.is_some() { "," } else { ", " };
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => json_number(n, out),
        Json::String(s) => json_str(s, opts.ensure_ascii, out),
        Json::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                json_write(item, opts, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Json::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Json)> = m.iter().collect();
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                json_str(k, opts.ensure_ascii, out);
                out.push_str(": ");
                json_write(val, opts, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

// ---------------------------------------------------------------- YAML (PyYAML-like)

fn yaml_needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return true;
    }
    // What PyYAML's resolver would read back as a boolean, null or special float (it knows
    // these spellings only: `y`, `n` and `yEs` stay plain strings).
    const WORDS: &[&str] = &[
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(lower.as_str(), ".inf" | "-.inf" | "+.inf" | ".nan") {
        return true;
    }
    if s.parse::<f64>().is_ok() || looks_numeric(s) {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return true;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    if s.contains([',', '[', ']', '{', '}']) {
        return true;
    }
    // dates/timestamps would be re-read as such
    let b = s.as_bytes();
    if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..4].iter().all(u8::is_ascii_digit) {
        return true;
    }
    false
}

fn looks_numeric(s: &str) -> bool {
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let t = t.replace('_', "");
    !t.is_empty()
        && (t
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E')
            && t.chars().any(|c| c.is_ascii_digit())
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '.')
            || t.starts_with("0x")
            || t.starts_with("0o")
            || t.contains(':')
                && t.split(':')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
}

fn yaml_scalar(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => json_number(n, out),
        Json::String(s) => {
            if s.chars().any(|c| c.is_control()) {
                json_str(s, false, out);
            } else if yaml_needs_quotes(s) {
                out.push('\'');
                out.push_str(&s.replace('\'', "''"));
                out.push('\'');
            } else {
                out.push_str(s);
            }
        }
        other => yaml_flow(other, out),
    }
}

fn yaml_flow(v: &Json, out: &mut String) {
    match v {
        Json::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_flow(item, out);
            }
            out.push(']');
        }
        Json::Object(m) => {
            out.push('{');
            for (i, (k, item)) in sorted(m).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_scalar(&Json::String(k.clone()), out);
                out.push_str(": ");
                yaml_flow(item, out);
            }
            out.push('}');
        }
        scalar => yaml_scalar(scalar, out),
    }
}

fn sorted(m: &serde_json::Map<String, Json>) -> Vec<(&String, &Json)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn is_collection(v: &Json) -> bool {
    matches!(v, Json::Array(a) if !a.is_empty()) || matches!(v, Json::Object(m) if !m.is_empty())
}

/// PyYAML's `default_flow_style=None`: collections holding only scalars go in flow style.
fn use_flow(v: &Json, nice: bool) -> bool {
    if nice {
        return false;
    }
    match v {
        Json::Array(a) => a.iter().all(|x| !is_collection(x)),
        Json::Object(m) => m.values().all(|x| !is_collection(x)),
        _ => true,
    }
}

pub(crate) fn yaml_dump(v: &Json, indent: usize, nice: bool) -> String {
    let indent = indent.clamp(2, 9);
    let mut out = String::new();
    if !is_collection(v) || use_flow(v, nice) {
        yaml_scalar(v, &mut out);
        out.push('\n');
        return out;
    }
    yaml_block(v, 0, indent, nice, &mut out);
    out
}

fn yaml_block(v: &Json, level: usize, indent: usize, nice: bool, out: &mut String) {
    let pad = " ".repeat(level);
    match v {
        Json::Object(m) => {
            for (k, val) in sorted(m) {
                out.push_str(&pad);
                yaml_scalar(&Json::String(k.clone()), out);
                out.push(':');
                if !is_collection(val) || use_flow(val, nice) {
                    out.push(' ');
                    yaml_scalar(val, out);
                    out.push('\n');
                } else if val.is_array() {
                    out.push('\n');
                    yaml_block(val, level, indent, nice, out);
                } else {
                    out.push('\n');
                    yaml_block(val, level + indent, indent, nice, out);
                }
            }
        }
        Json::Array(a) => {
            // PyYAML: a collection item starts its block right after the dash, at the next
            // indentation; a scalar item follows "- ".
            let prefix = format!("-{}", " ".repeat(indent - 1));
            for item in a {
                if !is_collection(item) || use_flow(item, nice) {
                    out.push_str(&pad);
                    out.push_str("- ");
                    yaml_scalar(item, out);
                    out.push('\n');
                } else {
                    let mut inner = String::new();
                    yaml_block(item, level + indent, indent, nice, &mut inner);
                    out.push_str(&pad);
                    out.push_str(&prefix);
                    out.push_str(inner.get(level + indent..).unwrap_or(""));
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            yaml_scalar(scalar, out);
            out.push('\n');
        }
    }
}
