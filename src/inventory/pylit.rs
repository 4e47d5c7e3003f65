//! INI inventory values, read the way Ansible does with Python's `ast.literal_eval`: numbers,
//! quoted strings, `True`/`False`/`None`, lists, tuples, dicts. Anything else stays a string
//! (so `yes`, `true`, `10.0.0.1`, `0644` and `{{ x }}` are strings).

use serde_json::{Map, Number, Value};

/// Parse an INI value; falls back to the text itself.
pub fn parse_value(text: &str) -> Value {
    let mut p = Parser {
        s: text.trim_start_matches([' ', '\t']).as_bytes(),
        i: 0,
        src: text.trim_start_matches([' ', '\t']),
    };
    match p.expr() {
        Some(v) => {
            p.skip_ws_comments();
            if p.i == p.s.len() {
                v
            } else {
                Value::String(text.to_string())
            }
        }
        None => Value::String(text.to_string()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    /// Whitespace, newlines and `#` comments (allowed between tokens in an expression).
    fn skip_ws_comments(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.i += 1,
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<Value> {
        self.skip_ws();
        match self.peek()? {
            b'[' => self.seq(b']'),
            b'(' => self.seq(b')'),
            b'{' => self.dict(),
            b'\'' | b'"' => self.strings(),
            b'-' | b'+' => {
                let neg = self.peek() == Some(b'-');
                self.i += 1;
                self.skip_ws();
                let v = self.number()?;
                Some(if neg { negate(v)? } else { v })
            }
            b'0'..=b'9' | b'.' => self.number(),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                    self.i += 1;
                }
                let word = &self.src[start..self.i];
                match word {
                    "True" => Some(Value::Bool(true)),
                    "False" => Some(Value::Bool(false)),
                    "None" => Some(Value::Null),
                    w if matches!(self.peek(), Some(b'\'' | b'"')) && is_str_prefix(w) => {
                        self.i = start;
                        self.strings()
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn seq(&mut self, close: u8) -> Option<Value> {
        self.i += 1;
        let mut items = Vec::new();
        let mut saw_comma = false;
        loop {
            self.skip_ws_comments();
            if self.eat(close) {
                break;
            }
            items.push(self.expr()?);
            self.skip_ws_comments();
            if self.eat(b',') {
                saw_comma = true;
                continue;
            }
            self.skip_ws_comments();
            if self.eat(close) {
                break;
            }
            return None;
        }
        if close == b')' && items.len() == 1 && !saw_comma {
            // `(x)` is just x
            return items.pop();
        }
        Some(Value::Array(items))
    }

    fn dict(&mut self) -> Option<Value> {
        self.i += 1;
        let mut map = Map::new();
        let mut set = Vec::new();
        loop {
            self.skip_ws_comments();
            if self.eat(b'}') {
                break;
            }
            let key = self.expr()?;
            self.skip_ws_comments();
            if self.eat(b':') {
                if !set.is_empty() {
                    return None;
                }
                self.skip_ws_comments();
                let value = self.expr()?;
                let key = match key {
                    Value::String(s) => s,
                    Value::Array(_) | Value::Object(_) => return None,
                    other => other.to_string(),
                };
                map.insert(key, value);
            } else {
                if !map.is_empty() {
                    return None;
                }
                set.push(key);
            }
            self.skip_ws_comments();
            if self.eat(b',') {
                continue;
            }
            self.skip_ws_comments();
            if self.eat(b'}') {
                break;
            }
            return None;
        }
        if !set.is_empty() {
            return Some(Value::Array(set));
        }
        Some(Value::Object(map))
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
            || ((c == b'+' || c == b'-') && matches!(self.s[self.i - 1], b'e' | b'E') && !self.src[start..self.i].starts_with("0x")))
        {
            self.i += 1;
        }
        let raw = &self.src[start..self.i];
        if raw.starts_with('_') || raw.ends_with('_') || raw.contains("__") {
            return None;
        }
        let text = raw.replace('_', "");
        let lower = text.to_ascii_lowercase();
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(digits) = lower.strip_prefix(prefix) {
                return i64::from_str_radix(digits, radix).ok().map(Value::from);
            }
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            // Python 3 rejects leading zeros (`0644`), except for zero itself.
            if text.len() > 1 && text.starts_with('0') && !text.bytes().all(|b| b == b'0') {
                return None;
            }
            return match text.parse::<i64>() {
                Ok(n) => Some(Value::from(n)),
                Err(_) => text
                    .parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number),
            };
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
            || text == "."
        {
            return None;
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(Number::from_f64)
            .map(Value::Number)
    }

    /// One or more adjacent string literals (Python concatenates them).
    fn strings(&mut self) -> Option<Value> {
        let mut out = String::new();
        loop {
            out.push_str(&self.string()?);
            let save = self.i;
            self.skip_ws();
            let start = self.i;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphabetic()) {
                self.i += 1;
            }
            let prefix_ok = is_str_prefix(&self.src[start..self.i]);
            if prefix_ok && matches!(self.peek(), Some(b'\'' | b'"')) {
                self.i = start;
                continue;
            }
            self.i = save;
            return Some(Value::String(out));
        }
    }

    fn string(&mut self) -> Option<String> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        let prefix = self.src[start..self.i].to_ascii_lowercase();
        if !is_str_prefix(&prefix) {
            return None;
        }
        let raw = prefix.contains('r');
        let q = self.peek()?;
        let triple = self.s[self.i..].starts_with(&[q, q, q]);
        self.i += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let rest = &self.src[self.i..];
            let c = rest.chars().next()?;
            if triple && rest.as_bytes().starts_with(&[q, q, q]) {
                self.i += 3;
                return Some(out);
            }
            if !triple && c as u32 == q as u32 {
                self.i += 1;
                return Some(out);
            }
            if !triple && c == '\n' {
                return None;
            }
            self.i += c.len_utf8();
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self.src[self.i..].chars().next()?;
            self.i += e.len_utf8();
            if raw {
                out.push('\\');
                out.push(e);
                continue;
            }
            match e {
                '\n' => {}
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                '0'..='7' => {
                    let mut n = e.to_digit(8)?;
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ b'0'..=b'7') => {
                                n = n * 8 + (d - b'0') as u32;
                                self.i += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(char::from_u32(n)?);
                }
                'x' | 'u' | 'U' => {
                    let len = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex = self.src.get(self.i..self.i + len)?;
                    let n = u32::from_str_radix(hex, 16).ok()?;
                    self.i += len;
                    out.push(char::from_u32(n)?);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }
}

fn is_str_prefix(p: &str) -> bool {
    matches!(
        p.to_ascii_lowercase().as_str(),
        "" | "r" | "u" | "b" | "br" | "rb"
    )
}

fn negate(v: Value) -> Option<Value> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Value::from(-i))
            } else {
                Number::from_f64(-n.as_f64()?).map(Value::Number)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_value as p;
    use serde_json::json;

    #[test]
    fn literals() {
        assert_eq!(p("2201"), json!(2201));
        assert_eq!(p("-3"), json!(-3));
        assert_eq!(p("1_000"), json!(1000));
        assert_eq!(p("0x1f"), json!(31));
        assert_eq!(p("1.5"), json!(1.5));
        assert_eq!(p("1e3"), json!(1000.0));
        assert_eq!(p("True"), json!(true));
        assert_eq!(p("False"), json!(false));
        assert_eq!(p("None"), json!(null));
        assert_eq!(p("'a b'"), json!("a b"));
        assert_eq!(p("\"x\\ty\""), json!("x\ty"));
        assert_eq!(p("'a' 'b'"), json!("ab"));
        assert_eq!(p("[1, 'two', [3]]"), json!([1, "two", [3]]));
        assert_eq!(p("(1, 2)"), json!([1, 2]));
        assert_eq!(p("{'a': 1, 2: 'b'}"), json!({"a": 1, "2": "b"}));
        assert_eq!(p("1 # comment"), json!(1));
    }

    #[test]
    fn everything_else_is_a_string() {
        for s in [
            "true",
            "yes",
            "10.0.0.1",
            "0644",
            "{{ x }}",
            "foo bar",
            "",
            "1.2.3",
            "'open",
            "/usr/bin/python3",
            "a=b",
            "1x",
        ] {
            assert_eq!(p(s), json!(s), "{s}");
        }
    }
}
