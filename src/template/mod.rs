//! Jinja templating (minijinja) with strict undefined variables and Ansible's filters.
//!
//! Ansible semantics on top of minijinja:
//! - variables are resolved lazily (see [`lazy`]): `app_dir: "{{ home }}/webapp"` is rendered
//!   when first referenced, recursively, and cached for the duration of one call;
//! - a string that is exactly one `{{ expr }}` yields the expression's native value;
//! - undefined variables are errors, except under `is defined` / `is undefined` /
//!   `| default(...)`, also for attribute chains on undefined values (`x.y | default(1)`);
//! - `None` renders as an empty string, booleans as `True`/`False`, lists and dicts in
//!   Python's repr, as Jinja under Ansible does.

mod checks;
mod digest;
pub(crate) use digest::md5_hex;
mod files;
pub use files::{module_search_path, lookup_search_path, newline_sequence, set_ansible_managed, template_vars, OptionValue, TemplateOptions, ANSIBLE_MANAGED};
mod filters;
mod lazy;
mod lookups;
pub use lazy::LiveHostVars;
mod serialize;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use serde_json::Value as Json;

use lazy::{Scope, VarsObject};

/// Variables of a host/task. Values are RAW: strings may themselves contain templates
/// (`app_dir: "{{ home }}/webapp"`); the templar resolves them lazily when referenced.
pub type Vars = serde_json::Map<String, Json>;

/// Value of the `omit` variable. Module parameters equal to it must be dropped.
/// Python's `json.dumps(v)` with default options (`", "`/`": "` separators, non-ASCII
/// escaped): how Ansible writes structured values as text (`to_json`, `copy content:`).
pub fn json_dumps(v: &Json) -> String {
    serialize::json_dumps(v, &serialize::JsonOpts { indent: None, sort_keys: false, ensure_ascii: true })
}

pub const OMIT: &str = "__omit_place_holder__provision__";

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Human message naming the undefined variable / bad filter, and the template name.
    pub message: String,
    /// Line within the template text, when known (1-based).
    pub line: Option<usize>,
    /// A variable (or attribute) was undefined.
    pub undefined: bool,
}

/// Cheap to clone; shareable across threads.
#[derive(Clone)]
pub struct Templar {
    env: Arc<Environment<'static>>,
    /// Variables of one host common to all its tasks (inventory, facts, play and role vars),
    /// looked up when a name is not in a call's own vars: a task's vars then hold only what
    /// is particular to the task, instead of a copy of the host's hundreds of names.
    base: Option<Arc<Vars>>,
    /// Variables shared by all hosts of a play, looked up when a name is in neither.
    globals: Option<Arc<Vars>>,
    /// What hosts registered or set in the running play: seen through `hostvars`.
    live: Option<lazy::LiveHostVars>,
}

impl Default for Templar {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Templar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templar")
    }
}

fn shared_env() -> Arc<Environment<'static>> {
    static ENV: OnceLock<Arc<Environment<'static>>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(build_env(UndefinedBehavior::Strict))).clone()
}

fn lenient_env() -> Arc<Environment<'static>> {
    static ENV: OnceLock<Arc<Environment<'static>>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(build_env(UndefinedBehavior::Chainable))).clone()
}

fn build_env(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    // minijinja's debug mode (on by default in debug builds only) names undefined values
    // itself and attaches the variables a failing template referenced to its errors. Off in
    // every build: tests see the messages users get ([`describe_undefined`] names them), and
    // no error carries variable values (secrets) that a `{:?}` could print.
    env.set_debug(false);
    // Ansible's templar: trim_blocks=True, lstrip_blocks=False, trailing newlines preserved.
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(false)
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_recursion_limit(200);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(|out, _state, value| {
        let mut s = String::new();
        serialize::python_str(value, &mut s);
        out.write_str(&s)
            .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
    });
    env.add_global("omit", Value::from(OMIT));
    env.add_function("__provision_path", safe_path);
    // What an unreadable `!vault` value stands for (see `yaml::decrypt_vaults`).
    env.add_function("__provision_fail", |message: String| -> Result<Value, Error> { Err(Error::new(ErrorKind::InvalidOperation, message)) });
    filters::register(&mut env);
    checks::register(&mut env);
    env
}

/// Attribute chain that yields undefined instead of failing when a link is undefined
/// (see [`rewrite_safe_paths`]).
fn safe_path(base: &Value, keys: Rest<Value>) -> Value {
    let mut cur = base.clone();
    for k in keys.iter() {
        if cur.is_undefined() || cur.is_none() {
            return Value::UNDEFINED;
        }
        cur = match k.as_str() {
            Some(s) if cur.kind() != ValueKind::Seq => match cur.get_attr(s) {
                Ok(v) => v,
                Err(_) => return Value::UNDEFINED,
            },
            _ => match cur.get_item(k) {
                Ok(v) => v,
                Err(_) => return Value::UNDEFINED,
            },
        };
        if cur.kind() == ValueKind::Invalid {
            return Value::UNDEFINED;
        }
    }
    cur
}

