//! PostgreSQL: `postgresql_db`, `postgresql_user`, `postgresql_privs` (database-level grants).
//!
//! Everything goes through `psql -X -At -q -v ON_ERROR_STOP=1` run as the `postgres` OS user
//! (`runuser` when root, directly when already `postgres`, else `sudo -n -u postgres`). On
//! Debian the newest `/usr/lib/postgresql/<major>/bin/psql` is run directly, as Debian's
//! `pg_wrapper` would pick for `psql`, without the wrapper's Perl start (≈17 ms of a ≈25 ms
//! session); like Ansible's modules it connects to the port given (`port`/`login_port`), else
//! libpq's default (5432), not to the cluster the wrapper would choose. Elsewhere, the `psql`
//! on the PATH. SQL
//! always travels on stdin, never in argv, so passwords never show in `ps`. Probes report
//! `pg|missing` (no psql) or `pg|down|<message>` (server not reachable) instead of failing; the
//! plan then fails with a clear message.
//!
//! Passwords are compared without printing them: a stored SCRAM-SHA-256 verifier is recomputed
//! locally from its salt and iteration count (an `md5` hash from `md5(password || user)`).

use super::args::{self, opt_boolish, opt_list, opt_string};
use super::{
    Action, Diff, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope,
    REDACTED,
};
use crate::template::md5_hex;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------- shared psql plumbing

/// `"ident"` with embedded quotes doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'literal'` (standard_conforming_strings) with embedded quotes doubled.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Connection settings shared by the three modules.
#[derive(Debug, Clone, Default)]
struct Conn {
    port: Option<String>,
    login_user: Option<String>,
    login_db: Option<String>,
}

const SQL_EOF: &str = "PROVISION_SQL_EOF";

/// Sets `$PSQL`: the newest `/usr/lib/postgresql/<major>/bin/psql` (numerically: 10 after
/// 9.6), else the `psql` on the PATH, else empty.
const PSQL_FIND: &str = "PSQL=; pgm=-1\n\
for p in /usr/lib/postgresql/*/bin/psql; do [ -x \"$p\" ] || continue; v=${p#/usr/lib/postgresql/}; v=${v%%/*}; v=${v%%.*}; \
case $v in ''|*[!0-9]*) continue;; esac; if [ \"$v\" -ge \"$pgm\" ]; then pgm=$v; PSQL=$p; fi; done\n\
[ -n \"$PSQL\" ] || PSQL=$(command -v psql 2>/dev/null) || PSQL=\n";

impl Conn {
    /// Shell function `pgrun` + the psql argument list.
    fn prelude(&self) -> String {
        let mut args = String::from("-X -At -q -v ON_ERROR_STOP=1");
        if let Some(p) = &self.port {
            args.push_str(&format!(" -p {}", super::sh_quote(p)));
        }
        if let Some(u) = self.login_user.as_ref().filter(|u| *u != "postgres") {
            args.push_str(&format!(" -U {}", super::sh_quote(u)));
        }
        args.push_str(&format!(
            " -d {}",
            super::sh_quote(self.login_db.as_deref().unwrap_or("postgres"))
        ));
        format!(
            "cd / 2>/dev/null\n{PSQL_FIND}\
             pgrun() {{ if [ \"$(id -un)\" = postgres ]; then \"$PSQL\" {args} \"$@\"; elif [ \"$(id -u)\" = 0 ]; then runuser -u postgres -- \"$PSQL\" {args} \"$@\"; else sudo -n -u postgres \"$PSQL\" {args} \"$@\"; fi; }}\n"
        )
    }

    /// Read-only probe running `sql` (which must print `key|...` lines).
    /// Probes of several tasks on the same server (same connection settings) share one
    /// `psql` session (see [`ProbeMerge`](super::ProbeMerge)).
    fn probe(&self, sql: &str) -> Probe {
        let wrapper = format!(
            "{}[ -n \"$PSQL\" ] || {{ echo 'pg|missing'; exit 0; }}\n\
             if out=$(pgrun 2>&1 <<'{SQL_EOF}'\n{slot}\n{SQL_EOF}\n); then printf '%s\\n' \"$out\"; \
             else printf 'pg|down|%s\\n' \"$(printf '%s' \"$out\" | tr '\\n' ' ')\"; fi\n",
            self.prelude(),
            slot = super::MERGE_SLOT,
        );
        Probe::mergeable(wrapper, format!("SELECT 'pg|up';\n{sql}"), |line| format!("SELECT '{line}';"), Scope::Host)
    }

    /// Action running `sql` from stdin (so secrets never appear in the script).
    fn action(&self, summary: String, sql: String) -> Action {
        let s = format!(
            "set -e\n{}[ -n \"$PSQL\" ] || {{ echo 'psql not found on the host (is PostgreSQL installed?)' >&2; exit 127; }}\npgrun\n",
            self.prelude()
        );
        Action::new(summary, s, Scope::Host).with_stdin(sql.into_bytes())
    }
}

/// Split probe output into `key|rest` lines; fail on missing/down server.
fn pg_lines(module: &str, r: &ProbeResult) -> Result<Vec<(String, String)>, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!(
            "{module}: cannot probe PostgreSQL: {}",
            r.stderr.trim()
        )));
    }
    let mut out = Vec::new();
    let mut up = false;
    for l in r.stdout.lines() {
        let (k, v) = l.split_once('|').unwrap_or((l, ""));
        match (k, v) {
            ("pg", "missing") => {
                return Err(ModuleError::Failed(format!(
                    "{module}: psql not found on the host (is PostgreSQL installed?)"
                )))
            }
            ("pg", v) if v.starts_with("down") => {
                return Err(ModuleError::Failed(format!(
                    "{module}: cannot connect to PostgreSQL (is it installed and running?): {}",
                    v.trim_start_matches("down").trim_start_matches('|').trim()
                )))
            }
            ("pg", "up") => up = true,
            _ => out.push((k.to_string(), v.to_string())),
        }
    }
    if !up {
        return Err(ModuleError::Probe(format!(
            "{module}: no answer from psql: {}",
            r.stdout.trim()
        )));
    }
    Ok(out)
}

