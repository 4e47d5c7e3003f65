//! Host names with ranges (`web[01:03]`, `db-[a:f]`, `h[1:9:2]`), `host:port`, and Ansible host
//! patterns (`all`, globs, `~regex`, unions, `&` intersections, `!` exclusions, `[i:j]` slices).

use regex::Regex;

/// Expand every `[begin:end]` / `[begin:end:step]` range in a host name, like Ansible's
/// `expand_hostname_range`. Numeric ranges keep zero padding (`[01:10]`); alphabetic ranges
/// take single letters (`[a:f]`). Names without `[` expand to themselves.
pub fn expand_host_range(name: &str) -> Result<Vec<String>, String> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let Some(close_rel) = name[open..].find(']') else {
        return Err(format!("host range in '{name}' is missing its closing ']'"));
    };
    let close = open + close_rel;
    let (head, range, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let bounds: Vec<&str> = range.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(format!(
            "host range '[{range}]' in '{name}' must be begin:end or begin:end:step"
        ));
    }
    let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(format!(
            "host range '[{range}]' in '{name}' must specify an end value"
        ));
    }
    let step: usize = match bounds.get(2) {
        None => 1,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "host range '[{range}]' in '{name}' has an invalid step '{s}'"
                ))
            }
        },
    };
    let items: Vec<String> = if let (Some(b), Some(e)) = (letter_index(beg), letter_index(end)) {
        if b > e {
            return Err(format!(
                "host range '[{range}]' in '{name}' must have begin <= end"
            ));
        }
        (b..=e)
            .step_by(step)
            .map(|i| LETTERS[i..i + 1].to_string())
            .collect()
    } else {
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if beg.len() != end.len() {
                return Err(format!(
                    "host range '[{range}]' in '{name}' must specify equal-length begin and end formats"
                ));
            }
            beg.len()
        } else {
            0
        };
        let parse = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("host range '[{range}]' in '{name}' is neither numeric nor a single letter range"))
        };
        let (b, e) = (parse(beg)?, parse(end)?);
        if b > e {
            return Err(format!(
                "host range '[{range}]' in '{name}' must have begin <= end"
            ));
        }
        (b..=e)
            .step_by(step)
            .map(|i| format!("{i:0width$}"))
            .collect()
    };
    let mut out = Vec::new();
    for item in items {
        out.extend(expand_host_range(&format!("{head}{item}{tail}"))?);
    }
    Ok(out)
}

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn letter_index(s: &str) -> Option<usize> {
    if s.len() == 1 {
        LETTERS.find(s)
    } else {
        None
    }
}

/// Split `host:port` (also `[ipv6]:port`) into the host pattern and the port. Bare IPv6
/// addresses and `[x:y]` ranges are not mistaken for ports.
pub fn split_host_port(s: &str) -> (String, Option<u16>) {
    // [v6addr] or [v6addr]:port
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(close) = rest.find(']') {
            let inner = &rest[..close];
            if inner.parse::<std::net::Ipv6Addr>().is_ok() {
                let after = &rest[close + 1..];
                if after.is_empty() {
                    return (inner.to_string(), None);
                }
                if let Some(p) = after.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()) {
                    return (inner.to_string(), Some(p));
                }
            }
        }
    }
    let mut depth = 0i32;
    let mut colons = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    if colons.len() == 1 {
        let (host, port) = (&s[..colons[0]], &s[colons[0] + 1..]);
        if !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(p) = port.parse::<u16>() {
                return (host.to_string(), Some(p));
            }
        }
    }
    (s.to_string(), None)
}