impl Templar {
    pub fn new() -> Self {
        Templar { env: shared_env(), base: None, globals: None, live: None }
    }

    /// A templar whose renders also see `globals` (play-wide names such as `hostvars` and
    /// `groups`) behind each call's own vars, without copying them into every task's vars.
    pub fn with_globals(&self, globals: Arc<Vars>) -> Self {
        Templar { env: self.env.clone(), base: self.base.clone(), globals: Some(globals), live: self.live.clone() }
    }

    /// A templar whose `hostvars[h]` also see what host `h` registered or set in the running
    /// play (`live`, by host), over its inventory variables and facts.
    pub fn with_live(&self, live: lazy::LiveHostVars) -> Self {
        Templar { live: Some(live), ..self.clone() }
    }

    /// A templar whose renders see `base` (one host's variables common to its tasks) behind
    /// each call's own vars, which win over it.
    pub fn with_base(&self, base: Arc<Vars>) -> Self {
        Templar { env: self.env.clone(), base: Some(base), globals: self.globals.clone(), live: self.live.clone() }
    }

    /// The raw value of variable `name` as renders with `vars` see it: `vars`, then the
    /// base, then the globals.
    pub fn var<'a>(&'a self, vars: &'a Vars, name: &str) -> Option<&'a Json> {
        vars.get(name).or_else(|| self.base.as_deref()?.get(name)).or_else(|| self.globals.as_deref()?.get(name))
    }

    /// The context a render with `vars` sees: `vars`, then the base, then the globals,
    /// resolved lazily while `scope` lives.
    fn context(&self, scope: &Scope<'_>, vars: &Vars) -> Value {
        let ctx = Value::from_dyn_object(VarsObject::new(scope, vars, self.env.clone(), self.base.clone(), self.globals.clone(), self.live.clone()));
        scope.set_root(&ctx);
        ctx
    }

    /// A `with_<plugin>:` loop's items: the lookup `plugin` run with `terms` (the loop's
    /// value as rendered, a lone value taken as a one-item list) and the task's variables.
    /// `subdir` is the folder `first_found` also searches (`templates`, `vars`, `files`).
    pub fn query_loop(&self, plugin: &str, terms: &Json, subdir: &str, vars: &Vars) -> Result<Json, TemplateError> {
        let terms = match terms {
            Json::Array(_) => terms.clone(),
            other => Json::Array(vec![other.clone()]),
        };
        let scope = Scope::enter(vars);
        let ctx = self.context(&scope, vars);
        let hidden = Value::from(indexmap::IndexMap::from([(Value::from(lookups::TERMS_KW), Value::from(minijinja::value::Serde(&terms))), (Value::from(lookups::WITH_KW), Value::from(subdir))]));
        let ctx = minijinja::value::merge_maps([hidden, ctx]);
        let expr = format!("query({}, {k}={k}, {w}={w})", json_dumps(&Json::String(plugin.to_string())), k = lookups::TERMS_KW, w = lookups::WITH_KW);
        eval_expression(&self.env, &expr, &ctx).and_then(|v| to_json(&v)).map_err(|e| TemplateError { message: describe_error(&e, None), line: None, undefined: e.kind() == ErrorKind::UndefinedError })
    }

    /// Is `name` a lookup plugin provision has (for `with_<name>:`)?
    pub fn is_lookup_plugin(name: &str) -> bool {
        lookups::is_plugin(name)
    }

