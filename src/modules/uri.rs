//! `uri`: send an HTTP(S) request from the host and check the answer's status (a health check
//! after a deploy, a call to an API), with Ansible's result: `status`, `url`, `redirected`,
//! `msg`, the response headers as lower-case names with `_`, `content` when asked, `json`
//! when the answer is JSON.
//!
//! The host needs `curl` (no Python): the request is one action, and everything about it (URL,
//! headers, credentials, body) travels to `curl` as a config on stdin, so no password or
//! token shows in the host's process list. The task is never `changed`; `creates`/`removes`
//! skip the request as in Ansible.
//!
//! Differences from Ansible: `dest`, `src` and `form-multipart` bodies are refused (use
//! `get_url` / `copy`); Basic credentials are always sent with the first request (as
//! `force_basic_auth: true`); in check mode the request is not sent (Ansible's module has no
//! check mode either).

use super::args::{self, opt_boolish};
use super::{sh_quote, Action, ActionOutput, CheckSupport, ModuleError, ModuleTask, Plan, Scope};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct UriModule;

const PARAMS: &[&str] = &[
    "url",
    "method",
    "body",
    "body_format",
    "headers",
    "status_code",
    "return_content",
    "url_username",
    "user",
    "url_password",
    "password",
    "force_basic_auth",
    "validate_certs",
    "follow_redirects",
    "timeout",
    "creates",
    "removes",
    "unix_socket",
    "ca_path",
    "client_cert",
    "client_key",
    "http_agent",
    "use_proxy",
    "decompress",
    "dest",
    "src",
    "remote_src",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    body_format: Option<String>,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    status_code: Option<Value>,
    #[serde(default, deserialize_with = "opt_boolish")]
    return_content: Option<bool>,
    #[serde(default, alias = "user", deserialize_with = "args::opt_string")]
    url_username: Option<String>,
    #[serde(default, alias = "password", deserialize_with = "args::opt_string")]
    url_password: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force_basic_auth: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    validate_certs: Option<bool>,
    #[serde(default, deserialize_with = "args::opt_string")]
    follow_redirects: Option<String>,
    #[serde(default, deserialize_with = "args::opt_string")]
    timeout: Option<String>,
    #[serde(default)]
    creates: Option<String>,
    #[serde(default)]
    removes: Option<String>,
    #[serde(default)]
    unix_socket: Option<String>,
    #[serde(default)]
    ca_path: Option<String>,
    #[serde(default)]
    client_cert: Option<String>,
    #[serde(default)]
    client_key: Option<String>,
    #[serde(default)]
    http_agent: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    use_proxy: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    decompress: Option<bool>,
    #[serde(default)]
    dest: Option<Value>,
    #[serde(default)]
    src: Option<Value>,
    #[serde(default, deserialize_with = "opt_boolish")]
    remote_src: Option<bool>,
}

#[derive(Debug)]
struct UriTask {
    url: String,
    method: String,
    /// The curl config (sent on stdin: it may hold credentials).
    config: String,
    status_code: Vec<i64>,
    return_content: bool,
    creates: Option<String>,
    removes: Option<String>,
}

module_impl!(UriModule, "uri");

/// A value quoted for a curl config file.
fn curl_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        // Python's str() of a boolean, as Ansible sends it.
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        other => other.to_string(),
    }
}

/// `application/x-www-form-urlencoded` of a mapping or a list of pairs (lists repeat a key).
fn form_urlencoded(body: &Value) -> Result<String, String> {
    let pairs: Vec<(String, Value)> = match body {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Value::Array(a) => a
            .iter()
            .map(|p| match p {
                Value::Array(kv) if kv.len() == 2 => Ok((scalar(&kv[0]), kv[1].clone())),
                other => Err(format!("expected [key, value] pairs, got {other}")),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("cannot form-urlencode {other}")),
    };
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".into(),
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let values = match v {
            Value::Array(a) => a,
            v => vec![v],
        };
        for v in values.iter().filter(|v| !v.is_null()) {
            out.push(format!("{}={}", enc(&k), enc(&scalar(v))));
        }
    }
    Ok(out.join("&"))
}