fn first_probe<'a>(module: &str, p: &'a [ProbeResult]) -> Result<&'a ProbeResult, ModuleError> {
    p.first()
        .ok_or_else(|| ModuleError::Probe(format!("{module}: no probe output")))
}

fn conn_from(port: Option<String>, login_user: Option<String>, login_db: Option<String>) -> Conn {
    Conn {
        port,
        login_user,
        login_db,
    }
}

// ---------------------------------------------------------------- password verification

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password, salt, iterations)
}

/// Does `password` match a stored `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`?
pub fn scram_matches(stored: &str, password: &str) -> Option<bool> {
    use sha2::{Digest, Sha256};
    let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
    let (params, keys) = rest.split_once('$')?;
    let (iter, salt) = params.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(salt).ok()?;
    let iter: u32 = iter.parse().ok()?;
    let salted = pbkdf2_sha256(password.as_bytes(), &salt, iter);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let sk = Sha256::digest(client_key);
    let server = hmac_sha256(&salted, b"Server Key");
    Some(b64.encode(sk) == stored_key && b64.encode(server) == server_key)
}

/// Is the stored hash (`rolpassword`) the hash of `password`? None = cannot tell.
fn password_matches(stored: &str, user: &str, password: &str) -> Option<bool> {
    if stored.is_empty() {
        return Some(false);
    }
    // Already-hashed passwords given by the user compare literally.
    if password.starts_with("SCRAM-SHA-256$")
        || (password.starts_with("md5") && password.len() == 35)
    {
        return Some(stored == password);
    }
    if stored.starts_with("SCRAM-SHA-256$") {
        return scram_matches(stored, password);
    }
    if let Some(h) = stored.strip_prefix("md5") {
        return Some(md5_hex(format!("{password}{user}").as_bytes()) == h);
    }
    None
}

// ---------------------------------------------------------------- postgresql_db

pub struct PostgresqlDbModule;

const DB_PARAMS: &[&str] = &[
    "name",
    "db",
    "state",
    "owner",
    "encoding",
    "lc_collate",
    "lc_ctype",
    "template",
    "login_user",
    "login_db",
    "port",
    "login_unix_socket",
    "conn_limit",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct DbArgs {
    #[serde(alias = "db")]
    name: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    lc_collate: Option<String>,
    #[serde(default)]
    lc_ctype: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    login_user: Option<String>,
    #[serde(default)]
    login_db: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    port: Option<String>,
    #[serde(default)]
    login_unix_socket: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    conn_limit: Option<String>,
}

#[derive(Debug)]
struct DbTask {
    a: DbArgs,
    present: bool,
    conn: Conn,
}

impl Module for PostgresqlDbModule {
    fn name(&self) -> &'static str {
        "postgresql_db"
    }
    fn params(&self) -> &'static [&'static str] {
        DB_PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build_db(args)?))
    }
}

fn build_db(args: &Map<String, Value>) -> Result<DbTask, ModuleError> {
    let a: DbArgs = args::parse("postgresql_db", DB_PARAMS, args)?;
    let present = match a.state.as_deref().unwrap_or("present") {
        "present" => true,
        "absent" => false,
        s => return Err(ModuleError::Args(format!("postgresql_db: state must be present or absent (dump/restore are not supported), got '{s}'"))),
    };
    if a.name.is_empty() {
        return Err(ModuleError::Args(
            "postgresql_db: name must not be empty".into(),
        ));
    }
    let mut conn = conn_from(a.port.clone(), a.login_user.clone(), a.login_db.clone());
    if let Some(sock) = &a.login_unix_socket {
        conn.port = Some(format!(
            "{} -h {}",
            conn.port.clone().unwrap_or_else(|| "5432".into()),
            super::sh_quote(sock)
        ));
    }
    Ok(DbTask { a, present, conn })
}