    /// The lookup plugins provision has.
    pub fn lookup_plugins() -> &'static [&'static str] {
        lookups::PLUGINS
    }

    /// The same templar, but undefined variables (and attributes of them) render as nothing
    /// instead of failing. Only for guessing ahead: the executor uses it to learn which probes
    /// a later task will need before the variables it depends on (registered by an earlier
    /// task) exist. Never used for what is actually applied.
    pub fn lenient(&self) -> Self {
        Templar { env: lenient_env(), base: self.base.clone(), globals: self.globals.clone(), live: self.live.clone() }
    }

    /// Does this string contain template syntax (`{{`, `{%`, `{#`)?
    pub fn is_template(s: &str) -> bool {
        s.contains("{{") || s.contains("{%") || s.contains("{#")
    }

    /// `v` as a variable's value that is data, not template text (what a task registered or
    /// set, facts: Ansible's "unsafe" values): each string with template syntax becomes an
    /// expression giving that very string, so rendering it later yields it unchanged.
    pub fn literal(v: Json) -> Json {
        match v {
            Json::String(s) if Self::is_template(&s) => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                Json::String(format!("{{{{ '{encoded}' | b64decode }}}}"))
            }
            Json::Array(items) => Json::Array(items.into_iter().map(Self::literal).collect()),
            Json::Object(m) => Json::Object(m.into_iter().map(|(k, v)| (k, Self::literal(v))).collect()),
            other => other,
        }
    }

    /// Render template text (a `templates/` file) named `name` (for error messages) with
    /// Ansible's default options and no includes: [`Templar::render_template_file`].
    pub fn render_template(
        &self,
        name: &str,
        src: &str,
        vars: &Vars,
    ) -> Result<String, TemplateError> {
        self.render_template_file(name, src, vars, &TemplateOptions::default(), Vec::new())
    }

    /// Render a template file's text `src` named `name` (for error messages) as Ansible's
    /// `template` module does: with `opts` and its `#jinja2:` header (dropped), includes
    /// and imports looked up in `search`, trailing newlines kept (see [`files`]).
    pub fn render_template_file(
        &self,
        name: &str,
        src: &str,
        vars: &Vars,
        opts: &TemplateOptions,
        search: Vec<std::path::PathBuf>,
    ) -> Result<String, TemplateError> {
        let scope = Scope::enter(vars);
        let ctx = self.context(&scope, vars);
        let file = match files::FileTemplate::new(&self.env, src, opts, search) {
            Ok(f) => f,
            Err(e) => {
                let message = format!("{} (in template {name}, line 1)", describe_error(&e, None));
                return Err(TemplateError { message, line: Some(1), undefined: false });
            }
        };
        let env: &Environment<'_> = &file.env;
        let result = env.template_from_named_str(name, &file.source).and_then(|t| t.render(&ctx)).map(|out| file.finish(src, out));
        result.map_err(|e| {
            let line = e.line();
            let mut message = describe_undefined(&e, &file.env, &file.source, &ctx, Source::Template);
            match (e.name().filter(|n| *n != name), line) {
                (Some(inner), Some(l)) => message.push_str(&format!(" (in template {inner}, line {l}, included from {name})")),
                (_, Some(l)) => message.push_str(&format!(" (in template {name}, line {l})")),
                (_, None) => message.push_str(&format!(" (in template {name})")),
            }
            TemplateError { message, line, undefined: e.kind() == ErrorKind::UndefinedError }
        })
    }

    /// Render a string; always a string result.
    pub fn render_str(&self, src: &str, vars: &Vars) -> Result<String, TemplateError> {
        if !Self::is_template(src) {
            return Ok(src.to_string());
        }
        let scope = Scope::enter(vars);
        let ctx = self.context(&scope, vars);
        render_string(&self.env, src, &ctx).map_err(|e| string_error(&e, src, &self.env, &ctx))
    }

    /// Render every string in a value recursively. A string that is exactly one `{{ expr }}`
    /// yields the expression's native value (list, dict, number, bool), like Ansible.
    pub fn render_value(&self, v: &Json, vars: &Vars) -> Result<Json, TemplateError> {
        if !lazy::contains_template(v) {
            return Ok(v.clone());
        }
        let scope = Scope::enter(vars);
        let ctx = self.context(&scope, vars);
        render_json(&self.env, v, &ctx)
    }

    /// `when:` / `changed_when:` / `failed_when:` / `assert that:` semantics: a bare expression
    /// (or a bool, or a `{{ }}`-wrapped expression) evaluated for truthiness.
    pub fn eval_condition(&self, expr: &str, vars: &Vars) -> Result<bool, TemplateError> {
        let t = expr.trim();
        if let Some(b) = parse_bool_word(t) {
            return Ok(b);
        }
        // Conditions keep Jinja's escapes in string literals (as Ansible: `escape_backslashes`
        // is off for conditionals).
        let v = self.eval_value(expr, vars, false, |v| Ok(condition_truth(v)))?;
        Ok(v)
    }

    /// Evaluate a bare expression to its value.
    pub fn eval_expr(&self, expr: &str, vars: &Vars) -> Result<Json, TemplateError> {
        self.eval_value(expr, vars, true, |v| to_json(&v))
    }

    fn eval_value<T>(
        &self,
        expr: &str,
        vars: &Vars,
        yaml: bool,
        finish: impl FnOnce(Value) -> Result<T, Error>,
    ) -> Result<T, TemplateError> {
        let t = expr.trim();
        let scope = Scope::enter(vars);
        let ctx = self.context(&scope, vars);
        let bare = single_expression(t).is_none() && !Self::is_template(t);
        let result = if let Some(inner) = single_expression(t) {
            eval_expression(&self.env, &yaml_escapes(inner, yaml), &ctx)
        } else if Self::is_template(t) {
            // a templated string: the rendered text is the value
            render_text(&self.env, t, &ctx, yaml).map(Value::from)
        } else {
            eval_expression(&self.env, t, &ctx)
        };
        result.and_then(finish).map_err(|e| {
            let source = if bare { Source::Expression } else { Source::Text };
            let undefined = e.kind() == ErrorKind::UndefinedError;
            TemplateError { undefined, ..expr_error(describe_undefined(&e, &self.env, t, &ctx, source), expr) }
        })
    }
}

/// `true`/`false`/`yes`/`no` (any case) as Ansible's boolean strings.
fn parse_bool_word(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn condition_truth(v: Value) -> bool {
    if let Some(s) = v.as_str() {
        if let Some(b) = parse_bool_word(s.trim()) {
            return b;
        }
        return !s.is_empty();
    }
    v.is_true()
}

/// If `s` is exactly one `{{ expr }}` (surrounding whitespace allowed), the expression.
pub(crate) fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    if inner.trim().is_empty() {
        return None;
    }
    Some(inner.trim())
}