fn build(args: &Map<String, Value>) -> Result<UriTask, ModuleError> {
    let a: Args = args::parse("uri", PARAMS, args)?;
    let bad = |m: String| ModuleError::Args(format!("uri: {m}"));
    if a.dest.is_some() || a.src.is_some() || a.remote_src.is_some() {
        return Err(bad("dest and src are not supported: use get_url to download a file, copy to send one".into()));
    }
    let method = a.method.clone().unwrap_or_else(|| "GET".into()).to_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("Parameter 'method' needs to be a single word in uppercase, like GET or POST.".into()));
    }
    let status_code: Vec<i64> = match &a.status_code {
        None => vec![200],
        Some(v) => args::value_to_list(v)
            .map_err(bad)?
            .iter()
            .map(|s| s.trim().parse::<i64>().map_err(|_| bad(format!("status_code '{s}' is not a number"))))
            .collect::<Result<_, _>>()?,
    };
    let timeout = match &a.timeout {
        None => 30,
        Some(t) => t.trim().parse::<u64>().map_err(|_| bad(format!("timeout must be a number of seconds, got '{t}'")))?,
    };
    let mut headers: Vec<(String, String)> = a.headers.unwrap_or_default().iter().map(|(k, v)| (k.clone(), scalar(v))).collect();
    let has_type = |h: &[(String, String)]| h.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let body = match (a.body_format.as_deref().map(str::to_lowercase).as_deref().unwrap_or("raw"), &a.body) {
        (_, None) => None,
        ("raw", Some(b)) => Some(scalar(b)),
        ("json", Some(b)) => {
            if !has_type(&headers) {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            // A string is taken as JSON already.
            Some(match b {
                Value::String(s) => s.clone(),
                v => serde_json::to_string(v).map_err(|e| bad(e.to_string()))?,
            })
        }
        ("form-urlencoded", Some(b)) => {
            if !has_type(&headers) {
                headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
            }
            Some(match b {
                Value::String(s) => s.clone(),
                v => form_urlencoded(v).map_err(|e| bad(format!("failed to parse body as form_urlencoded: {e}")))?,
            })
        }
        ("form-multipart", Some(_)) => return Err(bad("form-multipart bodies are not supported".into())),
        (f, Some(_)) => return Err(bad(format!("body_format must be one of raw, json, form-urlencoded; got '{f}'"))),
    };
    let follow = match a.follow_redirects.as_deref().unwrap_or("safe") {
        "all" | "yes" => true,
        "safe" | "urllib2" => matches!(method.as_str(), "GET" | "HEAD"),
        "none" | "no" => false,
        f => return Err(bad(format!("follow_redirects must be one of all, safe, none (or yes, no, urllib2); got '{f}'"))),
    };
    let mut c = vec![format!("url = {}", curl_quote(&a.url))];
    if method == "HEAD" {
        c.push("head".into());
    } else {
        c.push(format!("request = {}", curl_quote(&method)));
    }
    for (k, v) in &headers {
        c.push(format!("header = {}", curl_quote(&format!("{k}: {v}"))));
    }
    if let Some(u) = &a.url_username {
        c.push(format!("user = {}", curl_quote(&format!("{u}:{}", a.url_password.clone().unwrap_or_default()))));
    }
    if let Some(b) = &body {
        // data-raw: a body starting with '@' is not a file name.
        c.push(format!("data-raw = {}", curl_quote(b)));
    }
    if follow {
        c.push("location".into());
        c.push("max-redirs = 10".into());
    }
    if a.validate_certs == Some(false) {
        c.push("insecure".into());
    }
    if a.use_proxy == Some(false) {
        c.push("noproxy = \"*\"".into());
    }
    if a.decompress != Some(false) {
        c.push("compressed".into());
    }
    c.push(format!("user-agent = {}", curl_quote(a.http_agent.as_deref().unwrap_or("ansible-httpget"))));
    c.push(format!("max-time = {timeout}"));
    for (opt, v) in [("unix-socket", &a.unix_socket), ("cacert", &a.ca_path), ("cert", &a.client_cert), ("key", &a.client_key)] {
        if let Some(v) = v {
            c.push(format!("{opt} = {}", curl_quote(v)));
        }
    }
    let _ = a.force_basic_auth; // curl sends Basic credentials with the first request anyway
    let mut config = c.join("\n");
    config.push('\n');
    Ok(UriTask { url: a.url, method, config, status_code, return_content: a.return_content.unwrap_or(false), creates: a.creates, removes: a.removes })
}