impl ModuleTask for DbTask {
    fn probes(&self) -> Vec<Probe> {
        let n = quote_literal(&self.a.name);
        vec![self.conn.probe(&format!(
            "SELECT 'db|' || pg_get_userbyid(d.datdba) || '|' || pg_encoding_to_char(d.encoding) || '|' || d.datcollate || '|' || d.datctype || '|' || d.datconnlimit FROM pg_database d WHERE d.datname = {n};"
        ))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let lines = pg_lines("postgresql_db", first_probe("postgresql_db", probes)?)?;
        let cur = lines
            .iter()
            .find(|(k, _)| k == "db")
            .map(|(_, v)| v.split('|').map(str::to_string).collect::<Vec<_>>());
        let a = &self.a;
        let name = quote_ident(&a.name);
        let mut plan = Plan::ok();
        plan.result.insert("db".into(), json!(a.name));
        let mut queries = Vec::new();
        match (&cur, self.present) {
            (None, true) => {
                let mut q = format!("CREATE DATABASE {name}");
                if let Some(o) = &a.owner {
                    q.push_str(&format!(" OWNER {}", quote_ident(o)));
                }
                if let Some(t) = &a.template {
                    q.push_str(&format!(" TEMPLATE {}", quote_ident(t)));
                }
                if let Some(e) = &a.encoding {
                    q.push_str(&format!(" ENCODING {}", quote_literal(e)));
                }
                if let Some(c) = &a.lc_collate {
                    q.push_str(&format!(" LC_COLLATE {}", quote_literal(c)));
                }
                if let Some(c) = &a.lc_ctype {
                    q.push_str(&format!(" LC_CTYPE {}", quote_literal(c)));
                }
                if let Some(c) = &a.conn_limit {
                    q.push_str(&format!(
                        " CONNECTION LIMIT {}",
                        c.parse::<i64>().map_err(|_| ModuleError::Args(format!(
                            "postgresql_db: conn_limit must be a number, got '{c}'"
                        )))?
                    ));
                }
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "absent".into(),
                    after: "present".into(),
                });
                if let Some(o) = &a.owner {
                    plan.diffs.push(Diff::Field {
                        name: "owner".into(),
                        before: "absent".into(),
                        after: o.clone(),
                    });
                }
                queries.push(q);
            }
            (Some(_), false) => {
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "present".into(),
                    after: "absent".into(),
                });
                queries.push(format!("DROP DATABASE {name}"));
            }
            (None, false) => {}
            (Some(c), true) => {
                if c.len() < 5 {
                    return Err(ModuleError::Probe(format!(
                        "postgresql_db: database line {c:?}"
                    )));
                }
                let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
                for (what, want, have) in [
                    ("encoding", &a.encoding, &c[1]),
                    ("lc_collate", &a.lc_collate, &c[2]),
                    ("lc_ctype", &a.lc_ctype, &c[3]),
                ] {
                    if let Some(w) = want {
                        if norm(w) != norm(have) {
                            return Err(ModuleError::Failed(format!(
                                "postgresql_db: database {} exists with {what} {have}; changing it to {w} is not supported (drop and recreate it)",
                                a.name
                            )));
                        }
                    }
                }
                if let Some(o) = &a.owner {
                    if *o != c[0] {
                        plan.diffs.push(Diff::Field {
                            name: "owner".into(),
                            before: c[0].clone(),
                            after: o.clone(),
                        });
                        queries.push(format!("ALTER DATABASE {name} OWNER TO {}", quote_ident(o)));
                    }
                }
                if let Some(l) = &a.conn_limit {
                    if l.trim() != c[4] {
                        plan.diffs.push(Diff::Field {
                            name: "conn_limit".into(),
                            before: c[4].clone(),
                            after: l.trim().to_string(),
                        });
                        queries.push(format!(
                            "ALTER DATABASE {name} CONNECTION LIMIT {}",
                            l.trim().parse::<i64>().map_err(|_| ModuleError::Args(
                                "postgresql_db: conn_limit must be a number".into()
                            ))?
                        ));
                    }
                }
            }
        }
        for q in &queries {
            plan.actions
                .push(self.conn.action(q.clone(), format!("{q};\n")));
        }
        plan.result
            .insert("executed_commands".into(), json!(queries));
        Ok(plan)
    }
}

// ---------------------------------------------------------------- postgresql_user

pub struct PostgresqlUserModule;

const USER_PARAMS: &[&str] = &[
    "name",
    "user",
    "password",
    "role_attr_flags",
    "db",
    "login_db",
    "priv",
    "privs",
    "state",
    "encrypted",
    "login_user",
    "port",
    "expires",
    "conn_limit",
    "no_password_changes",
    "login_unix_socket",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct UserArgs {
    #[serde(alias = "user")]
    name: String,
    #[serde(default, deserialize_with = "opt_string")]
    password: Option<String>,
    #[serde(default)]
    role_attr_flags: Option<String>,
    #[serde(default, alias = "login_db")]
    db: Option<String>,
    #[serde(default, alias = "privs", rename = "priv")]
    privs: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    encrypted: Option<bool>,
    #[serde(default)]
    login_user: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    port: Option<String>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    conn_limit: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    no_password_changes: Option<bool>,
    #[serde(default)]
    login_unix_socket: Option<String>,
}

/// Role attribute name -> pg_roles column.
const FLAGS: &[(&str, &str)] = &[
    ("SUPERUSER", "rolsuper"),
    ("CREATEROLE", "rolcreaterole"),
    ("CREATEDB", "rolcreatedb"),
    ("LOGIN", "rolcanlogin"),
    ("REPLICATION", "rolreplication"),
    ("INHERIT", "rolinherit"),
    ("BYPASSRLS", "rolbypassrls"),
];

#[derive(Debug)]
struct UserTask {
    name: String,
    password: Option<String>,
    flags: Vec<(String, bool)>,
    db_privs: Option<(String, Vec<String>)>,
    present: bool,
    expires: Option<String>,
    conn_limit: Option<i64>,
    no_password_changes: bool,
    conn: Conn,
}

impl Module for PostgresqlUserModule {
    fn name(&self) -> &'static str {
        "postgresql_user"
    }
    fn params(&self) -> &'static [&'static str] {
        USER_PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build_user(args)?))
    }
}