/// Evaluate an expression with the given context; undefined results are errors.
fn eval_expression(env: &Environment<'static>, expr: &str, ctx: &Value) -> Result<Value, Error> {
    let short = strip_fqcn(expr);
    let formatted = percent_format_expr(&short);
    let rewritten = rewrite_safe_paths_expr(&formatted);
    let env: &Environment<'_> = env;
    let compiled = env.compile_expression(&rewritten)?;
    let v = compiled.eval(ctx)?;
    if v.is_undefined() && env.undefined_behavior() == UndefinedBehavior::Chainable {
        return Ok(Value::from(()));
    }
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("`{}` is undefined", expr.trim()),
        ));
    }
    validate(v)
}

/// Turn an invalid value (one carrying an error) into that error.
pub(crate) fn validate(v: Value) -> Result<Value, Error> {
    if v.kind() != ValueKind::Invalid {
        return Ok(v);
    }
    match Value::from(vec![v]).try_iter()?.checked().next() {
        Some(r) => r,
        None => Ok(Value::UNDEFINED),
    }
}

/// Render a string template to a string value (or the native value if it is a single
/// expression). Strings without template syntax are returned unchanged.
pub(crate) fn render_string_value(
    env: &Environment<'static>,
    s: &str,
    ctx: &Value,
) -> Result<Value, Error> {
    if !Templar::is_template(s) {
        return Ok(Value::from(s));
    }
    if let Some(inner) = single_expression(s) {
        let v = eval_expression(env, &yaml_escapes(inner, true), ctx)?;
        // Whitespace around a lone expression is content when the result is text
        // (`content: "{{ x }}\n"`); lists, dicts, numbers and booleans stay native.
        if s == s.trim() || !matches!(v.kind(), minijinja::value::ValueKind::String | minijinja::value::ValueKind::None) {
            return Ok(v);
        }
    }
    render_string(env, s, ctx).map(Value::from)
}

/// Render a string from YAML (task arguments, variables): string literals inside `{{ }}`
/// keep their backslashes ([`yaml_text_escapes`]).
fn render_string(env: &Environment<'static>, s: &str, ctx: &Value) -> Result<String, Error> {
    render_text(env, s, ctx, true)
}

fn render_text(env: &Environment<'static>, s: &str, ctx: &Value, yaml: bool) -> Result<String, Error> {
    let s = if yaml { yaml_text_escapes(s) } else { Cow::Borrowed(s) };
    let src = prepared(&s);
    let env: &Environment<'_> = env;
    env.template_from_named_str("<string>", &src)?.render(ctx)
}

/// Ansible's `escape_backslashes`: in a string written in YAML, a backslash inside a string
/// literal of a `{{ }}` expression is the character itself, not the start of a Jinja escape,
/// since YAML already had its say (`regex_replace('(\\w+)', '\\1')` in a double-quoted
/// YAML string is the regex `(\w+)` and the backreference `\1`). Literals in `{% %}`
/// statements, template files and conditions keep Jinja's escapes, as in Ansible.
fn yaml_text_escapes(src: &str) -> Cow<'_, str> {
    if !src.contains('\\') {
        return Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + 8);
    let mut rest = src;
    while let Some(start) = rest.find("{{").into_iter().chain(rest.find("{%")).chain(rest.find("{#")).min() {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(body) = tail.strip_prefix("{{") {
            let (expr, after) = escape_literals(body);
            out.push_str("{{");
            out.push_str(&expr);
            rest = after;
        } else {
            let close = if tail.starts_with("{%") { "%}" } else { "#}" };
            let body = &tail[2..];
            let is_raw = close == "%}" && body.trim_start_matches(['-', '+']).trim_start().starts_with("raw");
            let end = if is_raw {
                // `{% raw %}...{% endraw %}`: copied as it is
                body.find("endraw").and_then(|e| body[e..].find(close).map(|c| e + c + 2))
            } else {
                body.find(close).map(|c| c + 2)
            };
            match end {
                Some(e) => {
                    out.push_str(&tail[..2 + e]);
                    rest = &body[e..];
                }
                None => {
                    out.push_str(tail);
                    rest = "";
                }
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The expression at the start of `s` (up to its `}}` outside string literals) with every
/// backslash inside its string literals doubled, and what follows it (from `}}`, or empty
/// when there is none).
fn escape_literals(s: &str) -> (String, &str) {
    let mut out = String::with_capacity(s.len() + 8);
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(q) => {
                if c == '\\' {
                    out.push_str("\\\\");
                    match chars.next() {
                        Some((_, '\\')) => out.push_str("\\\\"),
                        // `\'` in the literal: a backslash, then the quote (escaped, or
                        // minijinja would end the string there)
                        Some((_, n)) if n == q => {
                            out.push('\\');
                            out.push(n);
                        }
                        Some((_, n)) => out.push(n),
                        None => {}
                    }
                    continue;
                }
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            None if s[i..].starts_with("}}") => return (out, &s[i..]),
            None => {}
        }
        out.push(c);
    }
    (out, "")
}

/// [`escape_literals`] for an expression from YAML (`yaml`), else as it is.
fn yaml_escapes(expr: &str, yaml: bool) -> Cow<'_, str> {
    if yaml && expr.contains('\\') {
        // a lone expression holds no `}}` (see `single_expression`): all of it
        Cow::Owned(escape_literals(expr).0)
    } else {
        Cow::Borrowed(expr)
    }
}

/// Render a raw variable value (lazy vars): strings, recursively inside lists and maps.
pub(crate) fn render_raw(
    env: &Environment<'static>,
    raw: &Json,
    ctx: &Value,
) -> Result<Value, Error> {
    match raw {
        Json::String(s) => render_string_value(env, s, ctx),
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(render_raw(env, item, ctx)?);
            }
            Ok(Value::from(out))
        }
        Json::Object(m) => {
            let mut out = indexmap::IndexMap::with_capacity(m.len());
            for (k, v) in m {
                let key = if Templar::is_template(k) {
                    Value::from(render_string(env, k, ctx)?)
                } else {
                    Value::from(k.as_str())
                };
                out.insert(key, render_raw(env, v, ctx)?);
            }
            Ok(Value::from(out))
        }
        other => Ok(Value::from(minijinja::value::Serde(other))),
    }
}