/// Markers between the parts of the action's output.
const W: &str = "@@provision-uri-w@@";
const HEADERS: &str = "@@provision-uri-headers@@";
const BODY: &str = "@@provision-uri-body@@";
const SKIP: &str = "@@provision-uri-skip@@";
/// The largest body brought back when it isn't asked for (for `json` and failure messages).
const BODY_LIMIT: u64 = 1 << 20;

impl UriTask {
    fn script(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.creates {
            s.push_str(&format!("if [ -e {q} ]; then echo {SKIP}; printf \"skipped, since '%s' exists\\n\" {q}; exit 0; fi\n", q = sh_quote(c)));
        }
        if let Some(r) = &self.removes {
            s.push_str(&format!("if [ ! -e {q} ]; then echo {SKIP}; printf \"skipped, since '%s' does not exist\\n\" {q}; exit 0; fi\n", q = sh_quote(r)));
        }
        let limit = if self.return_content { "cat" } else { &format!("head -c {BODY_LIMIT}") };
        s.push_str(&format!(
            "command -v curl >/dev/null 2>&1 || {{ echo 'uri: curl is not installed on the host' >&2; exit 3; }}\n\
             d=$(mktemp -d) || exit 3\n\
             trap 'rm -rf \"$d\"' EXIT\n\
             start=$(date +%s)\n\
             curl -sS --config - -o \"$d/body\" -D \"$d/headers\" -w '%{{http_code}}\\n%{{url_effective}}\\n%{{num_redirects}}\\n' > \"$d/w\"\n\
             rc=$?\n\
             echo \"elapsed=$(( $(date +%s) - start ))\"\n\
             echo \"curl_rc=$rc\"\n\
             echo {W}; cat \"$d/w\"\n\
             echo {HEADERS}; cat \"$d/headers\" 2>/dev/null | tr -d '\\r'\n\
             echo {BODY}; [ -f \"$d/body\" ] && {limit} \"$d/body\" | base64 -w0\n\
             echo\n"
        ));
        s
    }
}