fn parse_db_privs(p: &str) -> Result<Vec<String>, ModuleError> {
    let mut out = Vec::new();
    for part in p.split(['/', ',']).map(str::trim).filter(|s| !s.is_empty()) {
        if part.contains(':') {
            return Err(ModuleError::Args(format!(
                "postgresql_user: table privileges ('{part}') are not supported; use database privileges (CONNECT, CREATE, TEMPORARY, ALL)"
            )));
        }
        out.extend(expand_db_priv(part)?);
    }
    Ok(out
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

fn expand_db_priv(p: &str) -> Result<Vec<String>, ModuleError> {
    Ok(match p.to_ascii_uppercase().as_str() {
        "ALL" | "ALL PRIVILEGES" => vec!["CONNECT".into(), "CREATE".into(), "TEMPORARY".into()],
        "CONNECT" => vec!["CONNECT".into()],
        "CREATE" => vec!["CREATE".into()],
        "TEMP" | "TEMPORARY" => vec!["TEMPORARY".into()],
        other => {
            return Err(ModuleError::Args(format!(
                "unsupported database privilege '{other}' (CONNECT, CREATE, TEMPORARY, ALL)"
            )))
        }
    })
}

fn build_user(args: &Map<String, Value>) -> Result<UserTask, ModuleError> {
    let a: UserArgs = args::parse("postgresql_user", USER_PARAMS, args)?;
    let present = args::present_state("postgresql_user", a.state.as_deref())?;
    let mut flags = Vec::new();
    for f in a
        .role_attr_flags
        .as_deref()
        .unwrap_or("")
        .split([',', '|', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let up = f.to_ascii_uppercase();
        let (neg, base) = match up.strip_prefix("NO") {
            Some(b) if FLAGS.iter().any(|(n, _)| *n == b) => (true, b.to_string()),
            _ => (false, up.clone()),
        };
        if !FLAGS.iter().any(|(n, _)| *n == base) {
            return Err(ModuleError::Args(format!(
                "postgresql_user: unknown role attribute flag '{f}'"
            )));
        }
        flags.push((base, !neg));
    }
    if a.encrypted == Some(false) {
        return Err(ModuleError::Args(
            "postgresql_user: encrypted: false is not supported by PostgreSQL 10+".into(),
        ));
    }
    let db_privs = match (&a.db, &a.privs) {
        (Some(db), Some(p)) => Some((db.clone(), parse_db_privs(p)?)),
        (None, Some(_)) => {
            return Err(ModuleError::Args(
                "postgresql_user: priv requires db".into(),
            ))
        }
        _ => None,
    };
    let conn_limit = match &a.conn_limit {
        Some(c) => Some(c.trim().parse::<i64>().map_err(|_| {
            ModuleError::Args(format!(
                "postgresql_user: conn_limit must be a number, got '{c}'"
            ))
        })?),
        None => None,
    };
    let mut conn = conn_from(a.port.clone(), a.login_user.clone(), None);
    if let Some(sock) = &a.login_unix_socket {
        conn.port = Some(format!(
            "{} -h {}",
            conn.port.clone().unwrap_or_else(|| "5432".into()),
            super::sh_quote(sock)
        ));
    }
    Ok(UserTask {
        name: a.name,
        password: a.password.filter(|p| !p.is_empty()),
        flags,
        db_privs,
        present,
        expires: a.expires,
        conn_limit,
        no_password_changes: a.no_password_changes.unwrap_or(false),
        conn,
    })
}

impl ModuleTask for UserTask {
    fn probes(&self) -> Vec<Probe> {
        let n = quote_literal(&self.name);
        let cols: Vec<String> = FLAGS.iter().map(|(_, c)| format!("r.{c}::text")).collect();
        let mut sql = format!(
            "SELECT 'role|' || concat_ws('|', {}, r.rolconnlimit::text, coalesce(r.rolvaliduntil::text, '')) FROM pg_roles r WHERE r.rolname = {n};\n\
             SELECT 'pw|' || coalesce(a.rolpassword, '') FROM pg_authid a WHERE a.rolname = {n};\n",
            cols.join(", ")
        );
        if let Some((db, _)) = &self.db_privs {
            sql.push_str(&format!(
                "SELECT 'dbexists|' || count(*) FROM pg_database WHERE datname = {d};\n\
                 SELECT 'acl|' || a.privilege_type || '|' || a.is_grantable::text FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname = {d} AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = {n});\n",
                d = quote_literal(db)
            ));
        }
        vec![self.conn.probe(&sql)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let lines = pg_lines("postgresql_user", first_probe("postgresql_user", probes)?)?;
        let role = lines
            .iter()
            .find(|(k, _)| k == "role")
            .map(|(_, v)| v.split('|').map(str::to_string).collect::<Vec<_>>());
        let stored_pw = lines
            .iter()
            .find(|(k, _)| k == "pw")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let ident = quote_ident(&self.name);
        let mut plan = Plan::ok();
        plan.result.insert("user".into(), json!(self.name));
        // (summary, sql) pairs; the summary never contains the password.
        let mut stmts: Vec<(String, String)> = Vec::new();
        if !self.present {
            if role.is_some() {
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "present".into(),
                    after: "absent".into(),
                });
                let q = format!("DROP ROLE {ident}");
                stmts.push((q.clone(), q));
            }
        } else {
            let mut opts: Vec<String> = Vec::new();
            let mut shown: Vec<String> = Vec::new();
            let exists = role.is_some();
            if let Some(r) = &role {
                if r.len() < FLAGS.len() + 2 {
                    return Err(ModuleError::Probe(format!(
                        "postgresql_user: role line {r:?}"
                    )));
                }
            }
            if !exists {
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "absent".into(),
                    after: "present".into(),
                });
            }
            for (flag, want) in &self.flags {
                let idx = FLAGS.iter().position(|(n, _)| n == flag).unwrap();
                let have = match &role {
                    Some(r) => r[idx] == "true",
                    // CREATE USER defaults: LOGIN and INHERIT on, the rest off.
                    None => flag == "LOGIN" || flag == "INHERIT",
                };
                if have != *want || !exists {
                    let kw = if *want {
                        flag.clone()
                    } else {
                        format!("NO{flag}")
                    };
                    if have != *want {
                        plan.diffs.push(Diff::Field {
                            name: flag.to_lowercase(),
                            before: have.to_string(),
                            after: want.to_string(),
                        });
                    }
                    opts.push(kw.clone());
                    shown.push(kw);
                }
            }
            if let Some(l) = self.conn_limit {
                let have = role
                    .as_ref()
                    .map(|r| r[FLAGS.len()].clone())
                    .unwrap_or_else(|| "-1".into());
                if have != l.to_string() {
                    plan.diffs.push(Diff::Field {
                        name: "conn_limit".into(),
                        before: have,
                        after: l.to_string(),
                    });
                    opts.push(format!("CONNECTION LIMIT {l}"));
                    shown.push(format!("CONNECTION LIMIT {l}"));
                }
            }
            if let Some(e) = &self.expires {
                let have = role
                    .as_ref()
                    .map(|r| r[FLAGS.len() + 1].clone())
                    .unwrap_or_default();
                if !same_timestamp(&have, e) {
                    plan.diffs.push(Diff::Field {
                        name: "expires".into(),
                        before: if have.is_empty() {
                            "never".into()
                        } else {
                            have
                        },
                        after: e.clone(),
                    });
                    opts.push(format!("VALID UNTIL {}", quote_literal(e)));
                    shown.push(format!("VALID UNTIL {}", quote_literal(e)));
                }
            }
            if let Some(pw) = &self.password {
                let change = if !exists {
                    true
                } else if self.no_password_changes {
                    false
                } else {
                    match password_matches(&stored_pw, &self.name, pw) {
                        Some(m) => !m,
                        None => true,
                    }
                };
                if change {
                    plan.diffs.push(Diff::Field {
                        name: "password".into(),
                        before: if !exists || stored_pw.is_empty() {
                            "absent".into()
                        } else {
                            REDACTED.into()
                        },
                        after: format!("{REDACTED} (changed)"),
                    });
                    opts.push(format!("PASSWORD {}", quote_literal(pw)));
                    shown.push(format!("PASSWORD '{REDACTED}'"));
                }
            }
            if !exists {
                let tail = if opts.is_empty() {
                    String::new()
                } else {
                    format!(" WITH {}", opts.join(" "))
                };
                let stail = if shown.is_empty() {
                    String::new()
                } else {
                    format!(" WITH {}", shown.join(" "))
                };
                stmts.push((
                    format!("CREATE USER {ident}{stail}"),
                    format!("CREATE USER {ident}{tail}"),
                ));
            } else if !opts.is_empty() {
                stmts.push((
                    format!("ALTER USER {ident} WITH {}", shown.join(" ")),
                    format!("ALTER USER {ident} WITH {}", opts.join(" ")),
                ));
            }
            if let Some((db, privs)) = &self.db_privs {
                let exists_db = lines.iter().any(|(k, v)| k == "dbexists" && v != "0");
                if !exists_db {
                    return Err(ModuleError::Failed(format!(
                        "postgresql_user: database {db} does not exist"
                    )));
                }
                let have: BTreeSet<String> = lines
                    .iter()
                    .filter(|(k, _)| k == "acl")
                    .map(|(_, v)| v.split('|').next().unwrap_or("").to_string())
                    .collect();
                let missing: Vec<String> = privs
                    .iter()
                    .filter(|p| !have.contains(*p))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    plan.diffs.push(Diff::Field {
                        name: format!("privileges on database {db}"),
                        before: have
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(",")
                            .if_empty("none"),
                        after: have
                            .iter()
                            .cloned()
                            .chain(missing.iter().cloned())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(","),
                    });
                    let q = format!(
                        "GRANT {} ON DATABASE {} TO {ident}",
                        missing.join(", "),
                        quote_ident(db)
                    );
                    stmts.push((q.clone(), q));
                }
            }
        }
        let queries: Vec<String> = stmts.iter().map(|(s, _)| s.clone()).collect();
        for (summary, sql) in stmts {
            plan.actions
                .push(self.conn.action(summary, format!("{sql};\n")));
        }
        plan.result.insert("queries".into(), json!(queries));
        Ok(plan)
    }
}

