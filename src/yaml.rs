//! YAML loading with source locations.
//!
//! Every user file (playbooks, roles, inventories, vars files) is parsed into a [`Node`] tree
//! that remembers where each value came from, so later errors (unknown module, bad parameter,
//! undefined variable) can point at `file:line:column`.

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a value was written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub file: Arc<PathBuf>,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone)]
pub struct Node {
    pub value: NodeValue,
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Clone)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(IndexMap<String, Node>),
    /// A `!vault` scalar as written; [`parse_str`] replaces it with what it decrypts to.
    Vault(String),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&IndexMap<String, Node>> {
        match &self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_seq(&self) -> Option<&Vec<Node>> {
        match &self.value {
            NodeValue::Seq(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Null)
    }
    pub fn kind(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "boolean",
            NodeValue::Int(_) | NodeValue::Float(_) => "number",
            NodeValue::Str(_) | NodeValue::Vault(_) => "string",
            NodeValue::Seq(_) => "list",
            NodeValue::Map(_) => "mapping",
        }
    }
    /// The value without positions, as JSON (what templates and modules see).
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            NodeValue::Str(s) | NodeValue::Vault(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
    pub fn location(&self, file: &Arc<PathBuf>) -> Location {
        Location { file: file.clone(), line: self.line, column: self.column }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<serde_saphyr::Tagged<NodeValue>>::deserialize(d)?;
        let serde_saphyr::Tagged(value, tag) = spanned.value;
        let value = match (value, tag.as_deref()) {
            (NodeValue::Str(s), Some("!vault")) => NodeValue::Vault(s),
            (v, _) => v,
        };
        Ok(Node {
            value,
            line: spanned.referenced.line() as u32,
            column: spanned.referenced.column() as u32,
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_none<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
        i64::try_from(v).map(NodeValue::Int).or(Ok(NodeValue::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut out = IndexMap::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let value = map.next_value::<Node>()?;
            if out.contains_key(&key.0) {
                DUPLICATES.with(|d| d.borrow_mut().push((key.0.clone(), value.line, value.column)));
            }
            out.insert(key.0, value);
        }
        Ok(NodeValue::Map(out))
    }
}

/// Mapping keys: YAML allows non-string keys (`80: x`, `true: y`); we keep their text.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Ask for the key's text, so `y:`/`n:` stay keys named y and n (serde-saphyr's YAML 1.1
        // booleans are wider than PyYAML's, which Ansible uses).
        d.deserialize_string(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = KeyString;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }
    fn visit_str<E>(self, v: &str) -> Result<KeyString, E> {
        Ok(KeyString(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<KeyString, E> {
        Ok(KeyString(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<KeyString, E> {
        Ok(KeyString(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<KeyString, E> {
        Ok(KeyString(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<KeyString, E> {
        Ok(KeyString(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<KeyString, E> {
        Ok(KeyString(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<KeyString, E> {
        Ok(KeyString("null".into()))
    }
}

/// A YAML syntax or structure error, with a snippet of the offending line.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}\n{snippet}")]
pub struct YamlError {
    pub location: Location,
    pub message: String,
    pub snippet: String,
}

impl YamlError {
    pub fn at(file: &Arc<PathBuf>, source: &str, line: u32, column: u32, message: impl Into<String>) -> Self {
        YamlError {
            location: Location { file: file.clone(), line, column },
            message: message.into(),
            snippet: snippet(source, line, column),
        }
    }
}

/// Two lines of context and a caret under the column.
pub fn snippet(source: &str, line: u32, column: u32) -> String {
    if line == 0 {
        return String::new();
    }
    let lines: Vec<&str> = source.lines().collect();
    let idx = (line as usize).saturating_sub(1);
    let start = idx.saturating_sub(2);
    let mut out = String::new();
    for (i, text) in lines.iter().enumerate().take(idx + 1).skip(start) {
        out.push_str(&format!("{:>5} | {}\n", i + 1, text));
    }
    out.push_str(&format!("      | {}^", " ".repeat(column.saturating_sub(1) as usize)));
    out
}

thread_local! {
    /// Keys found twice in a mapping while parsing (key, line and column of the last value).
    static DUPLICATES: std::cell::RefCell<Vec<(String, u32, u32)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn options() -> serde_saphyr::Options {
    // Ansible reads YAML 1.1: `0644` is octal, `yes`/`no` are booleans. A key given twice in a
    // mapping: the last one counts, with a warning, as in Ansible.
    let mut o = serde_saphyr::Options::default();
    o.legacy_octal_numbers = true;
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    o
}

/// Parse YAML text; `file` is only used for messages. A vault-encrypted text (a whole file
/// made with `ansible-vault encrypt`) is decrypted first, and `!vault` values are replaced by
/// what they decrypt to, with the run's vault passwords ([`crate::vault::install`]).
pub fn parse_str(file: &Arc<PathBuf>, source: &str) -> Result<Node, YamlError> {
    if crate::vault::is_encrypted(source.as_bytes()) {
        let plain = crate::vault::decrypt_text(source).map_err(|e| YamlError::at(file, source, 1, 1, e.to_string()))?;
        let node = parse_plain(file, &plain).map_err(|e| YamlError { snippet: String::new(), ..e })?;
        reveal_strings(&node);
        return Ok(node);
    }
    parse_plain(file, source)
}

/// Every string of a decrypted vars file is secret.
fn reveal_strings(node: &Node) {
    match &node.value {
        NodeValue::Str(s) => crate::vault::reveal(s),
        NodeValue::Seq(items) => items.iter().for_each(reveal_strings),
        NodeValue::Map(m) => m.values().for_each(reveal_strings),
        _ => {}
    }
}

/// A `!vault` value is decrypted when the file is read. When it can't be (no password given,
/// or none that fits) it becomes a template that fails when the value is used, so a run
/// that never uses it needs no password, as in Ansible, and one that does says where it is.
fn decrypt_vaults(node: &mut Node, file: &Arc<PathBuf>) {
    match &mut node.value {
        NodeValue::Vault(text) => {
            let at = Location { file: file.clone(), line: node.line, column: node.column };
            node.value = match crate::vault::decrypt_text(text) {
                Ok(plain) => {
                    crate::vault::reveal(&plain);
                    NodeValue::Str(plain)
                }
                Err(e) => NodeValue::Str(vault_error(&at, &e.to_string())),
            };
        }
        NodeValue::Seq(items) => items.iter_mut().for_each(|n| decrypt_vaults(n, file)),
        NodeValue::Map(m) => m.values_mut().for_each(|n| decrypt_vaults(n, file)),
        _ => {}
    }
}

/// A template that fails with `message` when rendered (the templar's `__provision_fail`).
fn vault_error(at: &Location, message: &str) -> String {
    let text = serde_json::to_string(&format!("{at}: this !vault value cannot be read: {message}")).expect("a string");
    format!("{{{{ __provision_fail({text}) }}}}")
}

fn parse_plain(file: &Arc<PathBuf>, source: &str) -> Result<Node, YamlError> {
    if source.trim().is_empty() || source.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---") {
        return Ok(Node { value: NodeValue::Null, line: 1, column: 1 });
    }
    DUPLICATES.with(|d| d.borrow_mut().clear());
    let parsed = serde_saphyr::from_str_with_options::<Node>(source, options());
    for (key, line, column) in DUPLICATES.with(|d| std::mem::take(&mut *d.borrow_mut())) {
        tracing::warn!("{}:{line}:{column}: the key '{key}' is given twice in this mapping; the last one is used", file.display());
    }
    let mut node = parsed.map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line() as u32, l.column() as u32)).unwrap_or((0, 0));
        // serde-saphyr starts with "error: line L column C: ", which the location says.
        let text = first_line(&e.to_string());
        let message = match text.strip_prefix("error: line ").and_then(|r| r.split_once(": ")) {
            Some((position, rest)) if position.contains(" column ") => rest.to_string(),
            _ => text,
        };
        YamlError::at(file, source, line, column, message)
    })?;
    let lines: Vec<&str> = source.lines().collect();
    pyyaml_booleans(&mut node, &lines);
    decrypt_vaults(&mut node, file);
    Ok(node)
}

/// PyYAML, which Ansible uses, reads only `yes|no|true|false|on|off` in lower, Title or UPPER
/// case as booleans; serde-saphyr's YAML 1.1 also reads `y`/`n` and any mixed case. A plain
/// scalar written that way (`loop: [x, y]`, a debconf answer `n`) stays a string.
fn pyyaml_booleans(node: &mut Node, lines: &[&str]) {
    match &mut node.value {
        NodeValue::Bool(_) => {
            let Some(line) = lines.get((node.line as usize).wrapping_sub(1)) else { return };
            let Some(rest) = line.char_indices().nth((node.column as usize).wrapping_sub(1)).map(|(i, _)| &line[i..]) else { return };
            let token = rest.split(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#')).next().unwrap_or("");
            const PYYAML: &[&str] = &["yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF"];
            let yaml11 = ["y", "n", "yes", "no", "true", "false", "on", "off"].iter().any(|w| token.eq_ignore_ascii_case(w));
            if yaml11 && !PYYAML.contains(&token) {
                node.value = NodeValue::Str(token.to_string());
            }
        }
        NodeValue::Seq(items) => items.iter_mut().for_each(|n| pyyaml_booleans(n, lines)),
        NodeValue::Map(map) => map.values_mut().for_each(|n| pyyaml_booleans(n, lines)),
        _ => {}
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("invalid YAML").to_string()
}

/// Read and parse a YAML file.
pub fn load_file(path: &Path) -> Result<(Arc<PathBuf>, String, Node), YamlError> {
    let file = Arc::new(path.to_path_buf());
    let source = std::fs::read_to_string(path).map_err(|e| YamlError {
        location: Location { file: file.clone(), line: 0, column: 0 },
        message: format!("cannot read file: {e}"),
        snippet: String::new(),
    })?;
    let node = parse_str(&file, &source)?;
    Ok((file, source, node))
}

/// Parse YAML straight into JSON values (vars files, inventories).
pub fn load_json(path: &Path) -> Result<Value, YamlError> {
    load_file(path).map(|(_, _, n)| n.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Node, YamlError> {
        parse_str(&Arc::new(PathBuf::from("t.yml")), s)
    }

    #[test]
    fn a_key_given_twice_keeps_the_last_value() {
        let n = parse("a: 1\nb: 2\na: 3\n").unwrap();
        assert_eq!(n.to_json(), serde_json::json!({"a": 3, "b": 2}));
    }

    #[test]
    fn syntax_errors_say_where_once() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert_eq!((e.location.line, e.location.column), (2, 4));
        assert_eq!(e.message, "unclosed bracket '['");
        assert!(e.to_string().starts_with("t.yml:2:4: unclosed bracket '['\n    1 | a: 1\n"), "{e}");
    }

    #[test]
    fn keeps_positions_of_nested_values() {
        let n = parse("- name: a\n  file:\n    path: /x\n").unwrap();
        let task = &n.as_seq().unwrap()[0];
        let file = &task.as_map().unwrap()["file"];
        assert_eq!((file.line, file.column), (3, 5));
        assert_eq!(file.as_map().unwrap()["path"].as_str(), Some("/x"));
    }

    #[test]
    fn yaml_1_1_scalars_like_ansible() {
        let n = parse("mode: 0644\nflag: yes\nother: no\nport: 80\n").unwrap().to_json();
        assert_eq!(n["mode"], 420);
        assert_eq!(n["flag"], true);
        assert_eq!(n["other"], false);
        assert_eq!(n["port"], 80);
    }

    #[test]
    fn booleans_are_pyyamls_not_every_yaml_1_1_spelling() {
        let n = parse("l: [x, y, n, Y, N]\nblock:\n  - y\n  - yes\n  - On\n  - oFF\nanswer: n # a debconf answer\nflags: {a: TRUE, b: no, c: Yes}\nquoted: 'yes'\ntagged: !!bool true\n").unwrap().to_json();
        assert_eq!(n["l"], serde_json::json!(["x", "y", "n", "Y", "N"]));
        assert_eq!(n["block"], serde_json::json!(["y", true, true, "oFF"]));
        assert_eq!(n["answer"], "n");
        assert_eq!(n["flags"], serde_json::json!({"a": true, "b": false, "c": true}));
        assert_eq!(n["quoted"], "yes");
        assert_eq!(n["tagged"], true);
    }

    #[test]
    fn syntax_error_has_line_column_and_snippet() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.location.line >= 2, "{e}");
        assert!(e.to_string().contains("t.yml:"), "{e}");
        assert!(e.snippet.contains('^'));
    }

    // `ansible-vault encrypt_string --vault-password-file pw 'inline-secret'` (pw: hunter2-pw).
    const INLINE: &str = "api_token: !vault |
          $ANSIBLE_VAULT;1.1;AES256
          62666634396462366234336265303465383236663666303634303539313130383661386263303639
          3063616366623637616461323866366632646661623362350a613938633661666665326164343539
          31376262373636653230623937303238346562363038333665313161346134626134393632613331
          3064326239613865300a366132353836633462313931373338393039333463613636306461336464
          3231
plain: visible
";

    /// The keyring is process-wide: this one test installs it, in steps.
    #[test]
    fn vault_values_and_files_decrypt_with_the_installed_passwords() {
        use crate::vault::{install, Keyring, Secret};
        let templar = crate::template::Templar::new();
        // No password: the value fails where it is used, and says where it was written.
        install(Keyring::default());
        let n = parse(INLINE).unwrap().to_json();
        assert_eq!(n["plain"], "visible");
        let e = templar.render_str(n["api_token"].as_str().unwrap(), &Default::default()).unwrap_err().to_string();
        assert!(e.contains("t.yml:2:11: this !vault value cannot be read: vault-encrypted, and no vault password was given"), "{e}");
        // A whole encrypted file can't be read at all.
        let k = Keyring::new(vec![Secret::new("default", "hunter2-pw")]);
        let file = k.encrypt(b"db:\n  password: file-secret-1\n  port: 5432\n", None).unwrap();
        let e = parse(&file).unwrap_err();
        assert_eq!(e.location.line, 1);
        assert!(e.message.contains("no vault password was given"), "{e}");
        // The wrong password.
        install(Keyring::new(vec![Secret::new("default", "wrong")]));
        let n = parse(INLINE).unwrap().to_json();
        let e = templar.render_str(n["api_token"].as_str().unwrap(), &Default::default()).unwrap_err().to_string();
        assert!(e.contains("decryption failed"), "{e}");
        // The right one.
        install(k);
        let n = parse(INLINE).unwrap().to_json();
        assert_eq!(n["api_token"], "inline-secret");
        assert_eq!(parse(&file).unwrap().to_json(), serde_json::json!({"db": {"password": "file-secret-1", "port": 5432}}));
        let revealed = crate::vault::revealed();
        assert!(revealed.contains(&"inline-secret".to_string()) && revealed.contains(&"file-secret-1".to_string()), "{revealed:?}");
        // A syntax error inside an encrypted file shows no snippet of it.
        let broken = crate::vault::Keyring::new(vec![Secret::new("default", "hunter2-pw")]).encrypt(b"a: [secret-text\n", None).unwrap();
        let e = parse(&broken).unwrap_err();
        assert!(e.snippet.is_empty() && !e.to_string().contains("secret-text"), "{e}");
        install(Keyring::default());
    }

    #[test]
    fn empty_document_is_null() {
        assert!(parse("---\n# nothing\n").unwrap().is_null());
    }
}
#[cfg(test)]
mod flow_tests {
    #[test]
    fn flow_map_in_block_map() {
        let f = std::sync::Arc::new(std::path::PathBuf::from("x"));
        let n = super::parse_str(&f, "x: {y: 1}\n").unwrap();
        assert_eq!(n.to_json()["x"]["y"], 1, "{:?}", n.to_json());
    }
}
