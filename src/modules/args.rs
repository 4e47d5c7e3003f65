//! Typed module arguments: serde structs with `deny_unknown_fields` are the argument spec.
//! Helpers here give Ansible's leniency (`yes`/`no` booleans, `"0644"` modes, comma lists).

use super::ModuleError;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Deserialize a module's arguments, turning serde's messages into ones that name the module and
/// list the valid parameters.
pub fn parse<T: DeserializeOwned>(module: &str, valid: &[&str], args: &Map<String, Value>) -> Result<T, ModuleError> {
    for k in args.keys() {
        if !valid.contains(&k.as_str()) {
            return Err(ModuleError::Args(format!(
                "unsupported parameter '{k}' for module '{module}'; valid parameters: {}",
                valid.join(", ")
            )));
        }
    }
    serde_json::from_value(Value::Object(args.clone()))
        .map_err(|e| ModuleError::Args(format!("module '{module}': {e}")))
}

/// Ansible's `state: present|absent` (default `present`): true for present.
pub fn present_state(module: &str, state: Option<&str>) -> Result<bool, ModuleError> {
    match state.unwrap_or("present") {
        "present" => Ok(true),
        "absent" => Ok(false),
        s => Err(ModuleError::Args(format!("{module}: state must be present or absent, got '{s}'"))),
    }
}

/// A trimmed user or group name (`module` is `user` or `group`): not empty, no leading `-`, none
/// of `forbidden`.
pub fn account_name(module: &str, name: &str, forbidden: &[char]) -> Result<String, ModuleError> {
    let name = name.trim().to_string();
    if name.is_empty() || name.starts_with('-') || name.contains(forbidden) {
        return Err(ModuleError::Args(format!("{module}: invalid {module} name '{name}'")));
    }
    Ok(name)
}

/// An optional numeric id (`uid`, `gid`); blank means not given.
pub fn opt_id(module: &str, field: &str, v: Option<&str>) -> Result<Option<u32>, ModuleError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<u32>()
            .map(Some)
            .map_err(|_| ModuleError::Args(format!("{module}: {field} must be a number, got '{s}'"))),
    }
}

/// Ansible truthiness for a parameter value.
pub fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "on" | "1" | "t" => Some(true),
            "no" | "n" | "false" | "off" | "0" | "f" | "" => Some(false),
            _ => None,
        },
        Value::Null => Some(false),
        _ => None,
    }
}

/// `#[serde(deserialize_with = "args::boolish")]` for `bool` fields.
pub fn boolish<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Value::deserialize(d)?;
    truthy(&v).ok_or_else(|| D::Error::custom(format!("expected a boolean (yes/no/true/false), got {v}")))
}

/// `#[serde(default, deserialize_with = "args::opt_boolish")]` for `Option<bool>` fields.
pub fn opt_boolish<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    truthy(&v).map(Some).ok_or_else(|| D::Error::custom(format!("expected a boolean (yes/no/true/false), got {v}")))
}

/// A list given as a YAML list or a comma-separated string.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_list(&v).map_err(D::Error::custom)
}

/// `Option<Vec<String>>` variant of [`list`].
pub fn opt_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    value_to_list(&v).map(Some).map_err(D::Error::custom)
}

pub fn value_to_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()),
        Value::Array(a) => a.iter().map(scalar_string).collect(),
        other => scalar_string(other).map(|s| vec![s]),
    }
}

/// A scalar as a string (numbers and booleans too).
pub fn scalar_string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, got {other}")),
    }
}

/// `Option<String>` that also accepts numbers/booleans (`owner: 1000`, `port: 22`).
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    scalar_string(&v).map(Some).map_err(D::Error::custom)
}

/// A file mode: YAML octal int (`0644`, read as 420), string `"0644"`/`"644"`, or symbolic
/// (`u=rw,g=r,o=r`, `u+x`): kept as given for symbolic, normalised to 4-digit octal otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Octal(u32),
    Symbolic(String),
}