trait IfEmpty {
    fn if_empty(self, d: &str) -> String;
}
impl IfEmpty for String {
    fn if_empty(self, d: &str) -> String {
        if self.is_empty() {
            d.to_string()
        } else {
            self
        }
    }
}

/// `2025-01-01 00:00:00+00` vs a user's `2025-01-01` / `infinity`.
fn same_timestamp(have: &str, want: &str) -> bool {
    let h = have.trim();
    let w = want.trim();
    if h == w {
        return true;
    }
    if w.eq_ignore_ascii_case("infinity") {
        return h == "infinity";
    }
    let hn = h.trim_end_matches("+00").trim_end_matches(" 00:00:00");
    let wn = w
        .trim_end_matches("+00")
        .trim_end_matches(" 00:00:00")
        .replace('T', " ");
    hn == wn
}

// ---------------------------------------------------------------- postgresql_privs

pub struct PostgresqlPrivsModule;

const PRIVS_PARAMS: &[&str] = &[
    "database",
    "db",
    "login_db",
    "roles",
    "role",
    "privs",
    "priv",
    "type",
    "objs",
    "obj",
    "state",
    "grant_option",
    "admin_option",
    "login_user",
    "port",
    "login_unix_socket",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PrivsArgs {
    #[serde(alias = "db", alias = "login_db")]
    database: String,
    #[serde(alias = "role", deserialize_with = "args::list")]
    roles: Vec<String>,
    #[serde(default, alias = "priv", deserialize_with = "opt_list")]
    privs: Option<Vec<String>>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, alias = "obj", deserialize_with = "opt_list")]
    objs: Option<Vec<String>>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    grant_option: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    admin_option: Option<bool>,
    #[serde(default)]
    login_user: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    port: Option<String>,
    #[serde(default)]
    login_unix_socket: Option<String>,
}

#[derive(Debug)]
struct PrivsTask {
    dbs: Vec<String>,
    roles: Vec<String>,
    privs: Vec<String>,
    present: bool,
    grant_option: Option<bool>,
    conn: Conn,
}

impl Module for PostgresqlPrivsModule {
    fn name(&self) -> &'static str {
        "postgresql_privs"
    }
    fn params(&self) -> &'static [&'static str] {
        PRIVS_PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build_privs(args)?))
    }
}