fn render_json(env: &Environment<'static>, v: &Json, ctx: &Value) -> Result<Json, TemplateError> {
    match v {
        Json::String(s) => {
            if !Templar::is_template(s) {
                return Ok(v.clone());
            }
            if let Some(inner) = single_expression(s) {
                let v = eval_expression(env, &yaml_escapes(inner, true), ctx).map_err(|e| string_error(&e, s, env, ctx))?;
                // Whitespace around a lone expression is content when the result is text
                // (`content: "{{ x }}\n"`); lists, dicts, numbers and booleans stay native.
                if s == s.trim() || !matches!(v.kind(), minijinja::value::ValueKind::String | minijinja::value::ValueKind::None) {
                    return to_json(&v).map_err(|e| string_error(&e, s, env, ctx));
                }
            }
            render_string(env, s, ctx)
                .map(Json::String)
                .map_err(|e| string_error(&e, s, env, ctx))
        }
        Json::Array(items) => items
            .iter()
            .map(|i| render_json(env, i, ctx))
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Array),
        Json::Object(m) => {
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, val) in m {
                let key = if Templar::is_template(k) {
                    render_string(env, k, ctx).map_err(|e| string_error(&e, k, env, ctx))?
                } else {
                    k.clone()
                };
                out.insert(key, render_json(env, val, ctx)?);
            }
            Ok(Json::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Convert a minijinja value to JSON (undefined parts become null).
pub(crate) fn to_json(v: &Value) -> Result<Json, Error> {
    serde_json::to_value(v).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot convert result: {e}"),
        )
    })
}