/// The last response's status line and headers out of curl's header dump (one block per
/// response when redirects were followed).
fn last_headers(dump: &str) -> (String, Vec<(String, String)>) {
    let mut status = String::new();
    let mut headers = Vec::new();
    for line in dump.lines() {
        if line.starts_with("HTTP/") {
            status = line.to_string();
            headers.clear();
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (status, headers)
}

/// Ansible's `absolute_location`.
fn absolute_location(url: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    if location.starts_with('/') {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let host_end = rest.find('/').map_or(url.len(), |i| url.len() - rest.len() + i);
        return format!("{}{location}", &url[..host_end]);
    }
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{location}")
}

impl ModuleTask for UriTask {
    fn plan(&self, _probes: &[super::ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        plan.actions.push(Action::new(format!("{} {}", self.method, self.url), self.script(), Scope::Nothing).with_stdin(self.config.clone().into_bytes()).may_fail());
        plan.changed = Some(false);
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let Some(o) = outputs.first() else {
            return Ok(plan);
        };
        let out = o.stdout_str();
        if let Some(rest) = out.strip_prefix(&format!("{SKIP}\n")) {
            plan.result.insert("stdout".into(), json!(rest.trim()));
            return Ok(plan);
        }
        if o.exit_code != 0 {
            let err = o.stderr_str();
            plan.failed = Some(if err.trim().is_empty() { format!("uri: the request stopped with exit code {}", o.exit_code) } else { err.trim().to_string() });
            return Ok(plan);
        }
        let field = |k: &str| out.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").trim().to_string();
        let elapsed: u64 = field("elapsed=").parse().unwrap_or(0);
        let curl_rc: i32 = field("curl_rc=").parse().unwrap_or(-1);
        let section = |from: &str, to: &str| -> String {
            let start = out.find(&format!("{from}\n")).map(|i| i + from.len() + 1);
            let end = out.find(&format!("{to}\n"));
            match (start, end) {
                (Some(s), Some(e)) if e >= s => out[s..e].to_string(),
                _ => String::new(),
            }
        };
        let w = section(W, HEADERS);
        let mut w = w.lines();
        let code: i64 = w.next().unwrap_or("").trim().parse().unwrap_or(0);
        let effective = w.next().unwrap_or(&self.url).trim().to_string();
        let redirects: u64 = w.next().unwrap_or("0").trim().parse().unwrap_or(0);
        let body_b64 = out.split_once(&format!("{BODY}\n")).map(|(_, b)| b.trim()).unwrap_or("");
        let body = base64::engine::general_purpose::STANDARD.decode(body_b64).unwrap_or_default();
        let body = String::from_utf8_lossy(&body).into_owned();
        let (status_line, headers) = last_headers(&section(HEADERS, BODY));

        let mut r = Map::new();
        let status = if curl_rc != 0 || code == 0 { -1 } else { code };
        for (k, v) in &headers {
            r.insert(k.replace('-', "_").to_lowercase(), json!(v));
        }
        if let Some(Value::String(l)) = r.get("location").cloned() {
            r.insert("location".into(), json!(absolute_location(&effective, &l)));
        }
        let msg = if status == -1 {
            format!("Request failed: {}", o.stderr_str().trim())
        } else if (200..300).contains(&status) || status == 304 {
            let len = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).map_or("unknown".to_string(), |(_, v)| v.clone());
            format!("OK ({len} bytes)")
        } else {
            let reason = status_line.splitn(3, ' ').nth(2).unwrap_or("").trim().to_string();
            format!("HTTP Error {status}: {reason}")
        };
        r.insert("url".into(), json!(effective));
        r.insert("redirected".into(), json!(redirects > 0 && effective != self.url));
        r.insert("status".into(), json!(status));
        r.insert("elapsed".into(), json!(elapsed));
        r.insert("changed".into(), json!(false));
        let content_type = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.to_lowercase()).unwrap_or_default();
        let sub_type = content_type.split(';').next().unwrap_or("").split('/').nth(1).unwrap_or("");
        if sub_type.contains("json") || sub_type.contains("javascript") {
            if let Ok(js) = serde_json::from_str::<Value>(&body) {
                r.insert("json".into(), js);
            }
        }
        if self.return_content {
            r.insert("content".into(), json!(body));
        }
        if !self.status_code.contains(&status) {
            let codes: Vec<String> = self.status_code.iter().map(|c| c.to_string()).collect();
            let text = format!("Status code was {status} and not [{}]: {msg}", codes.join(", "));
            r.insert("msg".into(), json!(text));
            plan.failed = Some(text);
        } else {
            r.insert("msg".into(), json!(msg));
        }
        plan.result.extend(r);
        Ok(plan)
    }

    fn check_support(&self) -> CheckSupport {
        CheckSupport::SkipIfActions
    }

    fn check_skip_reason(&self) -> &'static str {
        "skipped in check mode: the request would be sent"
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{apply, assert_sh_syntax};
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    fn task(v: Value) -> UriTask {
        build(v.as_object().unwrap()).unwrap()
    }

    fn err(v: Value) -> String {
        build(v.as_object().unwrap()).unwrap_err().to_string()
    }

    #[test]
    fn the_request_goes_to_curl_as_a_config_on_stdin() {
        let t = task(json!({"url": "http://x/api", "method": "post", "body": {"a": [1, "é"]}, "body_format": "json", "headers": {"X-Token": "s3cr\"et"}, "user": "bob", "password": "pw", "status_code": "200, 201", "validate_certs": false}));
        assert_eq!((t.method.as_str(), &t.status_code), ("POST", &vec![200, 201]));
        assert!(t.config.contains("url = \"http://x/api\"\nrequest = \"POST\"\n"), "{}", t.config);
        assert!(t.config.contains("header = \"X-Token: s3cr\\\"et\"\nheader = \"Content-Type: application/json\"\n"), "{}", t.config);
        assert!(t.config.contains("user = \"bob:pw\"\ndata-raw = \"{\\\"a\\\":[1,\\\"é\\\"]}\"\n"), "{}", t.config);
        assert!(t.config.contains("\ninsecure\n") && !t.config.contains("location"), "POST follows no redirect when safe");
        let p = t.plan(&[]).unwrap();
        assert!(!p.actions[0].script.contains("pw") && !p.actions[0].script.contains("s3cr"), "credentials in the script");
        assert_eq!(p.actions[0].stdin.as_deref(), Some(t.config.as_bytes()));
        assert!(!p.changed());
        assert_sh_syntax(&p.actions[0].script);
        let t = task(json!({"url": "http://x/", "body": {"q": "a b&c", "n": [1, 2]}, "body_format": "form-urlencoded", "follow_redirects": "all"}));
        assert!(t.config.contains("data-raw = \"q=a+b%26c&n=1&n=2\"") && t.config.contains("\nlocation\n"), "{}", t.config);
        assert!(task(json!({"url": "http://x/", "method": "HEAD"})).config.contains("\nhead\nlocation\n"));
        assert_eq!(curl_quote("a\\b\n\t"), "\"a\\\\b\\n\\t\"");
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        assert!(err(json!({"url": "http://x", "dest": "/tmp/x"})).contains("use get_url"));
        assert!(err(json!({"url": "http://x", "method": "GET /"})).contains("single word in uppercase"));
        assert!(err(json!({"url": "http://x", "body": {"a": 1}, "body_format": "form-multipart"})).contains("form-multipart"));
        assert!(err(json!({"url": "http://x", "status_code": "ok"})).contains("status_code"));
        assert!(err(json!({"url": "http://x", "bogus": 1})).contains("bogus"));
        assert!(err(json!({"method": "GET"})).contains("url"));
    }

    #[test]
    fn reads_the_answer_as_ansible_returns_it() {
        let out = format!("elapsed=1\ncurl_rc=0\n{W}\n200\nhttp://h/b\n1\n{HEADERS}\nHTTP/1.1 301 Moved\nLocation: /b\n\nHTTP/1.1 200 OK\nContent-Type: application/json; charset=utf-8\nContent-Length: 11\nX-Req-Id: 7\n\n{BODY}\n{}\n", base64::engine::general_purpose::STANDARD.encode("{\"ok\": true}"));
        let t = task(json!({"url": "http://h/a"}));
        let p = t.finish(t.plan(&[]).unwrap(), &[ActionOutput { stdout: out.into_bytes(), stderr: vec![], exit_code: 0 }]).unwrap();
        assert!(p.failed.is_none());
        assert_eq!(p.result["status"], 200);
        assert_eq!(p.result["msg"], "OK (11 bytes)");
        assert_eq!(p.result["json"], json!({"ok": true}));
        assert_eq!(p.result["x_req_id"], "7");
        assert_eq!(p.result["content_type"], "application/json; charset=utf-8");
        assert_eq!((&p.result["url"], &p.result["redirected"]), (&json!("http://h/b"), &json!(true)));
        assert!(p.result.get("content").is_none());
        assert_eq!(absolute_location("http://h:8/a/b", "/c"), "http://h:8/c");
        assert_eq!(absolute_location("http://h/a/b", "c"), "http://h/a/c");
    }

    /// A one-request-at-a-time HTTP server answering `routes` (path -> status, content type,
    /// body); the request lines and bodies it saw come back through the channel.
    fn server(routes: Vec<(&'static str, u16, &'static str, &'static str)>) -> (u16, std::sync::mpsc::Receiver<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let _ = tx.send(format!("{head}\n{}", String::from_utf8_lossy(&body)));
                let (status, ctype, text) = routes.iter().find(|r| r.0 == path).map(|r| (r.1, r.2, r.3)).unwrap_or((404, "text/plain", "nope"));
                let mut s = s;
                let _ = write!(s, "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{text}", if status == 200 { "OK" } else { "Not Found" }, text.len(), if status == 302 { "Location: /health\r\n" } else { "" });
            }
        });
        (port, rx)
    }

    #[test]
    fn talks_http_here() {
        let (port, seen) = server(vec![("/health", 200, "application/json", "{\"db\": \"up\"}"), ("/old", 302, "text/plain", ""), ("/echo", 200, "text/plain", "posted")]);
        let base = format!("http://127.0.0.1:{port}");
        let p = apply(&task(json!({"url": format!("{base}/health"), "return_content": true})));
        assert!(p.failed.is_none(), "{:?}", p.failed);
        assert_eq!((&p.result["status"], &p.result["json"]["db"], &p.result["content"]), (&json!(200), &json!("up"), &json!("{\"db\": \"up\"}")));
        assert!(seen.recv().unwrap().contains("User-Agent: ansible-httpget"));
        // A redirect followed (GET is safe), and its target reported.
        let p = apply(&task(json!({"url": format!("{base}/old")})));
        assert_eq!((&p.result["status"], &p.result["redirected"]), (&json!(200), &json!(true)), "{:?}", p.result);
        assert_eq!(p.result["url"], json!(format!("{base}/health")));
        let _ = (seen.recv(), seen.recv());
        // A POST with credentials and a JSON body: what the server got.
        let p = apply(&task(json!({"url": format!("{base}/echo"), "method": "POST", "body": {"n": 1}, "body_format": "json", "url_username": "u", "url_password": "p w"})));
        assert!(p.failed.is_none(), "{:?}", p.failed);
        let req = seen.recv().unwrap();
        assert!(req.starts_with("POST /echo HTTP/1.1") && req.contains("Content-Type: application/json") && req.ends_with("\n{\"n\":1}"), "{req}");
        assert!(req.contains(&format!("Authorization: Basic {}", base64::engine::general_purpose::STANDARD.encode("u:p w"))), "{req}");
        // A status not expected fails with Ansible's message; an expected one does not.
        let p = apply(&task(json!({"url": format!("{base}/missing")})));
        assert_eq!(p.failed.as_deref(), Some("Status code was 404 and not [200]: HTTP Error 404: Not Found"));
        assert_eq!(p.result["status"], 404);
        assert!(apply(&task(json!({"url": format!("{base}/missing"), "status_code": [200, 404]}))).failed.is_none());
        // Nobody listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let p = apply(&task(json!({"url": format!("http://127.0.0.1:{closed}/"), "timeout": 5})));
        assert_eq!(p.result["status"], -1);
        assert!(p.failed.as_deref().is_some_and(|f| f.starts_with("Status code was -1 and not [200]: Request failed: curl: (7)")), "{:?}", p.failed);
        // creates: no request at all.
        let p = apply(&task(json!({"url": format!("http://127.0.0.1:{closed}/"), "creates": "/"})));
        assert!(p.failed.is_none());
        assert_eq!(p.result["stdout"], "skipped, since '/' exists");
    }
}