fn build_privs(args: &Map<String, Value>) -> Result<PrivsTask, ModuleError> {
    let a: PrivsArgs = args::parse("postgresql_privs", PRIVS_PARAMS, args)?;
    match a.kind.as_deref() {
        Some("database") => {}
        Some(other) => {
            return Err(ModuleError::Args(format!("postgresql_privs: type '{other}' is not supported (only type: database)")));
        }
        None => {
            return Err(ModuleError::Args(
                "postgresql_privs: set type: database (Ansible's default type 'table' is not supported)".into(),
            ))
        }
    }
    if a.admin_option.is_some() {
        return Err(ModuleError::Args(
            "postgresql_privs: admin_option applies to type group, which is not supported".into(),
        ));
    }
    let present = args::present_state("postgresql_privs", a.state.as_deref())?;
    let mut privs = BTreeSet::new();
    for p in a.privs.unwrap_or_default() {
        privs.extend(
            expand_db_priv(&p).map_err(|e| ModuleError::Args(format!("postgresql_privs: {e}")))?,
        );
    }
    if privs.is_empty() {
        return Err(ModuleError::Args(
            "postgresql_privs: privs is required for type database".into(),
        ));
    }
    if a.roles.is_empty() {
        return Err(ModuleError::Args(
            "postgresql_privs: roles must not be empty".into(),
        ));
    }
    let dbs = a
        .objs
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| vec![a.database.clone()]);
    let mut conn = conn_from(a.port, a.login_user, None);
    if let Some(sock) = &a.login_unix_socket {
        conn.port = Some(format!(
            "{} -h {}",
            conn.port.clone().unwrap_or_else(|| "5432".into()),
            super::sh_quote(sock)
        ));
    }
    Ok(PrivsTask {
        dbs,
        roles: a.roles,
        privs: privs.into_iter().collect(),
        present,
        grant_option: a.grant_option,
        conn,
    })
}