fn snippet(src: &str) -> String {
    let one_line: String = src.trim().replace('\n', "\\n");
    if one_line.chars().count() > 100 {
        let cut: String = one_line.chars().take(97).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

fn string_error(e: &Error, src: &str, env: &Environment<'static>, ctx: &Value) -> TemplateError {
    let line = e.line();
    let mut message = describe_undefined(e, env, src, ctx, Source::Text);
    message.push_str(&format!(" in \"{}\"", snippet(src)));
    TemplateError { message, line, undefined: e.kind() == ErrorKind::UndefinedError }
}

fn expr_error(mut message: String, expr: &str) -> TemplateError {
    message.push_str(&format!(" (in expression \"{}\")", snippet(expr)));
    TemplateError {
        message,
        line: None,
        undefined: false,
    }
}

/// What kind of source an error came from, to render it again.
#[derive(Clone, Copy)]
pub(crate) enum Source {
    /// A `templates/` file.
    Template,
    /// A string that may be template text or one `{{ expr }}`.
    Text,
    /// A bare expression (`when:`).
    Expression,
}

/// [`describe_error`], naming what is undefined when minijinja only says "undefined value"
/// (outside its debug mode it does for `{{ nosuch }}` or `{{ user.nmae }}` in text): the
/// failed render runs again with debug mode on, which tracks where undefined values come
/// from (only on this error path: the debug mode costs every render, and attaches the
/// values of the variables a template read to its errors).
pub(crate) fn describe_undefined(e: &Error, env: &Environment<'static>, src: &str, ctx: &Value, source: Source) -> String {
    const BARE: &str = "undefined value";
    let message = describe_error(e, None);
    if e.kind() != ErrorKind::UndefinedError || !message.starts_with(BARE) {
        return message;
    }
    let mut debug = env.clone();
    debug.set_debug(true);
    let again = match (source, single_expression(src)) {
        (Source::Expression, _) => eval_expression(&debug, src.trim(), ctx).map(drop),
        (Source::Text, Some(inner)) => eval_expression(&debug, inner, ctx).map(drop),
        (Source::Text, None) => render_string(&debug, src, ctx).map(drop),
        // a template file's source as compiled (`files::FileTemplate`)
        (Source::Template, _) => {
            let d: &Environment<'_> = &debug;
            d.template_from_str(src).and_then(|t| t.render(ctx)).map(drop)
        }
    };
    if let Err(e2) = again {
        let named = describe_error(&e2, None);
        if e2.kind() == ErrorKind::UndefinedError && !named.starts_with(BARE) {
            return named;
        }
    }
    message
}

/// One-line human description of a minijinja error, without location.
pub(crate) fn describe_error(e: &Error, _src: Option<&str>) -> String {
    let detail = e.detail().unwrap_or("").replace('\n', " ");
    let msg = match e.kind() {
        ErrorKind::UndefinedError => {
            // minijinja: "`name` is undefined" (possibly prefixed by other detail)
            if let Some(name) = undefined_name(&detail) {
                if let Some(reason) = lazy::undefined_reason(name) {
                    reason
                } else if is_identifier(name) {
                    format!("undefined variable '{name}'")
                } else {
                    format!("'{name}' is undefined")
                }
            } else if detail.is_empty() {
                "undefined value".to_string()
            } else {
                detail.replace('`', "'")
            }
        }
        ErrorKind::UnknownFilter => match detail
            .strip_prefix("filter ")
            .and_then(|d| d.strip_suffix(" is unknown"))
        {
            Some(name) => format!("unknown filter '{name}'"),
            None => format!("unknown filter: {detail}"),
        },
        ErrorKind::UnknownTest => match detail
            .strip_prefix("test ")
            .and_then(|d| d.strip_suffix(" is unknown"))
        {
            Some(name) => format!("unknown test '{name}'"),
            None => format!("unknown test: {detail}"),
        },
        ErrorKind::UnknownFunction => match detail.strip_suffix(" is unknown") {
            Some(name) => format!("unknown function '{name}'"),
            None => format!("unknown function: {detail}"),
        },
        ErrorKind::InvalidOperation if !detail.is_empty() => detail.clone(),
        kind if detail.is_empty() => kind.to_string(),
        kind => format!("{kind}: {detail}"),
    };
    let mut msg = msg;
    if let Some(src) = std::error::Error::source(e) {
        msg.push_str(&format!(": {src}"));
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn undefined_name(detail: &str) -> Option<&str> {
    let start = detail.find('`')?;
    let rest = &detail[start + 1..];
    let end = rest.find("` is undefined")?;
    Some(&rest[..end])
}

/// A name as shells, Python and Jinja accept it: a letter or `_`, then letters, digits, `_`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn safe_path_regex() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r#"(^|[^\w.'"\]\)])([A-Za-z_]\w*)((?:\s*\.\s*[A-Za-z_]\w*|\[\s*(?:'[^'\]]*'|"[^"\]]*"|-?\d+)\s*\])+)(\s*(?:\|\s*(?:default|d)\b|is\s+(?:not\s+)?(?:defined|undefined|none)\b))"#,
        )
        .expect("valid regex")
    })
}

fn segment_regex() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r#"\s*\.\s*([A-Za-z_]\w*)|\[\s*('[^']*'|"[^"]*"|-?\d+)\s*\]"#)
            .expect("valid regex")
    })
}

/// In an expression, rewrite `a.b['c'] | default(...)` / `a.b is defined` so that an
/// undefined link yields undefined instead of an error (Ansible's undefined is chainable).
fn rewrite_safe_paths_expr(expr: &str) -> Cow<'_, str> {
    if !(expr.contains("default")
        || expr.contains('d') && expr.contains('|')
        || expr.contains("defined")
        || expr.contains("none"))
    {
        return Cow::Borrowed(expr);
    }
    let re = safe_path_regex();
    if !re.is_match(expr) {
        return Cow::Borrowed(expr);
    }
    let seg = segment_regex();
    let out = re.replace_all(expr, |caps: &regex::Captures| {
        let mut args = vec![caps[2].to_string()];
        for s in seg.captures_iter(&caps[3]) {
            if let Some(name) = s.get(1) {
                args.push(format!("'{}'", name.as_str()));
            } else if let Some(key) = s.get(2) {
                args.push(key.as_str().to_string());
            }
        }
        format!(
            "{}__provision_path({}){}",
            &caps[1],
            args.join(", "),
            &caps[4]
        )
    });
    Cow::Owned(out.into_owned())
}

/// Find a file on the controller the way Ansible does: `role/<kind>/name`, `role/name`,
/// `playbook_dir/<kind>/name`, `playbook_dir/name`; an absolute name as is. Modules' `src`
/// (`files/`, `templates/`) and the `file`/`fileglob` lookups search alike.
pub(crate) fn find_controller_file(role_path: Option<&std::path::Path>, playbook_dir: Option<&std::path::Path>, kind: &str, name: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    [role_path, playbook_dir].into_iter().flatten().flat_map(|d| [d.join(kind).join(name), d.join(name)]).find(|c| c.exists())
}

