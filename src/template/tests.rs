use super::*;
use serde_json::json;

pub(super) fn vars(v: Json) -> Vars {
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

fn rerr(src: &str, v: &Vars) -> TemplateError {
    match Templar::new().render_str(src, v) {
        Ok(s) => panic!("{src}: expected an error, got {s:?}"),
        Err(e) => e,
    }
}

pub(super) fn ev(expr: &str, v: &Vars) -> Json {
    Templar::new()
        .eval_expr(expr, v)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn cond(expr: &str, v: &Vars) -> bool {
    Templar::new()
        .eval_condition(expr, v)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn empty() -> Vars {
    Vars::new()
}

#[test]
fn lazy_recursive_vars() {
    let v =
        vars(json!({"user": "bob", "home": "/home/{{ user }}", "app_dir": "{{ home }}/webapp"}));
    assert_eq!(r("{{ app_dir }}", &v), "/home/bob/webapp");
    let v = vars(json!({
        "user": "bob",
        "dirs": ["{{ home }}/a", {"path": "{{ home }}/b"}],
        "home": "/home/{{ user }}",
    }));
    assert_eq!(ev("dirs[1].path", &v), json!("/home/bob/b"));
    assert_eq!(ev("dirs[0]", &v), json!("/home/bob/a"));
}

#[test]
fn native_single_expression() {
    let v = vars(
        json!({"base_ports": [80, 443], "ports": "{{ base_ports + [8080] }}", "n": "{{ 2 + 3 }}"}),
    );
    assert_eq!(ev("ports", &v), json!([80, 443, 8080]));
    let t = Templar::new();
    assert_eq!(
        t.render_value(&json!("{{ ports }}"), &v).unwrap(),
        json!([80, 443, 8080])
    );
    assert_eq!(t.render_value(&json!(" {{ n }} "), &v).unwrap(), json!(5));
    assert_eq!(t.render_value(&json!("{{ n }}x"), &v).unwrap(), json!("5x"));
    assert_eq!(
        t.render_value(&json!({"{{ 'k' }}": ["{{ n }}", "plain"]}), &v)
            .unwrap(),
        json!({"k": [5, "plain"]})
    );
    // strings are not re-parsed into types
    let v2 = vars(json!({"s": "123"}));
    assert_eq!(
        t.render_value(&json!("{{ s }}"), &v2).unwrap(),
        json!("123")
    );
}

#[test]
fn var_referencing_undefined_errors_only_when_used() {
    let v = vars(json!({"bad": "{{ nope }}", "good": "ok"}));
    assert_eq!(r("{{ good }}", &v), "ok");
    let e = rerr("{{ bad }}", &v);
    assert!(e.message.contains("nope"), "{}", e.message);
    assert!(e.message.contains("bad"), "{}", e.message);
}

#[test]
fn recursion_detected() {
    let v = vars(json!({"a": "{{ a }}"}));
    let e = rerr("{{ a }}", &v);
    assert!(e.message.contains("recursive"), "{}", e.message);
    let v = vars(json!({"a": "x{{ b }}", "b": "y{{ a }}"}));
    let e = rerr("{{ a }}", &v);
    assert!(e.message.contains("recursive"), "{}", e.message);
}

#[test]
fn undefined_names_variable_and_line() {
    let t = Templar::new();
    let e = t
        .render_template(
            "gunicorn.conf.j2",
            "bind = 1\nuser = {{ app_user }}\n",
            &empty(),
        )
        .unwrap_err();
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("'app_user'"), "{}", e.message);
    assert!(e.message.contains("gunicorn.conf.j2"), "{}", e.message);
    let e = rerr("{{ user.nmae }}", &vars(json!({"user": {"name": "x"}})));
    assert!(e.message.contains("user.nmae"), "{}", e.message);
    let e = t.eval_condition("missing_flag", &empty()).unwrap_err();
    assert!(e.message.contains("missing_flag"), "{}", e.message);
    let e = rerr("{{ 1 | nosuchfilter }}", &empty());
    assert!(e.message.contains("nosuchfilter"), "{}", e.message);
    assert!(!e.message.contains('\n'));
}

#[test]
fn defined_and_default() {
    let v = vars(json!({"x": {"a": 1}, "empty": ""}));
    assert_eq!(r("{{ y | default('d') }}", &v), "d");
    assert_eq!(r("{{ y.attr | default('d') }}", &v), "d");
    assert_eq!(r("{{ y.attr['k'].z | d('d') }}", &v), "d");
    assert_eq!(r("{{ x.b | default('d') }}", &v), "d");
    assert_eq!(r("{{ x.a | default('d') }}", &v), "1");
    assert_eq!(r("{{ empty | default('d') }}", &v), "");
    assert_eq!(r("{{ empty | default('d', true) }}", &v), "d");
    assert!(!cond("y is defined", &v));
    assert!(cond("y is undefined", &v));
    assert!(cond("y.z is not defined", &v));
    assert!(cond("x.a is defined", &v));
    assert!(cond("x is defined and x.a == 1", &v));
    assert_eq!(r("{% if y.z is defined %}a{% else %}b{% endif %}", &v), "b");
    assert_eq!(r("{{ omit }}", &v), OMIT);
    assert_eq!(ev("y | default(omit)", &v), json!(OMIT));
}

#[test]
fn conditions() {
    let v = vars(json!({
        "flag": "False", "flag2": "yes", "ansible_distribution": "Debian",
        "result": {"rc": 1, "failed": false, "changed": true},
        "a": false, "b": false,
    }));
    assert!(!cond("{{ flag }}", &v));
    assert!(cond("{{ flag2 }}", &v));
    assert!(!cond("flag", &v));
    assert!(cond("true", &v));
    assert!(!cond("False", &v));
    assert!(cond("ansible_distribution == 'Debian'", &v));
    assert!(cond("result.rc != 0", &v));
    assert!(cond("not (a or b)", &v));
    assert!(cond("result is succeeded", &v));
    assert!(cond("result is changed", &v));
    assert!(!cond("result is failed", &v));
    assert!(!cond("result is skipped", &v));
    let v = vars(json!({"running": {"started": true, "finished": false}, "done": {"started": 1, "finished": 1}, "plain": {"rc": 0}}));
    assert!(cond("running is started and running is not finished", &v));
    assert!(cond("done is finished and done is started", &v));
    assert!(cond("plain is finished and plain is started", &v), "a result without the field");
    let e = Templar::new()
        .eval_condition("result.rc = 0", &v)
        .unwrap_err();
    assert!(e.message.contains("result.rc = 0"), "{}", e.message);
}

#[test]
fn trailing_newlines_and_blocks() {
    let t = Templar::new();
    let v = vars(json!({"items": [1, 2]}));
    let out = t
        .render_template(
            "t.j2",
            "{% for i in items %}\nx={{ i }}\n{% endfor %}\nend\n",
            &v,
        )
        .unwrap();
    assert_eq!(out, "x=1\nx=2\nend\n");
    assert_eq!(t.render_template("t.j2", "a\n\n", &v).unwrap(), "a\n\n");
    // lstrip_blocks is off
    assert_eq!(
        t.render_template("t.j2", "  {% if true %}\nx\n{% endif %}\n", &v)
            .unwrap(),
        "  x\n"
    );
    assert_eq!(r("{{ 1 }}\n", &v), "1\n");
}

#[test]
fn python_like_output() {
    let v = vars(json!({"t": true, "n": null, "l": ["a", 1], "m": {"k": "v"}}));
    assert_eq!(r("{{ t }}", &v), "True");
    assert_eq!(r("[{{ n }}]", &v), "[]");
    assert_eq!(r("{{ l }}", &v), "['a', 1]");
    assert_eq!(r("{{ m }}", &v), "{'k': 'v'}");
}

#[test]
fn hostvars_lazy() {
    let v = vars(json!({
        "hostvars": {
            "web1": {"ip": "10.0.0.1", "url": "http://{{ ip }}:80"},
            "db1": {"ip": "10.0.0.2"},
        },
        "ip": "127.0.0.1",
    }));
    assert_eq!(r("{{ hostvars['web1'].url }}", &v), "http://10.0.0.1:80");
    assert_eq!(r("{{ hostvars['db1']['ip'] }}", &v), "10.0.0.2");
    assert_eq!(
        r("{{ hostvars.keys() | list | join(',') }}", &v),
        "web1,db1"
    );
    assert_eq!(r("{{ hostvars['nope'].ip | default('none') }}", &v), "none");
    assert_eq!(r("{{ vars['ip'] }}", &v), "127.0.0.1");
}

#[test]
fn pycompat_methods() {
    let v = vars(json!({"m": {"a": 1, "b": 2}, "s": " Hello World "}));
    assert_eq!(
        r(
            "{% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %}",
            &v
        ),
        "a=1;b=2;"
    );
    assert_eq!(r("{{ m.keys() | list }}", &v), "['a', 'b']");
    assert_eq!(r("{{ m.get('c', 3) }}", &v), "3");
    assert_eq!(r("{{ s.strip().lower() }}", &v), "hello world");
    assert_eq!(r("{{ s.split() }}", &v), "['Hello', 'World']");
    assert_eq!(r("{{ s.strip().startswith('Hello') }}", &v), "True");
    assert_eq!(r("{{ s.replace('o', '0') }}", &v), " Hell0 W0rld ");
    assert_eq!(r("{{ '{}-{}'.format('a', 1) }}", &v), "a-1");
}

#[test]
fn filters_conversion() {
    let e = empty();
    assert_eq!(ev("'yes' | bool", &e), json!(true));
    assert_eq!(ev("'no' | bool", &e), json!(false));
    assert_eq!(ev("'abc' | int", &e), json!(0));
    assert_eq!(ev("'42' | int + 1", &e), json!(43));
    assert_eq!(ev("'3.7' | int", &e), json!(3));
    assert_eq!(ev("'ff' | int(base=16)", &e), json!(255));
    assert_eq!(ev("'1.5' | float", &e), json!(1.5));
    assert_eq!(ev("'x' | float", &e), json!(0.0));
    assert_eq!(ev("true | string", &e), json!("True"));
    assert_eq!(ev("'abc' | list", &e), json!(["a", "b", "c"]));
    let err = Templar::new().eval_expr("x | mandatory", &e).unwrap_err();
    assert!(err.message.contains("mandatory"), "{}", err.message);
    assert_eq!(ev("5 | mandatory", &e), json!(5));
}

#[test]
fn filters_strings() {
    let e = empty();
    assert_eq!(ev("['a','b'] | join(',')", &e), json!("a,b"));
    assert_eq!(ev("'a,b' | split(',')", &e), json!(["a", "b"]));
    assert_eq!(ev("'Ab' | lower ~ ('Ab' | upper)", &e), json!("abAB"));
    assert_eq!(ev("'hello world' | capitalize", &e), json!("Hello world"));
    assert_eq!(ev("'aXa' | replace('a', 'b')", &e), json!("bXb"));
    assert_eq!(ev("'  x ' | trim", &e), json!("x"));
    assert_eq!(ev("'abc' | length", &e), json!(3));
    assert_eq!(ev("[1,2] | count", &e), json!(2));
    assert_eq!(ev("'ab' | center(6)", &e), json!("  ab  "));
    assert_eq!(ev("'a b  c' | wordcount", &e), json!(3));
    assert_eq!(ev("'a\nb' | indent(2)", &e), json!("a\n  b"));
    assert_eq!(ev("'a b&c' | urlencode", &e), json!("a%20b%26c"));
    assert_eq!(ev("'hi' | b64encode", &e), json!("aGk="));
    assert_eq!(ev("'aGk=' | b64decode", &e), json!("hi"));
    assert_eq!(ev("\"it's\" | quote", &e), json!("'it'\"'\"'s'"));
    assert_eq!(ev("'simple' | quote", &e), json!("simple"));
    assert_eq!(ev("'' | quote", &e), json!("''"));
    assert_eq!(ev("'x' | comment", &e), json!("#\n# x\n#"));
    assert_eq!(ev("'%s-%s' | format('a', 1)", &e), json!("a-1"));
}

#[test]
fn filters_regex() {
    let e = empty();
    assert_eq!(
        ev("'foo123' | regex_replace('(\\\\d+)', '<\\\\1>')", &e),
        json!("foo<123>")
    );
    assert_eq!(ev("'a.b' | regex_replace('\\\\.', '$')", &e), json!("a$b"));
    assert_eq!(
        ev("'ABC' | regex_replace('b', 'x', ignorecase=true)", &e),
        json!("AxC")
    );
    assert_eq!(
        ev("'v1.2.3' | regex_search('\\\\d+\\\\.\\\\d+')", &e),
        json!("1.2")
    );
    assert_eq!(
        ev(
            "'k=v' | regex_search('(\\\\w)=(\\\\w)', '\\\\2', '\\\\1')",
            &e
        ),
        json!(["v", "k"])
    );
    assert_eq!(ev("'abc' | regex_search('z')", &e), json!(null));
    assert_eq!(
        ev("'a1b22' | regex_findall('\\\\d+')", &e),
        json!(["1", "22"])
    );
    assert_eq!(
        ev("'a=1 b=2' | regex_findall('(\\\\w)=(\\\\d)')", &e),
        json!([["a", "1"], ["b", "2"]])
    );
    assert_eq!(ev("'a.b' | regex_escape", &e), json!("a\\.b"));
    assert!(cond("'foobar' is match('foo')", &e));
    assert!(!cond("'foobar' is match('bar')", &e));
    assert!(cond("'foobar' is search('bar')", &e));
    assert!(cond("'FOO' is regex('foo', ignorecase=true)", &e));
}

#[test]
fn filters_lists() {
    let e = empty();
    assert_eq!(ev("[3,1,2] | first", &e), json!(3));
    assert_eq!(ev("[3,1,2] | last", &e), json!(2));
    assert_eq!(ev("[3,1,2] | min", &e), json!(1));
    assert_eq!(ev("[3,1,2] | max", &e), json!(3));
    assert_eq!(ev("[3,1,2] | sum", &e), json!(6));
    assert_eq!(ev("[[1],[2]] | sum(start=[])", &e), json!([1, 2]));
    assert_eq!(ev("[1,1,2] | unique | list", &e), json!([1, 2]));
    assert_eq!(ev("[1,2] | union([2,3])", &e), json!([1, 2, 3]));
    assert_eq!(ev("[1,2,3] | intersect([2,3,4])", &e), json!([2, 3]));
    assert_eq!(ev("[1,2,3] | difference([2])", &e), json!([1, 3]));
    assert_eq!(ev("[1,2] | symmetric_difference([2,3])", &e), json!([1, 3]));
    assert_eq!(ev("[1,[2,[3,[4]]]] | flatten", &e), json!([1, 2, 3, 4]));
    assert_eq!(
        ev("[1,[2,[3]]] | flatten(levels=1)", &e),
        json!([1, 2, [3]])
    );
    assert_eq!(ev("[3,1,2] | sort | list", &e), json!([1, 2, 3]));
    assert_eq!(ev("[1,2] | reverse | list", &e), json!([2, 1]));
    assert_eq!(
        ev("[{'n': 'a'}, {'n': 'b'}] | map(attribute='n') | list", &e),
        json!(["a", "b"])
    );
    assert_eq!(
        ev("['a', 'b'] | map('upper') | list", &e),
        json!(["A", "B"])
    );
    assert_eq!(ev("[0, 1, 2] | select | list", &e), json!([1, 2]));
    assert_eq!(ev("[0, 1, 2] | reject('odd') | list", &e), json!([0, 2]));
    let v = vars(json!({"users": [{"n": "a", "on": true}, {"n": "b", "on": false}, {"n": "c"}]}));
    assert_eq!(
        ev(
            "users | selectattr('on', 'defined') | map(attribute='n') | list",
            &v
        ),
        json!(["a", "b"])
    );
    assert_eq!(
        ev(
            "users | selectattr('on', 'defined') | selectattr('on') | map(attribute='n') | list",
            &v
        ),
        json!(["a"])
    );
    assert_eq!(
        ev(
            "users | rejectattr('on', 'defined') | map(attribute='n') | list",
            &v
        ),
        json!(["c"])
    );
    assert_eq!(
        ev("[1,2] | zip(['a','b']) | list", &e),
        json!([[1, "a"], [2, "b"]])
    );
    assert_eq!(
        ev("[1,2] | zip_longest(['a'], fillvalue='-') | list", &e),
        json!([[1, "a"], [2, "-"]])
    );
    assert_eq!(
        ev("[1,2] | product(['a','b'])", &e),
        json!([[1, "a"], [1, "b"], [2, "a"], [2, "b"]])
    );
    assert_eq!(
        ev("['x', 'y'] | map('extract', {'x': 1, 'y': 2}) | list", &e),
        json!([1, 2])
    );
    assert_eq!(
        ev("[1, 2, 3] | random(seed='s') in [1, 2, 3]", &e),
        json!(true)
    );
    assert_eq!(
        ev("[1, 2, 3] | random(seed='s')", &e),
        ev("[1, 2, 3] | random(seed='s')", &e)
    );
    assert_eq!(ev("10 | random(seed=1) < 10", &e), json!(true));
    assert_eq!(
        ev("[1, 2, 3] | shuffle(seed=3) | sort | list", &e),
        json!([1, 2, 3])
    );
}

#[test]
fn filters_dicts() {
    let e = empty();
    assert_eq!(
        ev("{'a': 1} | dict2items", &e),
        json!([{"key": "a", "value": 1}])
    );
    assert_eq!(
        ev("[{'key': 'a', 'value': 1}] | items2dict", &e),
        json!({"a": 1})
    );
    assert_eq!(
        ev(
            "[{'n': 'a', 'v': 1}] | items2dict(key_name='n', value_name='v')",
            &e
        ),
        json!({"a": 1})
    );
    assert_eq!(
        ev("{'a': 1, 'b': {'x': 1}} | combine({'b': {'y': 2}})", &e),
        json!({"a": 1, "b": {"y": 2}})
    );
    assert_eq!(
        ev(
            "{'a': 1, 'b': {'x': 1}} | combine({'b': {'y': 2}}, recursive=true)",
            &e
        ),
        json!({"a": 1, "b": {"x": 1, "y": 2}})
    );
    assert_eq!(
        ev("{'l': [1]} | combine({'l': [2]}, list_merge='append')", &e),
        json!({"l": [1, 2]})
    );
    assert_eq!(
        ev("{'b': 1, 'a': 2} | dictsort | first", &e),
        json!(["a", 2])
    );
    assert_eq!(ev("{'a': 1} | items | list", &e), json!([["a", 1]]));
}

#[test]
fn filters_serialization() {
    let e = empty();
    assert_eq!(
        ev("{'a': [1, 'é']} | to_json", &e),
        json!("{\"a\": [1, \"\\u00e9\"]}")
    );
    assert_eq!(
        ev("{'b': 1, 'a': true} | to_nice_json", &e),
        json!("{\n    \"a\": true,\n    \"b\": 1\n}")
    );
    assert_eq!(ev("'{\"a\": [1]}' | from_json", &e), json!({"a": [1]}));
    assert_eq!(
        ev("{'a': 1, 'b': [1, 2]} | to_yaml", &e),
        json!("a: 1\nb: [1, 2]\n")
    );
    assert_eq!(ev("{'a': 1} | to_yaml", &e), json!("{a: 1}\n"));
    assert_eq!(
        ev(
            "{'b': {'c': 'yes'}, 'a': [1, {'x': 1}]} | to_nice_yaml(indent=2)",
            &e
        ),
        json!("a:\n- 1\n- x: 1\nb:\n  c: 'yes'\n")
    );
    // ansible-core 2.19's output for the same data: scalar items after "- ", a mapping item's
    // block at the indentation, only PyYAML's boolean spellings quoted.
    assert_eq!(
        ev("{'a': [1, 2, {'x': 'y', 'z': [3]}], 'b': {'d': 'yes', 'n': 'n', 'm': 'yEs', 'o': 'Off'}} | to_nice_yaml", &e),
        json!("a:\n- 1\n- 2\n-   x: y\n    z:\n    - 3\nb:\n    d: 'yes'\n    m: yEs\n    n: n\n    o: 'Off'\n")
    );
    assert_eq!(
        ev("'a: [1, 2]\\nb: x' | from_yaml", &e),
        json!({"a": [1, 2], "b": "x"})
    );
    // As PyYAML reads it: `y` is a string, `yes` a boolean, `0644` octal.
    assert_eq!(ev("'[y, yes, 0644]' | from_yaml", &e), json!(["y", true, 420]));
    let bad = Templar::new().eval_expr("'a: [1' | from_yaml", &e).unwrap_err().message;
    assert!(bad.contains("from_yaml: invalid YAML (line 1"), "{bad}");
}

#[test]
fn filters_paths_and_hashes() {
    let e = empty();
    assert_eq!(ev("'/a/b/c.txt' | basename", &e), json!("c.txt"));
    assert_eq!(ev("'/a/b/c.txt' | dirname", &e), json!("/a/b"));
    assert_eq!(
        ev("'/a/b.tar.gz' | splitext", &e),
        json!(["/a/b.tar", ".gz"])
    );
    assert_eq!(ev("'/a/./b/../c/' | realpath", &e), json!("/a/c"));
    // relpath as Python's os.path.relpath (checked against Python 3.11)
    assert_eq!(ev("'/srv/app/static/css' | relpath('/srv/app')", &e), json!("static/css"));
    assert_eq!(ev("'/srv/app' | relpath('/srv/app/static/css/')", &e), json!("../.."));
    assert_eq!(ev("'/etc/x' | relpath('/srv/app')", &e), json!("../../etc/x"));
    assert_eq!(ev("'/srv/./app/' | relpath('/srv/app')", &e), json!("."));
    assert_eq!(ev("'/' | relpath('/a/b')", &e), json!("../.."));
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(ev(&format!("'{}/x/y' | relpath", cwd.display()), &e), json!("x/y"));
    assert!(ev("'~/x' | expanduser", &e)
        .as_str()
        .unwrap()
        .ends_with("/x"));
    assert_eq!(
        ev("'abc' | hash('sha256')", &e),
        json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        ev("'abc' | hash('sha1')", &e),
        json!("a9993e364706816aba3e25717850c26c9cd0d89d")
    );
    assert_eq!(
        ev("'abc' | checksum", &e),
        json!("a9993e364706816aba3e25717850c26c9cd0d89d")
    );
    assert_eq!(
        ev("'abc' | hash('md5')", &e),
        json!("900150983cd24fb0d6963f7d28e17f72")
    );
    assert_eq!(
        ev("'' | md5", &e),
        json!("d41d8cd98f00b204e9800998ecf8427e")
    );
    assert_eq!(
        ev("'Hello world!' | password_hash('sha512', 'saltstring')", &e),
        json!("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
    );
    let h = ev("'pw' | password_hash('sha512')", &e);
    assert!(h.as_str().unwrap().starts_with("$6$"));
}

#[test]
fn password_hash_types_match_glibc_crypt() {
    let e = empty();
    // expected values from `openssl passwd -5 / -1 / -6 -salt SALT PASSWORD` (glibc's crypt)
    for (expr, want) in [
        ("'Hello world!' | password_hash('sha256', 'saltstring')", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
        ("'Hello world!' | password_hash('sha256_crypt', 'toolongsaltstring')", "$5$toolongsaltstrin$0vuwUia3Nx9V/DqToMS8YLcfXpEXmSaC8wgguLIbus2"),
        ("'Hello world!' | password_hash('sha256', 'saltstringsaltstring', rounds=10000)", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
        ("'Hello world!' | password_hash('md5', 'saltstri')", "$1$saltstri$YMyguxXMBpd2TEZ.vS/3q1"),
        ("'' | password_hash('md5_crypt', 'ab')", "$1$ab$rn6aQS/o7141mj179E/zA."),
        ("'Hello world!' | password_hash(hashtype='sha512', salt='saltstring')", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ] {
        assert_eq!(ev(expr, &e), json!(want), "{expr}");
    }
    let h = ev("'pw' | password_hash('md5')", &e);
    assert!(h.as_str().unwrap().starts_with("$1$") && h.as_str().unwrap().len() == 3 + 8 + 1 + 22, "{h}");
    let h = ev("'pw' | password_hash('sha256')", &e);
    assert!(h.as_str().unwrap().starts_with("$5$") && h.as_str().unwrap().len() == 3 + 16 + 1 + 43, "{h}");
    assert!(rerr("{{ 'pw' | password_hash('blowfish') }}", &e).message.contains("unsupported hash type 'blowfish'"));
}

#[test]
fn filesizeformat_as_jinja() {
    let e = empty();
    // expected values from Jinja under Ansible 2.19
    for (expr, want) in [
        ("12345678 | filesizeformat", "12.3 MB"),
        ("12345678 | filesizeformat(true)", "11.8 MiB"),
        ("12345678 | filesizeformat(binary=true)", "11.8 MiB"),
        ("1 | filesizeformat", "1 Byte"),
        ("999 | filesizeformat", "999 Bytes"),
        ("1000 | filesizeformat", "1.0 kB"),
        ("1023 | filesizeformat(true)", "1023 Bytes"),
        ("-5000 | filesizeformat", "-5000 Bytes"),
        ("'2.5' | filesizeformat", "2 Bytes"),
        ("(10 ** 30) | filesizeformat", "1000000.0 YB"),
    ] {
        assert_eq!(ev(expr, &e), json!(want), "{expr}");
    }
}

#[test]
fn filters_misc() {
    let e = empty();
    assert_eq!(ev("true | ternary('a', 'b')", &e), json!("a"));
    assert_eq!(ev("none | ternary('a', 'b', 'n')", &e), json!("n"));
    assert_eq!(ev("[1] | type_debug", &e), json!("list"));
    assert_eq!(ev("'x' | type_debug", &e), json!("str"));
    assert_eq!(ev("1048576 | human_readable", &e), json!("1.00 MB"));
    assert_eq!(ev("'1K' | human_to_bytes", &e), json!(1024));
    assert_eq!(ev("range(3) | list", &e), json!([0, 1, 2]));
    assert_eq!(ev("'x' | to_uuid", &e).as_str().unwrap().len(), 36);
}

#[test]
fn tests_misc() {
    let e = empty();
    assert!(cond("'1.2' is version('1.10', '<')", &e));
    assert!(cond("'2.0.1' is version('2.0', '>=')", &e));
    assert!(cond("'1.2' is version_compare('1.2', '==')", &e));
    assert!(cond("'1.2' is version('1.2')", &e));
    assert!(cond("'a' is truthy", &e));
    assert!(cond("'' is falsy", &e));
    assert!(cond("2 is in [1, 2]", &e));
    assert!(cond("[1, 2] is contains(2)", &e));
    assert!(cond("[1] is subset([1, 2])", &e));
    assert!(cond("[1, 2] is superset([1])", &e));
    assert!(cond("none is none", &e));
    assert!(cond(
        "'x' is string and 1 is number and {} is mapping and [] is sequence and [] is iterable",
        &e
    ));
}

#[test]
fn lookups() {
    std::env::set_var("PROVISION_TEMPLATE_TEST", "val");
    let e = vars(json!({"x": "{{ 1 + 1 }}"}));
    assert_eq!(
        ev("lookup('env', 'PROVISION_TEMPLATE_TEST')", &e),
        json!("val")
    );
    assert_eq!(
        ev(
            "lookup('ansible.builtin.env', 'PROVISION_NOPE_XYZ', default='d')",
            &e
        ),
        json!("d")
    );
    assert_eq!(
        ev("query('env', 'PROVISION_TEMPLATE_TEST')", &e),
        json!(["val"])
    );
    assert_eq!(ev("lookup('vars', 'x')", &e), json!(2));
    let dir = std::env::temp_dir().join(format!("provision-tpl-{}", std::process::id()));
    std::fs::write(&dir, "content\n").unwrap();
    assert_eq!(
        ev(&format!("lookup('file', '{}')", dir.display()), &e),
        json!("content")
    );
    let _ = std::fs::remove_file(&dir);
}

#[test]
fn no_panics_on_garbage() {
    let t = Templar::new();
    let v = vars(json!({"a": "{{", "b": "{% if %}", "c": "{{ c.d }}"}));
    for src in [
        "{{",
        "{{ }}",
        "{% for %}",
        "{{ a }}",
        "{{ b }}",
        "{{ c }}",
        "{{ 1/0 }}",
        "{{ [] | first }}",
        "}}{{",
        "{{ 'x' * 999999999999 }}",
        "{{ x | default }}",
    ] {
        let _ = t.render_str(src, &v);
        let _ = t.eval_condition(src, &v);
        let _ = t.eval_expr(src, &v);
        let _ = t.render_value(&json!([src]), &v);
        let _ = t.render_template("t", src, &v);
    }
}

#[test]
fn show_error_messages() {
    let t = Templar::new();
    let v = vars(json!({"home": "/home/{{ user }}", "app_dir": "{{ home }}/x", "a": "{{ a }}"}));
    for src in [
        "{{ app_dir }}",
        "{{ a }}",
        "{{ nope }}",
        "{{ 1 | nofilter }}",
        "{{ x is nothing }}",
        "{{ foo( }}",
        "{{ 'a' | regex_replace('(') }}",
        "{{ {} | dict2items | first | int }}",
        "{% for x in 3 %}{% endfor %}",
    ] {
        eprintln!("render_str {src:?}: {:?}", t.render_str(src, &v));
    }
    eprintln!(
        "template: {}",
        t.render_template("app.conf.j2", "a\n{% if x %}\n{% endif %}", &v)
            .unwrap_err()
    );
    eprintln!(
        "template: {}",
        t.render_template("app.conf.j2", "a\nb {{ app_dir }}", &v)
            .unwrap_err()
    );
    eprintln!("cond: {}", t.eval_condition("x == 1", &v).unwrap_err());
    eprintln!("cond: {}", t.eval_condition("home == 1", &v).unwrap_err());
}

#[test]
fn templar_is_send_sync_and_plain_strings_fast() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Templar>();
    let t = Templar::new();
    assert_eq!(t.render_str("plain", &empty()).unwrap(), "plain");
    assert_eq!(
        t.render_value(&json!({"a": [1, "x"]}), &empty()).unwrap(),
        json!({"a": [1, "x"]})
    );
    assert!(Templar::is_template("a {{ b }}"));
    assert!(!Templar::is_template("a { b }"));
}

#[test]
fn perf_many_vars_many_renders() {
    let mut m = serde_json::Map::new();
    for i in 0..200 {
        m.insert(
            format!("v{i}"),
            json!(format!("value-{{{{ v{} }}}}-x", i + 1)),
        );
    }
    m.insert("v200".into(), json!("end"));
    m.insert("facts".into(), json!({"a": [1, 2, 3], "b": {"c": "d"}}));
    let mut hv = serde_json::Map::new();
    for h in 0..100 {
        hv.insert(format!("host{h}"), Json::Object(m.clone()));
    }
    m.insert("hostvars".into(), Json::Object(hv));
    let t = Templar::new();
    let start = std::time::Instant::now();
    for _ in 0..2000 {
        let out = t
            .render_str(
                "{{ v195 }} {{ facts.b.c }} {{ hostvars['host3'].v200 }}",
                &m,
            )
            .unwrap();
        assert!(out.ends_with("-end-x-x-x-x-x d end"), "{out}");
    }
    let elapsed = start.elapsed();
    eprintln!("2000 renders: {elapsed:?}");
    // debug build; generous bound, catches accidental O(all vars) work per render
    assert!(elapsed.as_secs() < 20);
}

#[test]
fn default_rewrite_keeps_locals_and_semantics() {
    let v = vars(json!({"users": [{"name": "a", "shell": "/bin/zsh"}, {"name": "b"}], "d": 1}));
    assert_eq!(
        r(
            "{% for u in users %}{{ u.name }}:{{ u.shell | default('/bin/bash') }};{% endfor %}",
            &v
        ),
        "a:/bin/zsh;b:/bin/bash;"
    );
    assert_eq!(ev("users[1].shell | default(omit)", &v), json!(OMIT));
    assert_eq!(ev("users[0]['shell'] | d('x')", &v), json!("/bin/zsh"));
    assert_eq!(r("{{ 'a.b | default(1)' }}", &v), "a.b | default(1)");
    assert_eq!(r("{{ d }}", &v), "1");
    assert_eq!(
        r("text x.y | default(1) {{ d }}", &v),
        "text x.y | default(1) 1"
    );
}

#[test]
fn deep_variable_chains_do_not_overflow() {
    let mut m = serde_json::Map::new();
    for i in 0..500 {
        m.insert(format!("v{i}"), json!(format!("{{{{ v{} }}}}", i + 1)));
    }
    m.insert("v500".into(), json!("end"));
    let t = Templar::new();
    let res = t.render_str("{{ v480 }}", &m);
    assert_eq!(res.unwrap(), "end");
    let e = t.render_str("{{ v0 }}", &m).unwrap_err();
    assert!(e.message.contains("too deep"), "{}", e.message);
}

#[test]
fn lenient_templar_renders_undefined_names_as_nothing_strict_one_still_fails() {
    let v = vars(json!({"dest": "/etc/app.env", "indirect": "{{ pending.secret }}"}));
    let t = Templar::new();
    let args = json!({"dest": "{{ dest }}", "content": "KEY={{ pending.secret }}\n", "reload": "{{ unit.changed }}", "x": "{{ indirect }}"});
    assert!(t.render_value(&args, &v).is_err());
    let got = t.lenient().render_value(&args, &v).unwrap();
    assert_eq!(got, json!({"dest": "/etc/app.env", "content": "KEY=\n", "reload": null, "x": null}));
    // defined values and `default` behave as usual
    assert_eq!(t.lenient().render_str("{{ dest }}:{{ nope | default('d') }}", &v).unwrap(), "/etc/app.env:d");
    // and the strict templar is not affected by the lenient one existing
    assert!(t.render_str("{{ pending }}", &v).is_err());
}

#[test]
fn undefined_plain_names_are_named() {
    // minijinja says only "undefined value" for a plain name in strict mode
    let t = Templar::new();
    let v = vars(json!({"ok": 1, "chained": "x {{ inner_missing }}"}));
    let e = rerr("value is {{ nosuchvar }}", &v);
    assert!(e.message.starts_with("undefined variable 'nosuchvar' in"), "{}", e.message);
    // the first one the render meets
    let e = rerr("{{ ok }}{{ a_missing }}{{ b_missing }}", &v);
    assert!(e.message.starts_with("undefined variable 'a_missing' in"), "{}", e.message);
    let e = rerr("{{ c_missing | upper }}", &v);
    assert!(e.message.starts_with("undefined variable 'c_missing'"), "{}", e.message);
    let e = rerr("{% for i in range(2) %}{{ i }}{{ loop_missing }}{% endfor %}", &v);
    assert!(e.message.starts_with("undefined variable 'loop_missing'"), "{}", e.message);
    let e = rerr("{{ chained }}", &v);
    assert!(e.message.starts_with("undefined variable 'inner_missing' (while templating 'chained')"), "{}", e.message);
    let e = t.eval_condition("nosuch == 1", &v).unwrap_err();
    assert!(e.message.starts_with("undefined variable 'nosuch'"), "{}", e.message);
    let e = t.render_template("t.j2", "a\n{{ ok }}\nvalue {{ nosuchvar }}\n", &v).unwrap_err();
    assert_eq!(e.message, "undefined variable 'nosuchvar' (in template t.j2, line 3)");
    // attributes too, in text and in template files
    let e = rerr("x {{ user.nmae }}", &vars(json!({"user": {"name": "x"}})));
    assert!(e.message.starts_with("'user.nmae' is undefined in"), "{}", e.message);
    let e = t.render_template("t.j2", "a\n{{ ok.missing_attr }}\n", &v).unwrap_err();
    assert_eq!(e.message, "'ok.missing_attr' is undefined (in template t.j2, line 2)");
    // a name guarded by default is not blamed for another's absence
    let e = rerr("{{ maybe | default('d') }} {{ really_missing }}", &v);
    assert!(e.message.starts_with("undefined variable 'really_missing' in"), "{}", e.message);
    // defined names, functions and the template's own variables are never blamed
    let e = rerr("{% set x = 1 %}{{ x }}{{ range(1) | list | length }}{{ ok }}{{ gone }}", &v);
    assert!(e.message.starts_with("undefined variable 'gone'"), "{}", e.message);
}

#[test]
fn file_lookups_search_the_role_then_the_playbook_folder() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for (rel, text) in [
        ("roles/r/files/conf/a.conf", "a"),
        ("roles/r/files/conf/b.conf", "b"),
        ("roles/r/files/conf/.hidden.conf", "h"),
        ("roles/r/files/conf/notes.txt", "n"),
        ("roles/r/templates/only-in-role.txt", "role itself"),
        ("files/top/t.txt", "top\n"),
        ("files/conf/c.conf", "playbook's"),
    ] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::create_dir_all(root.join("roles/r/files/conf/dir.conf")).unwrap();
    let role = root.join("roles/r");
    let v = vars(json!({"role_path": role.display().to_string(), "playbook_dir": root.display().to_string()}));
    let abs = |rel: &str| root.join(rel).display().to_string();
    // the role's files/ wins over the playbook's; files only, no dot files, in name order
    assert_eq!(ev("query('fileglob', 'conf/*.conf')", &v), json!([abs("roles/r/files/conf/a.conf"), abs("roles/r/files/conf/b.conf")]));
    assert_eq!(ev("query('fileglob', 'conf/.*.conf')", &v), json!([abs("roles/r/files/conf/.hidden.conf")]));
    assert_eq!(ev("query('fileglob', 'top/*')", &v), json!([abs("files/top/t.txt")]));
    assert_eq!(ev(&format!("query('fileglob', '{}/files/top/*.txt', 'nowhere/*')", root.display()), &v), json!([abs("files/top/t.txt")]));
    assert_eq!(ev("lookup('fileglob', 'conf/*.conf')", &v), json!(format!("{},{}", abs("roles/r/files/conf/a.conf"), abs("roles/r/files/conf/b.conf"))));
    // lookup('file') searches the same places
    assert_eq!(ev("lookup('file', 'top/t.txt')", &v), json!("top"));
    assert_eq!(ev("lookup('file', 'templates/only-in-role.txt')", &v), json!("role itself"));
    let e = Templar::new().eval_expr("lookup('file', 'nope.txt')", &v).unwrap_err();
    assert!(e.message.contains("could not read 'nope.txt'"), "{}", e.message);
}

#[test]
fn more_of_ansibles_everyday_jinja() {
    let v = vars(json!({"s": "hello wonderful world of templates", "ver": "2.1"}));
    // filters and tests by their collection names
    assert_eq!(r("{{ [1] | ansible.builtin.to_json }}", &v), "[1]");
    assert_eq!(r("{{ 'a' | community.general.b64encode | ansible.builtin.b64decode }}", &v), "a");
    assert!(cond("ver is ansible.builtin.version('2.0', '>')", &v));
    assert!(cond("ver is not ansible.builtin.version('3.0', '>')", &v));
    // truncate, Jinja's defaults: 255 characters, leeway 5, whole words, '...'
    assert_eq!(r("{{ s | truncate(18) }}", &v), "hello...");
    assert_eq!(r("{{ s | truncate(18, true) }}", &v), "hello wonderful...");
    assert_eq!(r("{{ s | truncate(18, false, '!', 0) }}", &v), "hello wonderful!");
    assert_eq!(r("{{ 'short' | truncate(3) }}", &v), "short", "within the leeway");
    // combine of a list of dicts
    assert_eq!(ev("[{'a': 1}, {'b': 2}, {'a': 3}] | combine", &v), json!({"a": 3, "b": 2}));
    // lookup('file', errors='ignore') of a missing file: none (Ansible 2.19), an empty text
    assert_eq!(ev("lookup('file', '/nonexistent/provision', errors='ignore')", &v), json!(null));
    assert_eq!(r("[{{ lookup('file', '/nonexistent/provision', errors='ignore') }}]", &v), "[]");
    assert_eq!(ev("query('file', '/nonexistent/provision', errors='ignore')", &v), json!([]));
}

#[test]
fn a_variable_reading_an_undefined_name_is_undefined() {
    // Ansible: `x: "{{ nope }}/a"` makes x undefined for default and defined, not an error
    let v = vars(json!({"x": "{{ nope }}/a", "y": "{{ x }}", "z": "{{ x | default('zd') }}", "ok": "fine"}));
    assert_eq!(r("{{ x | default('d') }}", &v), "d");
    assert_eq!(r("{{ x | d('d') }}|{{ y | default('e') }}|{{ z }}", &v), "d|e|zd");
    assert!(!cond("x is defined", &v));
    assert!(cond("y is undefined and ok is defined", &v));
    assert_eq!(ev("lookup('vars', 'x', default=7)", &v), json!(7));
    // used as it is, the error names the undefined name and the variable that reads it
    let e = rerr("{{ x }}", &v);
    assert!(e.message.contains("undefined variable 'nope' (while templating 'x')"), "{}", e.message);
    let e = rerr("{{ y }}", &v);
    assert!(e.message.contains("undefined variable 'nope'") && e.message.contains("'x'"), "{}", e.message);
    // other errors stay errors
    let v = vars(json!({"bad": "{{ 1 | no_such_filter }}"}));
    assert!(Templar::new().render_str("{{ bad | default('d') }}", &v).is_err());
}

#[test]
fn yaml_strings_keep_backslashes_in_literals() {
    // Ansible's escape_backslashes: the YAML string `{{ ... '\1' }}` means the regex
    // backreference, not Jinja's escape \x01
    let v = vars(json!({"lst": ["a", "b"], "re": "{{ 'foo-bar' | regex_replace('(\\w+)-(\\w+)', '\\2 \\1') }}"}));
    assert_eq!(r("{{ 'foo-bar' | regex_replace('(\\w+)-(\\w+)', '\\2 \\1') }}", &v), "bar foo");
    assert_eq!(ev("re", &v), json!("bar foo"));
    assert_eq!(Templar::new().render_value(&json!("{{ lst | join('\\n') }}"), &v).unwrap(), json!("a\\nb"));
    assert_eq!(r("x\\n{{ 'a\\'b' }}", &v), "x\\na\\'b");
    // `{% %}` statements, conditions and template files keep Jinja's escapes
    assert_eq!(r("{% set s = 'a\\tb' %}{{ s }}", &v), "a\tb");
    assert!(cond("'a\\tb' == 'a' ~ '\t' ~ 'b'", &v));
    assert_eq!(Templar::new().render_template("t", "{{ lst | join('\\n') }}", &v).unwrap(), "a\nb");
    assert_eq!(r("{% raw %}{{ '\\t' }}{% endraw %}", &v), "{{ '\\t' }}");
}

#[test]
fn paths_urls_dicts_and_dates() {
    let v = vars(json!({"users": [{"name": "a", "keys": ["k1", "k2"]}, {"name": "b", "keys": []}]}));
    assert_eq!(ev("users | subelements('keys') | map('last') | list", &v), json!(["k1", "k2"]));
    assert_eq!(ev("(users | subelements('keys'))[0][0].name", &v), json!("a"));
    assert!(Templar::new().eval_expr("[{'a': 1}] | subelements('keys')", &v).is_err());
    assert_eq!(ev("[{'a': 1}] | subelements('keys', skip_missing=true)", &v), json!([]));
    assert_eq!(ev("['/etc', 'nginx', 'x.conf'] | path_join", &v), json!("/etc/nginx/x.conf"));
    assert_eq!(ev("['a/', 'b', '/abs', 'c'] | path_join", &v), json!("/abs/c"));
    assert_eq!(
        ev("'HTTPS://u:p@Ex.com:8443/p/q?x=1#f' | urlsplit", &v),
        json!({"fragment": "f", "hostname": "ex.com", "netloc": "u:p@Ex.com:8443", "password": "p", "path": "/p/q", "port": 8443, "query": "x=1", "scheme": "https", "username": "u"})
    );
    assert_eq!(ev("'http://[::1]/x' | urlsplit('hostname')", &v), json!("::1"));
    assert_eq!(ev("'http://h/x' | urlsplit('port')", &v), json!(null));
    assert_eq!(ev("dict(['a', 'b'] | zip([1, 2]))", &v), json!({"a": 1, "b": 2}));
    assert_eq!(ev("dict({'a': 1}, b=2)", &v), json!({"a": 1, "b": 2}));
    assert_eq!(ev("dict(c=3)", &v), json!({"c": 3}));
    assert!(cond("now().year >= 2024 and now(utc=true).month <= 12", &v));
    assert_eq!(ev("now(fmt='%Y') | int > 2000", &v), json!(true));
    assert_eq!(ev("now().strftime('%Y') == now(fmt='%Y')", &v), json!(true));
    let s = r("{{ now() }}", &v);
    assert_eq!(s.len(), "2026-11-24 10:00:00.000000".len(), "{s}");
}

#[test]
fn percent_on_a_string_literal_formats_like_python() {
    let v = vars(json!({"name": "web", "n": 7, "pair": ["a", "b"], "port": 8000, "x": 2.5}));
    assert_eq!(r("{{ '%s-%02d' % (name, n) }}", &v), "web-07");
    assert_eq!(r("{{ \"%s\" % name | upper }}", &v), "WEB");
    assert_eq!(r("{{ 'http://%s:%d/' % (name, port) ~ 'x' }}", &v), "http://web:8000/x");
    assert_eq!(r("{{ '%s' % pair[1] }}/{{ '%.1f' % x }}/{{ '%d%%' % 50 }}", &v), "b/2.5/50%");
    assert_eq!(r("{% set u = 'u-%s' % name %}{{ u }}", &v), "u-web");
    assert_eq!(r("{{ ['%s-%s' % (name, n), 'z'] | join(',') }}", &v), "web-7,z");
    // Not a string on the left: the number operator; inside a string: text.
    assert_eq!(r("{{ n % 4 }} {{ 'a % b' }} {{ '50%' }}", &v), "3 a % b 50%");
    assert_eq!(ev("'%s=%s' % ('k', 'v')", &v), json!("k=v"));
}

#[test]
fn jinja2_header_options() {
    let mut o = TemplateOptions::default();
    let body = o
        .apply_header("#jinja2: lstrip_blocks: True, trim_blocks: False, newline_sequence: '\\r\\n', variable_start_string: \"[[\", keep_trailing_newline: True\nrest\n")
        .unwrap();
    assert_eq!(body, "rest\n");
    assert!(o.lstrip_blocks && !o.trim_blocks && o.keep_trailing_newline);
    assert_eq!((o.newline_sequence.as_str(), o.variable_start_string.as_str()), ("\r\n", "[["));
    // without the header: as it is
    let mut o = TemplateOptions::default();
    assert_eq!(o.apply_header("# jinja2: x\n").unwrap(), "# jinja2: x\n");
    assert_eq!(o, TemplateOptions::default());
    for bad in ["#jinja2: trim_blocks: True", "#jinja2: trim_blocks True\n", "#jinja2: foo: True\n", "#jinja2: trim_blocks: 'yes'\n", "#jinja2: trim_blocks: True,\n"] {
        assert!(TemplateOptions::default().apply_header(bad).is_err(), "{bad}");
    }
    // rendered: the header line is dropped and its options apply
    let t = Templar::new();
    let v = vars(json!({"l": ["a", "b"]}));
    let src = "#jinja2: lstrip_blocks: True\n[x]\n  {% for i in l %}\n    {{ i }}\n  {% endfor %}\n";
    assert_eq!(t.render_template("t.j2", src, &v).unwrap(), "[x]\n    a\n    b\n");
    let e = t.render_template("t.j2", "#jinja2: block_start_string: '{{'\nx\n", &v).unwrap_err();
    assert!(e.message.contains("must be different") && e.message.contains("t.j2"), "{}", e.message);
    // a CRLF template comes out with the newline_sequence (\n), as Jinja's lexer does
    assert_eq!(t.render_template("t.j2", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", &v).unwrap(), "a\nb\n");
}

#[test]
fn literal_values_render_as_themselves() {
    let tricky = "a {{ b }} {% if %} {# c #} \"q\" \\ \n\t\u{1} é {% endraw %}";
    let v = vars(json!({"out": Templar::literal(json!({"stdout": tricky, "lines": [tricky, "plain"], "rc": 0}))}));
    assert_eq!(r("{{ out.stdout }}", &v), tricky);
    assert_eq!(r("{{ out.lines[0] }}|{{ out.lines[1] }}|{{ out.rc }}", &v), format!("{tricky}|plain|0"));
    assert_eq!(ev("out", &v), json!({"stdout": tricky, "lines": [tricky, "plain"], "rc": 0}));
    assert_eq!(Templar::literal(json!("plain")), json!("plain"));
}