impl ModuleTask for PrivsTask {
    fn probes(&self) -> Vec<Probe> {
        let dbs = self
            .dbs
            .iter()
            .map(|d| quote_literal(d))
            .collect::<Vec<_>>()
            .join(", ");
        let roles = self
            .roles
            .iter()
            .filter(|r| !r.eq_ignore_ascii_case("PUBLIC"))
            .map(|r| quote_literal(r))
            .collect::<Vec<_>>();
        let mut sql = format!(
            "SELECT 'db|' || datname FROM pg_database WHERE datname IN ({dbs});\n\
             SELECT 'acl|' || d.datname || '|' || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END || '|' || a.privilege_type || '|' || a.is_grantable::text \
             FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname IN ({dbs});\n"
        );
        if !roles.is_empty() {
            sql.push_str(&format!(
                "SELECT 'role|' || rolname FROM pg_roles WHERE rolname IN ({});\n",
                roles.join(", ")
            ));
        }
        vec![self.conn.probe(&sql)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let lines = pg_lines("postgresql_privs", first_probe("postgresql_privs", probes)?)?;
        let dbs: BTreeSet<&str> = lines
            .iter()
            .filter(|(k, _)| k == "db")
            .map(|(_, v)| v.as_str())
            .collect();
        let roles: BTreeSet<&str> = lines
            .iter()
            .filter(|(k, _)| k == "role")
            .map(|(_, v)| v.as_str())
            .collect();
        // (db, role) -> {priv: grantable}
        let mut acl: BTreeMap<(String, String), BTreeMap<String, bool>> = BTreeMap::new();
        for (_, v) in lines.iter().filter(|(k, _)| k == "acl") {
            let f: Vec<&str> = v.split('|').collect();
            if f.len() == 4 {
                acl.entry((f[0].to_string(), f[1].to_string()))
                    .or_default()
                    .insert(f[2].to_string(), f[3] == "true");
            }
        }
        let mut plan = Plan::ok();
        let mut queries = Vec::new();
        for db in &self.dbs {
            if !dbs.contains(db.as_str()) {
                return Err(ModuleError::Failed(format!(
                    "postgresql_privs: database {db} does not exist"
                )));
            }
            for role in &self.roles {
                let is_public = role.eq_ignore_ascii_case("PUBLIC");
                if !is_public && !roles.contains(role.as_str()) {
                    return Err(ModuleError::Failed(format!(
                        "postgresql_privs: role {role} does not exist"
                    )));
                }
                let key = (
                    db.clone(),
                    if is_public {
                        "PUBLIC".to_string()
                    } else {
                        role.clone()
                    },
                );
                let have = acl.get(&key).cloned().unwrap_or_default();
                let grantee = if is_public {
                    "PUBLIC".to_string()
                } else {
                    quote_ident(role)
                };
                let on = format!("ON DATABASE {}", quote_ident(db));
                let before: Vec<String> = have.keys().cloned().collect();
                if self.present {
                    let missing: Vec<String> = self
                        .privs
                        .iter()
                        .filter(|p| match have.get(*p) {
                            None => true,
                            Some(g) => self.grant_option == Some(true) && !g,
                        })
                        .cloned()
                        .collect();
                    let revoke_go: Vec<String> = if self.grant_option == Some(false) {
                        self.privs
                            .iter()
                            .filter(|p| have.get(*p) == Some(&true))
                            .cloned()
                            .collect()
                    } else {
                        vec![]
                    };
                    if !missing.is_empty() {
                        let wgo = if self.grant_option == Some(true) {
                            " WITH GRANT OPTION"
                        } else {
                            ""
                        };
                        queries.push(format!(
                            "GRANT {} {on} TO {grantee}{wgo}",
                            missing.join(", ")
                        ));
                    }
                    if !revoke_go.is_empty() {
                        queries.push(format!(
                            "REVOKE GRANT OPTION FOR {} {on} FROM {grantee}",
                            revoke_go.join(", ")
                        ));
                    }
                    if !missing.is_empty() || !revoke_go.is_empty() {
                        let after: BTreeSet<String> = before
                            .iter()
                            .cloned()
                            .chain(self.privs.iter().cloned())
                            .collect();
                        plan.diffs.push(Diff::Field {
                            name: format!("privileges of {role} on database {db}"),
                            before: before.join(",").if_empty("none"),
                            after: after.into_iter().collect::<Vec<_>>().join(",")
                                + if self.grant_option == Some(true) {
                                    " (with grant option)"
                                } else {
                                    ""
                                },
                        });
                    }
                } else {
                    let present: Vec<String> = self
                        .privs
                        .iter()
                        .filter(|p| have.contains_key(*p))
                        .cloned()
                        .collect();
                    if !present.is_empty() {
                        queries.push(format!("REVOKE {} {on} FROM {grantee}", present.join(", ")));
                        let after: Vec<String> = before
                            .iter()
                            .filter(|p| !present.contains(p))
                            .cloned()
                            .collect();
                        plan.diffs.push(Diff::Field {
                            name: format!("privileges of {role} on database {db}"),
                            before: before.join(","),
                            after: after.join(",").if_empty("none"),
                        });
                    }
                }
            }
        }
        for q in &queries {
            plan.actions
                .push(self.conn.action(q.clone(), format!("{q};\n")));
        }
        plan.result.insert("queries".into(), json!(queries));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, ok as res};
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// `PSQL_FIND` run by `sh` against a fake `/usr/lib/postgresql` holding these versions'
    /// `psql`s (and a PATH without psql): what it chose, relative to the fake root.
    fn find_psql(versions: &[&str], path_psql: bool) -> String {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lib");
        for v in versions {
            let bin = root.join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("psql"), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(bin.join("psql"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let pathdir = dir.path().join("path");
        std::fs::create_dir_all(&pathdir).unwrap();
        if path_psql {
            std::fs::write(pathdir.join("psql"), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(pathdir.join("psql"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let script = format!("{}printf '%s' \"$PSQL\"", PSQL_FIND.replace("/usr/lib/postgresql", root.to_str().unwrap()));
        let out = std::process::Command::new("/bin/sh").arg("-c").arg(&script).env("PATH", &pathdir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().replace(dir.path().to_str().unwrap(), "")
    }

    #[test]
    fn psql_is_the_newest_debian_client_else_the_path_one() {
        assert_eq!(find_psql(&["15"], false), "/lib/15/bin/psql");
        assert_eq!(find_psql(&["9.6", "10", "15"], false), "/lib/15/bin/psql");
        assert_eq!(find_psql(&["9.5", "9.6"], false), "/lib/9.6/bin/psql");
        assert_eq!(find_psql(&["9.6", "10"], true), "/lib/10/bin/psql");
        assert_eq!(find_psql(&[], true), "/path/psql");
        assert_eq!(find_psql(&[], false), "");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn scram_and_md5_verification() {
        // Verifier for password "secret" computed independently (Python's hashlib/hmac, as
        // RFC 5802 and PostgreSQL define it).
        let stored = "SCRAM-SHA-256$4096:3Bxp6a4dxPZaKmpaaIh8Ew==$IhIAYzJlcqFLBNqSS5kPyW564gJ+1oC2O0ZDWO+hMUs=:+KWOAugcIPiAXCVQKJJsFKewrCz2d8XSRLcez7mKgsw=";
        assert_eq!(scram_matches(stored, "secret"), Some(true));
        assert_eq!(scram_matches(stored, "Secret"), Some(false));
        // Self-consistency: compute a verifier and check it.
        let salt = b"0123456789abcdef";
        let salted = pbkdf2_sha256(b"pw", salt, 4096);
        use sha2::Digest;
        let b64 = base64::engine::general_purpose::STANDARD;
        let v = format!(
            "SCRAM-SHA-256$4096:{}${}:{}",
            b64.encode(salt),
            b64.encode(sha2::Sha256::digest(hmac_sha256(&salted, b"Client Key"))),
            b64.encode(hmac_sha256(&salted, b"Server Key"))
        );
        assert_eq!(scram_matches(&v, "pw"), Some(true));
        assert_eq!(scram_matches(&v, "px"), Some(false));
        // RFC 4231 test case 2 for HMAC-SHA256.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 7914 PBKDF2-HMAC-SHA256 vector (c=1, first 32 bytes).
        assert_eq!(
            hex::encode(pbkdf2_sha256(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            md5_hex(b"The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        assert_eq!(
            password_matches(&format!("md5{}", md5_hex(b"pwbob")), "bob", "pw"),
            Some(true)
        );
    }

    #[test]
    fn db_create_alter_and_down() {
        let t = build_db(&obj(
            json!({"name": "app", "owner": "app", "encoding": "UTF-8"}),
        ))
        .unwrap();
        let p = t.plan(&[res("pg|up\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(
            p.actions[0].stdin.as_deref(),
            Some(&b"CREATE DATABASE \"app\" OWNER \"app\" ENCODING 'UTF-8';\n"[..])
        );
        assert!(!p.actions[0].script.contains("CREATE"));
        let p = t
            .plan(&[res("pg|up\ndb|app|UTF8|C.UTF-8|C.UTF-8|-1\n")])
            .unwrap();
        assert!(p.actions.is_empty(), "{p:?}");
        let p = t
            .plan(&[res("pg|up\ndb|postgres|UTF8|C.UTF-8|C.UTF-8|-1\n")])
            .unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "owner".into(),
                before: "postgres".into(),
                after: "app".into()
            }]
        );
        let e = t.plan(&[res("pg|down|psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: No such file or directory\n")]).unwrap_err();
        assert!(e.to_string().contains("running"), "{e}");
        assert!(t
            .plan(&[res("pg|missing\n")])
            .unwrap_err()
            .to_string()
            .contains("psql not found"));
        let t = build_db(&obj(json!({"name": "app", "encoding": "LATIN1"}))).unwrap();
        assert!(t
            .plan(&[res("pg|up\ndb|app|UTF8|C.UTF-8|C.UTF-8|-1\n")])
            .is_err());
        let t = build_db(&obj(json!({"db": "app", "state": "absent"}))).unwrap();
        assert_eq!(
            t.plan(&[res("pg|up\ndb|app|UTF8|C.UTF-8|C.UTF-8|-1\n")])
                .unwrap()
                .actions[0]
                .summary,
            "DROP DATABASE \"app\""
        );
    }

    #[test]
    fn user_password_is_never_shown() {
        let t = build_user(&obj(json!({"name": "app", "password": "s3cr'et", "role_attr_flags": "CREATEDB,NOSUPERUSER", "db": "app", "priv": "ALL"}))).unwrap();
        let p = t.plan(&[res("pg|up\ndbexists|1\n")]).unwrap();
        assert_eq!(p.actions.len(), 2);
        let a = &p.actions[0];
        assert!(
            a.summary.contains(REDACTED) && !a.summary.contains("s3cr"),
            "{}",
            a.summary
        );
        assert!(!a.script.contains("s3cr"));
        assert!(String::from_utf8_lossy(a.stdin.as_ref().unwrap()).contains("PASSWORD 's3cr''et'"));
        assert!(!format!("{:?}{:?}", p.diffs, p.result).contains("s3cr"));
        assert!(p.actions[1]
            .summary
            .contains("GRANT CONNECT, CREATE, TEMPORARY ON DATABASE \"app\" TO \"app\""));
    }

    #[test]
    fn converged_user_is_ok() {
        let salt = b"saltsaltsaltsalt";
        let salted = pbkdf2_sha256(b"pw", salt, 4096);
        use sha2::Digest;
        let b64 = base64::engine::general_purpose::STANDARD;
        let v = format!(
            "SCRAM-SHA-256$4096:{}${}:{}",
            b64.encode(salt),
            b64.encode(sha2::Sha256::digest(hmac_sha256(&salted, b"Client Key"))),
            b64.encode(hmac_sha256(&salted, b"Server Key"))
        );
        let t = build_user(&obj(
            json!({"name": "app", "password": "pw", "role_attr_flags": "CREATEDB"}),
        ))
        .unwrap();
        let out = format!("pg|up\nrole|false|false|true|true|false|true|false|-1|\npw|{v}\n");
        assert!(t.plan(&[res(&out)]).unwrap().actions.is_empty());
        let t = build_user(&obj(json!({"name": "app", "password": "other"}))).unwrap();
        let p = t.plan(&[res(&out)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(
            p.actions[0].summary,
            format!("ALTER USER \"app\" WITH PASSWORD '{REDACTED}'")
        );
    }

    #[test]
    fn privs_grant_and_revoke() {
        let t = build_privs(&obj(json!({"database": "app", "roles": "app", "privs": "CONNECT,CREATE", "type": "database"}))).unwrap();
        let out = "pg|up\ndb|app\nrole|app\nacl|app|PUBLIC|TEMPORARY|false\nacl|app|PUBLIC|CONNECT|false\nacl|app|postgres|CREATE|false\n";
        let p = t.plan(&[res(out)]).unwrap();
        assert_eq!(
            p.actions[0].summary,
            "GRANT CONNECT, CREATE ON DATABASE \"app\" TO \"app\""
        );
        let out2 = format!("{out}acl|app|app|CONNECT|false\nacl|app|app|CREATE|false\n");
        assert!(t.plan(&[res(&out2)]).unwrap().actions.is_empty());
        let t = build_privs(&obj(json!({"db": "app", "role": "PUBLIC", "priv": "ALL", "type": "database", "state": "absent"}))).unwrap();
        let p = t.plan(&[res(out)]).unwrap();
        assert_eq!(
            p.actions[0].summary,
            "REVOKE CONNECT, TEMPORARY ON DATABASE \"app\" FROM PUBLIC"
        );
        assert!(build_privs(&obj(json!({"db": "app", "roles": "x", "privs": "SELECT"}))).is_err());
    }

    #[test]
    fn probes_are_valid_sh() {
        let t = build_user(&obj(
            json!({"name": "app", "password": "x", "db": "app", "priv": "ALL"}),
        ))
        .unwrap();
        for p in t.probes() {
            assert_sh_syntax(&p.script);
            assert!(!p.script.contains("'x'"));
        }
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn postgresql_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let o = |v: Value| v.as_object().unwrap().clone();
        let t = build_user(&o(
            json!({"name": "ptest", "password": "pw1", "role_attr_flags": "CREATEDB"}),
        ))
        .unwrap();
        let (first, second) = testhost::converge(&t);
        eprintln!("{:?}", first.diffs);
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let t = build_user(&o(json!({"name": "ptest", "password": "pw2"}))).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(
            first.changed() && second.actions.is_empty(),
            "{:?}",
            second.diffs
        );
        let t = build_db(&o(
            json!({"name": "ptestdb", "owner": "ptest", "encoding": "UTF8"}),
        ))
        .unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(
            first.changed() && second.actions.is_empty(),
            "{:?}",
            second.diffs
        );
        let t = build_privs(&o(json!({"db": "ptestdb", "roles": "PUBLIC", "privs": "ALL", "type": "database", "state": "absent"}))).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(
            first.changed() && second.actions.is_empty(),
            "{:?}",
            second.diffs
        );
        let t = build_user(&o(
            json!({"name": "ptest2", "db": "ptestdb", "priv": "CONNECT"}),
        ))
        .unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(
            first.changed() && second.actions.is_empty(),
            "{:?}",
            second.diffs
        );
        for t in [
            Box::new(build_db(&o(json!({"name": "ptestdb", "state": "absent"}))).unwrap())
                as Box<dyn ModuleTask>,
            Box::new(build_user(&o(json!({"name": "ptest", "state": "absent"}))).unwrap()),
            Box::new(build_user(&o(json!({"name": "ptest2", "state": "absent"}))).unwrap()),
        ] {
            let (first, second) = testhost::converge(t.as_ref());
            assert!(
                first.changed() && second.actions.is_empty(),
                "{:?}",
                second.diffs
            );
        }
    }
}
