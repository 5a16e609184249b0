//! The declaration's JSON Schema (`nginx-ha schema`) is what the NixOS
//! module builds its options from. These tests hold it to the daemon:
//! the committed copy is current, every key is documented with an example,
//! and every range it publishes is the one validation enforces.

use nginx_ha::config::{self, schema::declaration_schema};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const COMMITTED: &str = "nixos-module/declaration.schema.json";

/// A schema leaf: its path (`<name>` for map keys, `*` for list items) and
/// its schema.
fn leaves(path: &mut Vec<String>, s: &Value, out: &mut Vec<(Vec<String>, Value)>) {
    let s = unwrap_nullable(s);
    let is_object = s["type"] == "object";
    if is_object && s.get("properties").is_some() {
        for (k, sub) in s["properties"].as_object().into_iter().flatten() {
            path.push(k.clone());
            leaves(path, sub, out);
            path.pop();
        }
    } else if is_object && s["additionalProperties"].get("properties").is_some() {
        path.push("<name>".into());
        leaves(path, &s["additionalProperties"], out);
        path.pop();
    } else if s["type"] == "array" && s["items"].get("properties").is_some() {
        path.push("*".into());
        leaves(path, &s["items"], out);
        path.pop();
    } else {
        out.push((path.clone(), s.clone()));
    }
}

/// `Option<T>`: `type: [T, "null"]` (schemars' spelling for inlined types).
fn unwrap_nullable(s: &Value) -> Value {
    match s["type"].as_array() {
        Some(types) if types.len() == 2 && types.contains(&Value::from("null")) => {
            let mut inner = s.clone();
            let t = types.iter().find(|t| *t != "null").cloned();
            inner["type"] = t.unwrap_or(Value::Null);
            inner
        }
        _ => s.clone(),
    }
}

fn all_leaves() -> Vec<(Vec<String>, Value)> {
    let mut out = Vec::new();
    leaves(&mut Vec::new(), &declaration_schema(), &mut out);
    out
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(COMMITTED).expect("committed schema");
    let committed: Value = serde_json::from_str(&committed).expect("committed schema is JSON");
    assert!(
        committed == declaration_schema(),
        "{COMMITTED} is stale: run `cargo run -- schema > {COMMITTED}`"
    );
}

#[test]
fn every_leaf_has_a_description_and_an_example() {
    let leaves = all_leaves();
    assert!(leaves.len() > 60, "only {} leaves", leaves.len());
    let undocumented: Vec<String> = leaves
        .iter()
        .filter(|(_, s)| {
            s["description"].as_str().is_none_or(str::is_empty)
                || s["examples"].as_array().is_none_or(Vec::is_empty)
        })
        .map(|(p, _)| p.join("."))
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys without a doc comment or #[schemars(example)]: {undocumented:?}"
    );
}

/// Every concrete position in `doc` that `path` names, creating missing
/// plain objects on the way (maps and lists must already have entries).
fn positions(doc: &Value, path: &[String], at: Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some((head, rest)) = path.split_first() else {
        out.push(at);
        return;
    };
    let step = |key: String, value: &Value, out: &mut Vec<Vec<String>>| {
        let mut next = at.clone();
        next.push(key);
        positions(value, rest, next, out);
    };
    match head.as_str() {
        "<name>" => {
            for (k, v) in doc.as_object().into_iter().flatten() {
                step(k.clone(), v, out);
            }
        }
        "*" => {
            if let Some(first) = doc.as_array().and_then(|a| a.first()) {
                step("0".into(), first, out);
            }
        }
        key => match doc.get(key) {
            Some(v) => step(key.into(), v, out),
            // A missing object on the way is created; a missing leaf is set.
            None if doc.is_object()
                && !matches!(rest.first().map(String::as_str), Some("<name>" | "*")) =>
            {
                step(key.into(), &Value::Object(Default::default()), out)
            }
            None => {}
        },
    }
}

fn set(doc: &mut Value, at: &[String], value: Value) {
    let mut cur = doc;
    for key in at {
        cur = match cur {
            Value::Array(a) => &mut a[key.parse::<usize>().expect("index")],
            Value::Object(m) => m
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Default::default())),
            _ => panic!("cannot descend into a scalar at {at:?}"),
        };
    }
    *cur = value;
}

#[test]
fn every_published_range_is_the_one_validation_enforces() {
    let examples: Vec<Value> = ["examples/complete.json", "examples/seed000-sites.json"]
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("example")).expect("JSON"))
        .collect();
    let mut untested = Vec::new();
    let mut tested = 0;
    for (path, s) in all_leaves() {
        let (Some(min), Some(max)) = (s["minimum"].as_i64(), s["maximum"].as_i64()) else {
            continue;
        };
        let mut found = false;
        for example in &examples {
            let mut at = Vec::new();
            positions(example, &path, Vec::new(), &mut at);
            for position in at {
                found = true;
                for bad in [min - 1, max + 1] {
                    let mut doc = example.clone();
                    set(&mut doc, &position, Value::from(bad));
                    let err = config::parse(doc.to_string().as_bytes())
                        .expect_err(&format!("{} = {bad} accepted", position.join(".")));
                    let dotted = position.join(".");
                    assert!(
                        err.lines().iter().any(|l| l.starts_with(&dotted)),
                        "{dotted} = {bad}: refused, but not at its path: {:?}",
                        err.lines()
                    );
                    tested += 1;
                }
            }
        }
        if !found {
            untested.push(path.join("."));
        }
    }
    assert!(
        untested.is_empty(),
        "ranges not tested (no example has them): {untested:?}"
    );
    assert!(tested >= 20, "only {tested} out-of-range values tried");
}

#[test]
fn check_config_names_the_option_with_a_path_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string("examples/minimal.json").expect("example"))
            .expect("JSON");
    let name = doc["instances"]
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .expect("an instance");
    doc["instances"][&name]["virtualRouterId"] = Value::from(300);
    std::fs::write(&file, doc.to_string()).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_nginx-ha"))
        .args(["check-config", "--config"])
        .arg(&file)
        .args(["--path-prefix", "services.nginxHa."])
        .output()
        .expect("run check-config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "services.nginxHa.instances.{name}.virtualRouterId: 300 is out of 1..=255"
        )),
        "{stderr}"
    );
}

#[test]
fn schema_subcommand_prints_the_schema() {
    let out = Command::new(env!("CARGO_BIN_EXE_nginx-ha"))
        .arg("schema")
        .output()
        .expect("run schema");
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed, declaration_schema());
    assert!(Path::new(COMMITTED).exists());
}