/// Split a host pattern into its terms, like Ansible's `split_host_pattern`: on commas if there
/// are any, else on colons outside `[...]`. A lone IPv6 address stays whole.
pub fn split_pattern(pattern: &str) -> Vec<String> {
    let parts: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_string).collect()
    } else if pattern.trim().parse::<std::net::Ipv6Addr>().is_ok() {
        vec![pattern.to_string()]
    } else {
        // Runs of anything but whitespace/':'/brackets, or complete bracketed expressions.
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '[' => {
                    // A bracketed expression (range, slice or glob class) never separates terms.
                    cur.push('[');
                    for d in chars.by_ref() {
                        cur.push(d);
                        if d == ']' {
                            break;
                        }
                    }
                }
                ':' | ']' => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                c if c.is_whitespace() => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A pattern term after removing its `&`/`!` prefix and `[i]`/`[i:j]` subscript.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub pattern: String,
    pub subscript: Option<(i64, Option<i64>)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Union,
    Intersect,
    Exclude,
}

/// Parse and order the terms: unions, then intersections, then exclusions (Ansible's
/// `order_patterns`). With no union term, `all` is implied.
pub fn ordered_terms(pattern: &str) -> Vec<(Op, Term)> {
    let mut unions = Vec::new();
    let mut inters = Vec::new();
    let mut excls = Vec::new();
    for p in split_pattern(pattern) {
        if let Some(rest) = p.strip_prefix('&') {
            inters.push((Op::Intersect, split_subscript(rest)));
        } else if let Some(rest) = p.strip_prefix('!') {
            excls.push((Op::Exclude, split_subscript(rest)));
        } else {
            unions.push((Op::Union, split_subscript(&p)));
        }
    }
    if unions.is_empty() {
        unions.push((Op::Union, split_subscript("all")));
    }
    unions.into_iter().chain(inters).chain(excls).collect()
}

fn split_subscript(p: &str) -> Term {
    if p.starts_with('~') {
        return Term {
            pattern: p.to_string(),
            subscript: None,
        };
    }
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re =
        RE.get_or_init(|| Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)[:-]([0-9]*))\]$").unwrap());
    if let Some(c) = re.captures(p) {
        let base = c[1].to_string();
        if let Some(idx) = c.get(2) {
            if let Ok(i) = idx.as_str().parse() {
                return Term {
                    pattern: base,
                    subscript: Some((i, None)),
                };
            }
        } else if let Some(start) = c.get(3).and_then(|m| m.as_str().parse().ok()) {
            let end = c
                .get(4)
                .map(|m| m.as_str())
                .filter(|s| !s.is_empty())
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1);
            return Term {
                pattern: base,
                subscript: Some((start, Some(end))),
            };
        }
    }
    Term {
        pattern: p.to_string(),
        subscript: None,
    }
}

/// Apply an inclusive `[start:end]` or single `[i]` subscript (negative index from the end).
pub fn apply_subscript(hosts: Vec<String>, sub: Option<(i64, Option<i64>)>) -> Vec<String> {
    let Some((start, end)) = sub else {
        return hosts;
    };
    let n = hosts.len() as i64;
    match end {
        None => {
            let i = if start < 0 { n + start } else { start };
            if (0..n).contains(&i) {
                vec![hosts[i as usize].clone()]
            } else {
                Vec::new()
            }
        }
        Some(end) => {
            let end = if end == -1 { n - 1 } else { end.min(n - 1) };
            if start > end || start >= n {
                return Vec::new();
            }
            hosts[start as usize..=end as usize].to_vec()
        }
    }
}

/// Compile a term to an anchored matcher: `~regex` (matched at the start, like Python's
/// `re.match`) or an fnmatch glob (whole name).
pub fn compile(term: &str) -> Result<Regex, String> {
    let source = match term.strip_prefix('~') {
        Some(re) => format!("^(?:{re})"),
        None => format!("^(?s:{})$", glob_to_regex(term)?),
    };
    Regex::new(&source).map_err(|e| format!("invalid host pattern '{term}': {e}"))
}

/// Does the term use glob/regex syntax (so it is matched against host names even when groups match)?
pub fn is_special(term: &str) -> bool {
    term.starts_with('~') || term.contains(['.', '?', '*', '['])
}

