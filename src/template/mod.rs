//! Jinja templating (minijinja) with strict undefined variables and Ansible's filters.
//! OWNER: template helper. This is the agreed API; bodies are being written.

use serde_json::Value;

/// Variables of a host/task. Values are RAW: strings may themselves contain templates
/// (`app_dir: "{{ home }}/webapp"`); the templar resolves them lazily when referenced.
pub type Vars = serde_json::Map<String, Value>;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Human message naming the undefined variable / bad filter, and the template name.
    pub message: String,
    /// Line within the template text, when known (1-based).
    pub line: Option<usize>,
}

/// Cheap to clone; shareable across threads.
#[derive(Clone)]
pub struct Templar {}

impl Default for Templar {
    fn default() -> Self {
        Self::new()
    }
}

impl Templar {
    pub fn new() -> Self {
        Templar {}
    }
    /// Does this string contain template syntax (`{{`, `{%`, `{#`)?
    pub fn is_template(s: &str) -> bool {
        s.contains("{{") || s.contains("{%") || s.contains("{#")
    }
    /// Render template text (a `templates/` file) named `name` (for error messages).
    /// Keeps the trailing newline.
    pub fn render_template(&self, _name: &str, _src: &str, _vars: &Vars) -> Result<String, TemplateError> {
        todo!()
    }
    /// Render a string; always a string result.
    pub fn render_str(&self, _src: &str, _vars: &Vars) -> Result<String, TemplateError> {
        todo!()
    }
    /// Render every string in a value recursively. A string that is exactly one `{{ expr }}`
    /// yields the expression's native value (list, dict, number, bool), like Ansible.
    pub fn render_value(&self, _v: &Value, _vars: &Vars) -> Result<Value, TemplateError> {
        todo!()
    }
    /// `when:` / `changed_when:` / `failed_when:` / `assert that:` semantics: a bare expression
    /// (or a bool, or a `{{ }}`-wrapped expression) evaluated for truthiness.
    pub fn eval_condition(&self, _expr: &str, _vars: &Vars) -> Result<bool, TemplateError> {
        todo!()
    }
    /// Evaluate a bare expression to its value.
    pub fn eval_expr(&self, _expr: &str, _vars: &Vars) -> Result<Value, TemplateError> {
        todo!()
    }
}