impl Mode {
    pub fn parse(v: &Value) -> Result<Mode, String> {
        match v {
            Value::Number(n) => {
                let i = n.as_u64().ok_or_else(|| format!("invalid mode {n}"))?;
                // YAML 1.1 `0644` arrives as 420 already; a bare `644` (decimal) is almost always
                // meant as octal, like Ansible warns about: accept digits that are all octal.
                let s = i.to_string();
                if i > 0o7777 || (s.len() == 3 && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) && i > 0o777) {
                    u32::from_str_radix(&s, 8).map(Mode::Octal).map_err(|_| format!("invalid mode {n}"))
                } else {
                    Ok(Mode::Octal(i as u32))
                }
            }
            Value::String(s) => {
                let t = s.trim();
                if !t.is_empty() && t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    let m = u32::from_str_radix(t, 8).map_err(|_| format!("invalid mode {t}"))?;
                    if m > 0o7777 {
                        return Err(format!("invalid mode {t}"));
                    }
                    Ok(Mode::Octal(m))
                } else if regex::Regex::new(r"^([ugoa]*[-+=][rwxXst]*)(,[ugoa]*[-+=][rwxXst]*)*$").unwrap().is_match(t) {
                    Ok(Mode::Symbolic(t.to_string()))
                } else {
                    Err(format!("invalid mode '{t}' (use an octal string like \"0644\" or symbolic like u=rw,g=r)"))
                }
            }
            other => Err(format!("invalid mode {other}")),
        }
    }

    /// Apply to an existing octal mode (for symbolic modes), giving the resulting octal mode.
    pub fn resolve(&self, current: u32, is_dir: bool) -> u32 {
        match self {
            Mode::Octal(m) => *m,
            Mode::Symbolic(s) => {
                let mut mode = current & 0o7777;
                for clause in s.split(',') {
                    let op_pos = clause.find(['+', '-', '=']).unwrap_or(clause.len());
                    let (who, rest) = clause.split_at(op_pos);
                    let op = rest.chars().next().unwrap_or('=');
                    let perms = &rest[op.len_utf8().min(rest.len())..];
                    let who: Vec<char> = if who.is_empty() || who.contains('a') { vec!['u', 'g', 'o'] } else { who.chars().collect() };
                    for w in who {
                        let shift = match w { 'u' => 6, 'g' => 3, _ => 0 };
                        let mut bits = 0u32;
                        for p in perms.chars() {
                            bits |= match p {
                                'r' => 4 << shift,
                                'w' => 2 << shift,
                                'x' => 1 << shift,
                                'X' if is_dir || current & 0o111 != 0 => 1 << shift,
                                's' if w == 'u' => 0o4000,
                                's' if w == 'g' => 0o2000,
                                't' if w == 'o' => 0o1000,
                                _ => 0,
                            };
                        }
                        let mask = (7 << shift) | match w { 'u' => 0o4000, 'g' => 0o2000, _ => 0o1000 };
                        match op {
                            '+' => mode |= bits,
                            '-' => mode &= !bits,
                            _ => mode = (mode & !mask) | bits,
                        }
                    }
                }
                mode
            }
        }
    }
}

/// `#[serde(default, deserialize_with = "args::opt_mode")]` for `Option<Mode>` fields.
pub fn opt_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mode>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    Mode::parse(&v).map(Some).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes() {
        assert_eq!(Mode::parse(&json!(420)).unwrap(), Mode::Octal(0o644));
        assert_eq!(Mode::parse(&json!(644)).unwrap(), Mode::Octal(0o644));
        assert_eq!(Mode::parse(&json!("0755")).unwrap(), Mode::Octal(0o755));
        assert_eq!(Mode::parse(&json!("u=rw,g=r,o=")).unwrap().resolve(0o777, false), 0o640);
        assert_eq!(Mode::parse(&json!("u+x")).unwrap().resolve(0o644, false), 0o744);
        assert_eq!(Mode::parse(&json!("a+X")).unwrap().resolve(0o644, true), 0o755);
        assert!(Mode::parse(&json!("rwx")).is_err());
    }

    #[test]
    fn booleans_and_lists() {
        assert_eq!(truthy(&json!("yes")), Some(true));
        assert_eq!(truthy(&json!("False")), Some(false));
        assert_eq!(value_to_list(&json!("a, b")).unwrap(), vec!["a", "b"]);
        assert_eq!(value_to_list(&json!(["a", 1])).unwrap(), vec!["a", "1"]);
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct P {
        #[serde(deserialize_with = "boolish")]
        force: bool,
    }

    #[test]
    fn unknown_parameters_list_the_valid_ones() {
        let mut m = Map::new();
        m.insert("forse".into(), json!(true));
        let e = parse::<P>("x", &["force"], &m).unwrap_err().to_string();
        assert!(e.contains("'forse'") && e.contains("force"), "{e}");
        m.clear();
        m.insert("force".into(), json!("yes"));
        assert!(parse::<P>("x", &["force"], &m).unwrap().force);
    }
}
