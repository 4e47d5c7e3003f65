use super::*;
use serde_json::json;

fn vars(v: Json) -> Vars {
    match v {
        Json::Object(m) => m,
        _ => panic!("vars must be a map"),
    }
}

fn r(src: &str, v: &Vars) -> String {
    Templar::new()
        .render_str(src, v)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn smoke() {
    let v =
        vars(json!({"user": "bob", "home": "/home/{{ user }}", "app_dir": "{{ home }}/webapp"}));
    assert_eq!(r("{{ app_dir }}", &v), "/home/bob/webapp");
}
