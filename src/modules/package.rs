//! `package`: Ansible's generic package module. It hands its arguments to the host's package
//! manager module; on the Debian hosts provision serves that is `apt` (see [`super::apt`]),
//! with every `apt` option available. `use` may be `auto` or `apt`; another package manager
//! is refused. A `package` task installs in its own transaction (later `apt` tasks join
//! `apt` tasks' transactions only).

use super::{Module, ModuleError, ModuleTask, PrepareContext};
use serde_json::{Map, Value};

pub struct PackageModule;

impl Module for PackageModule {
    fn name(&self) -> &'static str {
        "package"
    }
    fn params(&self) -> &'static [&'static str] {
        static PARAMS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| super::apt::PARAMS.iter().copied().chain(["use"]).collect());
        &PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        super::apt::AptModule.prepare(&apt_args(args)?, ctx)
    }
}

/// The arguments for `apt`: all but `use`, which must name apt (or leave it to the host).
fn apt_args(args: &Map<String, Value>) -> Result<Map<String, Value>, ModuleError> {
    let mut args = args.clone();
    match args.remove("use") {
        None => {}
        Some(Value::String(u)) if matches!(u.as_str(), "auto" | "apt") => {}
        Some(other) => {
            let name = other.as_str().map(str::to_string).unwrap_or_else(|| other.to_string());
            return Err(ModuleError::Args(format!("package: use={name}: the hosts provision manages are Debian, where the package manager is apt (use auto or apt)")));
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hands_everything_but_use_to_apt() {
        let args = json!({"name": ["nginx", "git"], "state": "present", "use": "auto", "update_cache": true});
        assert_eq!(apt_args(args.as_object().unwrap()).unwrap(), *json!({"name": ["nginx", "git"], "state": "present", "update_cache": true}).as_object().unwrap());
        let err = apt_args(json!({"name": "nginx", "use": "yum"}).as_object().unwrap()).unwrap_err().to_string();
        assert!(err.contains("use=yum"), "{err}");
    }
}