/// Real-host checks: `MS_TESTHOST=<port> MS_KNOWN_HOSTS=<file> cargo test --lib -- --ignored uri_`.
#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    /// The task's action run on the test host (config on stdin), finished as the executor does.
    fn request_on_host(v: Value) -> Plan {
        let t = build(v.as_object().unwrap()).unwrap();
        let p = t.plan(&[]).unwrap();
        let out = testhost::run(&p.actions[0].script, p.actions[0].stdin.as_deref());
        t.finish(p, &[out]).unwrap()
    }

    #[test]
    #[ignore]
    fn uri_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        // A web server on the host (Python's), reached from the host itself.
        let o = testhost::run(
            "set -e; command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; \
             mkdir -p /tmp/uri-t; printf '{\"ok\": 1}' > /tmp/uri-t/s.json; cd /tmp/uri-t; \
             (setsid python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 &); \
             for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8765/ && exit 0; sleep 0.1; done; exit 1",
            None,
        );
        assert_eq!(o.exit_code, 0, "{}", o.stderr_str());
        let p = request_on_host(json!({"url": "http://127.0.0.1:8765/s.json", "return_content": true}));
        assert!(p.failed.is_none(), "{:?}", p.failed);
        assert_eq!(p.result["status"], 200);
        assert_eq!(p.result["json"], json!({"ok": 1}));
        assert_eq!(p.result["msg"], "OK (9 bytes)");
        let p = request_on_host(json!({"url": "http://127.0.0.1:8765/none"}));
        assert_eq!(p.failed.as_deref().map(|f| f.starts_with("Status code was 404 and not [200]: HTTP Error 404")), Some(true), "{:?}", p.failed);
        testhost::run("pkill -f 'http.server 8765'; rm -rf /tmp/uri-t", None);
    }
}