/// A template's or string's source as it is rendered: collection names of filters and
/// tests shortened ([`strip_fqcn`]), Python's `%` on string literals turned into the
/// `format` filter ([`rewrite_percent_format`]), then `default`'s paths made safe
/// ([`rewrite_safe_paths`]).
fn prepared(src: &str) -> Cow<'_, str> {
    let mut out = strip_fqcn(src);
    for step in [rewrite_percent_format, rewrite_safe_paths] {
        if let Cow::Owned(s) = step(&out) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// Filters and tests by their collection names (`x | ansible.builtin.to_json`,
/// `v is ansible.builtin.version(...)`) as the short names they are here. (Textual: a string
/// literal holding "| ansible.builtin." would be shortened too.)
fn strip_fqcn(src: &str) -> Cow<'_, str> {
    const COLLECTIONS: &[&str] = &["ansible.builtin.", "ansible.utils.", "community.general."];
    if !COLLECTIONS.iter().any(|c| src.contains(c)) {
        return Cow::Borrowed(src);
    }
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"(\|\s*|\bis\s+(?:not\s+)?)(?:ansible\.builtin|ansible\.utils|community\.general)\.").expect("valid regex")
    });
    re.replace_all(src, "$1")
}

/// Apply [`rewrite_safe_paths_expr`] inside `{{ }}` and `{% %}` blocks of a template.
fn rewrite_safe_paths(src: &str) -> Cow<'_, str> {
    if !(src.contains("default")
        || src.contains("|")
        || src.contains("defined")
        || src.contains("none"))
    {
        return Cow::Borrowed(src);
    }
    if !safe_path_regex().is_match(src) {
        return Cow::Borrowed(src);
    }
    rewrite_blocks(src, rewrite_safe_paths_expr)
}