/// Python's `fnmatch.translate`, case-sensitive.
fn glob_to_regex(glob: &str) -> Result<String, String> {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                } else {
                    let mut class: String = chars[i..j].iter().collect();
                    i = j + 1;
                    let negate = class.starts_with('!');
                    if negate {
                        class.remove(0);
                    }
                    let class = class.replace('\\', "\\\\").replace('[', "\\[");
                    out.push('[');
                    if negate {
                        out.push('^');
                    } else if class.starts_with('^') {
                        out.push('\\');
                    }
                    out.push_str(&class);
                    out.push(']');
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            expand_host_range("web[01:03].example.com").unwrap(),
            [
                "web01.example.com",
                "web02.example.com",
                "web03.example.com"
            ]
        );
        assert_eq!(
            expand_host_range("db-[a:c]").unwrap(),
            ["db-a", "db-b", "db-c"]
        );
        assert_eq!(
            expand_host_range("h[1:10:3]").unwrap(),
            ["h1", "h4", "h7", "h10"]
        );
        assert_eq!(expand_host_range("h[:2]").unwrap(), ["h0", "h1", "h2"]);
        assert_eq!(
            expand_host_range("r[1:2]c[a:b]").unwrap(),
            ["r1ca", "r1cb", "r2ca", "r2cb"]
        );
        assert!(expand_host_range("h[01:100]")
            .unwrap_err()
            .contains("equal-length"));
        assert!(expand_host_range("h[3:1]")
            .unwrap_err()
            .contains("begin <= end"));
        assert!(expand_host_range("h[1:]")
            .unwrap_err()
            .contains("end value"));
        assert!(expand_host_range("h[1]").unwrap_err().contains("begin:end"));
        assert!(expand_host_range("h[1:x]").is_err());
        assert!(expand_host_range("h[1:2").is_err());
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("web1:2222"), ("web1".into(), Some(2222)));
        assert_eq!(
            split_host_port("web[1:3]:22"),
            ("web[1:3]".into(), Some(22))
        );
        assert_eq!(split_host_port("web[1:3]"), ("web[1:3]".into(), None));
        assert_eq!(split_host_port("fe80::1"), ("fe80::1".into(), None));
        assert_eq!(
            split_host_port("[fe80::1]:22"),
            ("fe80::1".into(), Some(22))
        );
        assert_eq!(split_host_port("10.0.0.1"), ("10.0.0.1".into(), None));
    }

    #[test]
    fn splitting_and_order() {
        assert_eq!(split_pattern("web:db"), ["web", "db"]);
        assert_eq!(split_pattern("web:&db:!x"), ["web", "&db", "!x"]);
        assert_eq!(split_pattern("web, db ,!x"), ["web", "db", "!x"]);
        assert_eq!(split_pattern("web[0:1]:db"), ["web[0:1]", "db"]);
        assert_eq!(split_pattern("fe80::1"), ["fe80::1"]);
        let t = ordered_terms("!x:&y:a");
        assert_eq!(
            t.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            [Op::Union, Op::Intersect, Op::Exclude]
        );
        let t = ordered_terms("!x");
        assert_eq!(t[0].1.pattern, "all");
        assert_eq!(split_subscript("web[1]").subscript, Some((1, None)));
        assert_eq!(split_subscript("web[-1]").subscript, Some((-1, None)));
        assert_eq!(split_subscript("web[0:1]").subscript, Some((0, Some(1))));
        assert_eq!(split_subscript("web[1:]").subscript, Some((1, Some(-1))));
        assert_eq!(split_subscript("web[ab]").subscript, None);
    }

    #[test]
    fn globs() {
        let re = compile("web*").unwrap();
        assert!(re.is_match("web1") && !re.is_match("aweb1"));
        let re = compile("*.example.com").unwrap();
        assert!(re.is_match("a.example.com") && !re.is_match("a.example.org"));
        let re = compile("h[!2]").unwrap();
        assert!(re.is_match("h1") && !re.is_match("h2"));
        let re = compile("~w.b").unwrap();
        assert!(re.is_match("web1") && !re.is_match("xweb"));
        assert!(compile("~(").is_err());
    }
}