/// `expr` applied to the inside of every `{{ }}` and `{% %}` block of a template.
fn rewrite_blocks<'a>(src: &'a str, expr: impl Fn(&str) -> Cow<'_, str>) -> Cow<'a, str> {
    let mut out = String::with_capacity(src.len() + 32);
    let mut rest = src;
    loop {
        let start = match (rest.find("{{"), rest.find("{%")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let close = if rest[start..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        out.push_str(&rest[..start + 2]);
        let body_start = start + 2;
        match rest[body_start..].find(close) {
            Some(end) => {
                let body = &rest[body_start..body_start + end];
                out.push_str(&expr(body));
                out.push_str(close);
                rest = &rest[body_start + end + 2..];
            }
            None => {
                rest = &rest[body_start..];
                break;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Python's `%` on a string literal, which Ansible's Jinja has and MiniJinja hasn't:
/// `'%s-%02d' % (name, n)` becomes `('%s-%02d' | format(name, n))`, `'%s' % x | upper`
/// becomes `('%s' | format(x | upper))` (filters bind tighter than `%`). Only a literal on
/// the left: `fmt % x` with a variable stays the number operator.
fn rewrite_percent_format(src: &str) -> Cow<'_, str> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let quick = RE.get_or_init(|| regex::Regex::new(r#"['"]\s*%[^}]"#).expect("valid regex"));
    if !quick.is_match(src) {
        return Cow::Borrowed(src);
    }
    rewrite_blocks(src, percent_format_expr)
}

fn percent_format_expr(expr: &str) -> Cow<'_, str> {
    let b = expr.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        if b[i] != b'\'' && b[i] != b'"' {
            i += 1;
            continue;
        }
        let Some(end) = string_end(b, i) else { return Cow::Borrowed(expr) };
        let mut j = skip_ws(b, end);
        if j < b.len() && b[j] == b'%' {
            j = skip_ws(b, j + 1);
            let (args, after) = if b.get(j) == Some(&b'(') {
                let Some(close) = closing(b, j) else { return Cow::Borrowed(expr) };
                (&expr[j + 1..close], close + 1)
            } else {
                let Some(e) = operand_end(b, j) else { return Cow::Borrowed(expr) };
                (&expr[j..e], e)
            };
            if args.trim().is_empty() {
                return Cow::Borrowed(expr);
            }
            out.push_str(&expr[copied..i]);
            out.push_str(&format!("({} | format({}))", &expr[i..end], percent_format_expr(args)));
            copied = after;
            i = after;
        } else {
            i = end;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(expr);
    }
    out.push_str(&expr[copied..]);
    Cow::Owned(out)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The index after the string literal starting at `i` (its quote).
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let q = b[i];
    let mut k = i + 1;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 2,
            c if c == q => return Some(k + 1),
            _ => k += 1,
        }
    }
    None
}

/// The index of the bracket closing the one at `i`, skipping string literals.
fn closing(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0;
    let mut k = i;
    while k < b.len() {
        match b[k] {
            b'\'' | b'"' => {
                k = string_end(b, k)?;
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
        k += 1;
    }
    None
}

/// Where the right operand of `%` starting at `i` ends: a literal, name or bracketed value,
/// then attributes, subscripts, calls and filters (`| f` or `| f(...)`).
fn operand_end(b: &[u8], i: usize) -> Option<usize> {
    let word = |k: &mut usize| {
        while *k < b.len() && (b[*k].is_ascii_alphanumeric() || b[*k] == b'_') {
            *k += 1;
        }
    };
    let mut k = i;
    match *b.get(k)? {
        b'\'' | b'"' => k = string_end(b, k)?,
        b'[' | b'{' => k = closing(b, k)? + 1,
        b'-' | b'0'..=b'9' => {
            k += 1;
            while k < b.len() && (b[k].is_ascii_digit() || b[k] == b'.') {
                k += 1;
            }
        }
        c if c.is_ascii_alphabetic() || c == b'_' => word(&mut k),
        _ => return None,
    }
    loop {
        match b.get(k) {
            Some(b'.') => {
                k += 1;
                word(&mut k);
            }
            Some(b'[' | b'(') => k = closing(b, k)? + 1,
            _ => {
                let j = skip_ws(b, k);
                if b.get(j) == Some(&b'|') && b.get(j + 1) != Some(&b'|') {
                    let mut f = skip_ws(b, j + 1);
                    let start = f;
                    word(&mut f);
                    while b.get(f) == Some(&b'.') {
                        f += 1;
                        word(&mut f);
                    }
                    if f == start {
                        return None;
                    }
                    k = f;
                    if b.get(k) == Some(&b'(') {
                        k = closing(b, k)? + 1;
                    }
                } else {
                    return Some(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod globals_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globals_are_seen_behind_task_vars() {
        let mut g = Vars::new();
        g.insert("groups".into(), json!({"web": ["a", "b"]}));
        g.insert("hostvars".into(), json!({"a": {"ip": "{{ base }}.1", "base": "10.0.0"}}));
        g.insert("shadowed".into(), json!("global"));
        let t = Templar::new().with_globals(Arc::new(g));
        let mut vars = Vars::new();
        vars.insert("shadowed".into(), json!("task"));
        assert_eq!(t.render_str("{{ groups.web | join(',') }} {{ hostvars['a'].ip }} {{ shadowed }}", &vars).unwrap(), "a,b 10.0.0.1 task");
        assert!(t.eval_condition("'a' in groups['web']", &vars).unwrap());
    }

    #[test]
    fn a_hosts_base_vars_are_seen_behind_task_vars_and_before_globals() {
        let mut g = Vars::new();
        g.insert("hostvars".into(), json!({"other": {"ip": "10.0.0.2"}}));
        g.insert("layer".into(), json!("global"));
        g.insert("only_global".into(), json!("g"));
        let mut base = Vars::new();
        base.insert("layer".into(), json!("base"));
        base.insert("shadowed".into(), json!("base"));
        base.insert("app_dir".into(), json!("{{ home }}/webapp"));
        base.insert("home".into(), json!("/home/base"));
        let t = Templar::new().with_globals(Arc::new(g)).with_base(Arc::new(base));
        let mut vars = Vars::new();
        vars.insert("shadowed".into(), json!("task"));
        assert_eq!(t.render_str("{{ layer }} {{ shadowed }} {{ only_global }} {{ app_dir }}", &vars).unwrap(), "base task g /home/base/webapp");
        // A base value's template sees the task's vars, as if they were one map.
        vars.insert("home".into(), json!("/srv"));
        assert_eq!(t.render_str("{{ app_dir }}", &vars).unwrap(), "/srv/webapp");
        assert_eq!(t.var(&vars, "home"), Some(&json!("/srv")));
        assert_eq!(t.var(&vars, "layer"), Some(&json!("base")));
        assert_eq!(t.var(&vars, "only_global"), Some(&json!("g")));
        assert_eq!(t.var(&vars, "nothing"), None);
        // `vars` lists both layers once; another host's vars don't see this host's base.
        assert_eq!(t.eval_expr("vars.keys() | sort | join(',')", &vars).unwrap(), json!("app_dir,home,layer,shadowed"));
        assert_eq!(t.render_str("{{ hostvars['other'].ip }} {{ hostvars['other'].layer }}", &vars).unwrap(), "10.0.0.2 global");
        assert_eq!(t.lenient().render_str("{{ layer }}", &vars).unwrap(), "base");
    }
}

#[cfg(test)]
mod whitespace_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_around_a_lone_expression_is_kept() {
        let t = Templar::new();
        let mut vars = Vars::new();
        vars.insert("l".into(), json!(["one", "two"]));
        assert_eq!(t.render_value(&json!("{{ l | join('\n') }}\n"), &vars).unwrap(), json!("one\ntwo\n"));
        assert_eq!(t.render_value(&json!("{{ l }}"), &vars).unwrap(), json!(["one", "two"]));
        assert_eq!(t.render_value(&json!("{{ l }}\n"), &vars).unwrap(), json!(["one", "two"]));
    }
}
