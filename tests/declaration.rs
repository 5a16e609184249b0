//! The declaration: every rule `check-config` enforces, each shown refusing
//! a bad value with the JSON path that names it, and the shipped examples
//! accepted.

use serde_json::{Value, json};
use std::process::Command;

fn base() -> Value {
    json!({
        "node": { "name": "lb1", "priority": 150 },
        "instances": {
            "web": {
                "interface": "eth0",
                "virtualRouterId": 51,
                "virtualIps": ["192.0.2.100/24"]
            }
        }
    })
}

/// Applies `edit` to the base declaration and returns the problem lines.
fn problems(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut v = base();
    edit(&mut v);
    match nginx_ha::config::parse(v.to_string().as_bytes()) {
        Ok(_) => vec![],
        Err(e) => e.lines(),
    }
}

fn assert_refused(lines: &[String], path: &str, words: &str) {
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{path}: ")) && l.contains(words)),
        "expected a problem at {path} mentioning {words:?}, got {lines:#?}"
    );
}

#[test]
fn base_is_valid_and_defaults_are_safe() {
    let d = nginx_ha::config::parse(base().to_string().as_bytes()).unwrap();
    let i = &d.instances["web"];
    assert_eq!(i.version, 3);
    assert!(i.preempt);
    assert_eq!(i.advert_interval.to_string(), "1s");
    assert!(d.checks.nginx.enable);
    assert_eq!(
        d.checks.nginx.weight, 0,
        "nginx failure means FAULT by default"
    );
    assert_eq!(
        d.checks.nginx.status_url,
        "http://127.0.0.1:8081/nginx_status"
    );
}

#[test]
fn unknown_key_is_named() {
    let l = problems(|v| v["instances"]["web"]["virtualRouterID"] = json!(1));
    assert_refused(
        &l,
        "instances.web.virtualRouterID",
        "unknown field `virtualRouterID`, expected one of",
    );
}

/// Found by fuzzing (config_parse): an empty key was reported at path ""
/// (top level) or "node." (nested), naming no field.
#[test]
fn empty_key_is_named() {
    let lines = |j: &str| match nginx_ha::config::parse(j.as_bytes()) {
        Ok(_) => panic!("{j} accepted"),
        Err(e) => e.lines(),
    };
    assert_refused(&lines(r#"{"": 1}"#), "\"\"", "unknown field ``");
    let l = problems(|v| v["node"][""] = json!(1));
    assert_refused(&l, "node.\"\"", "unknown field ``");
    let l = problems(|v| v["instances"]["web"]["virtualIps"] = json!([1]));
    assert_refused(&l, "instances.web.virtualIps.0", "invalid type");
}

/// serde reads a struct from a JSON array by position; a declaration must
/// name its fields, so arrays where objects belong are refused, at every
/// level, with the path of the array.
#[test]
fn arrays_in_place_of_objects_are_refused() {
    let whole = json!([
        { "name": "lb1", "priority": 150 },
        { "web": { "interface": "eth0", "virtualRouterId": 51, "virtualIps": ["192.0.2.100/24"] } }
    ]);
    let l = match nginx_ha::config::parse(whole.to_string().as_bytes()) {
        Ok(_) => panic!("a positional declaration was accepted"),
        Err(e) => e.lines(),
    };
    assert_refused(&l, ".", "is an array");
    let l = problems(|v| v["node"] = json!(["lb1", 150]));
    assert_refused(&l, "node", "is an array");
    let l = problems(|v| v["instances"]["web"]["announce"] = json!([3]));
    assert_refused(&l, "instances.web.announce", "is an array");
    let l = problems(|v| v["checks"] = json!({ "extra": { "t": ["tcp"] } }));
    assert!(!l.is_empty(), "positional extra check accepted");
    // A map (instances) never took an array; it still names the field.
    let l = problems(|v| v["instances"] = json!([]));
    assert_refused(&l, "instances", "invalid type: sequence");
}

#[test]
fn wrong_type_is_named() {
    let l = problems(|v| v["instances"]["web"]["virtualRouterId"] = json!("51"));
    assert_refused(&l, "instances.web.virtualRouterId", "invalid type: string");
    let l = problems(|v| v["instances"]["web"]["preempt"] = json!("yes"));
    assert_refused(&l, "instances.web.preempt", "invalid type");
}

#[test]
fn vrid_out_of_range() {
    for bad in [0, 256, 100000] {
        let l = problems(|v| v["instances"]["web"]["virtualRouterId"] = json!(bad));
        assert_refused(&l, "instances.web.virtualRouterId", "out of 1..=255");
    }
}

#[test]
fn priority_out_of_range_and_255_only_for_owner() {
    let l = problems(|v| v["node"]["priority"] = json!(0));
    assert_refused(&l, "node.priority", "out of 1..=254");
    let l = problems(|v| v["node"]["priority"] = json!(255));
    assert_refused(&l, "node.priority", "out of 1..=254");
    let l = problems(|v| v["instances"]["web"]["priority"] = json!(255));
    assert_refused(
        &l,
        "instances.web.priority",
        "reserved for the address owner",
    );
    let l = problems(|v| {
        v["instances"]["web"]["priority"] = json!(255);
        v["instances"]["web"]["addressOwner"] = json!(true);
    });
    assert!(l.is_empty(), "{l:?}");
    let l = problems(|v| v["instances"]["web"]["priority"] = json!(300));
    assert_refused(&l, "instances.web.priority", "out of 1..=255");
}

#[test]
fn mixed_families_refused() {
    let l = problems(|v| {
        v["instances"]["web"]["virtualIps"] = json!(["192.0.2.100/24", "2001:db8::100/64"])
    });
    assert_refused(
        &l,
        "instances.web.virtualIps.1",
        "one instance carries one family",
    );
}

#[test]
fn vip_needs_a_prefix() {
    let l = problems(|v| v["instances"]["web"]["virtualIps"] = json!(["192.0.2.100"]));
    assert_refused(&l, "instances.web.virtualIps.0", "no prefix length");
}

#[test]
fn v3_interval_rules() {
    for bad in ["15ms", "41s", "0s"] {
        let l = problems(|v| v["instances"]["web"]["advertInterval"] = json!(bad));
        assert_refused(&l, "instances.web.advertInterval", "multiple of 10ms");
    }
    let l = problems(|v| v["instances"]["web"]["advertInterval"] = json!("40.95s"));
    assert!(l.is_empty(), "{l:?}");
    let l = problems(|v| v["instances"]["web"]["advertInterval"] = json!(1));
    assert_refused(&l, "instances.web.advertInterval", "duration string");
}

#[test]
fn v2_interval_whole_seconds() {
    let l = problems(|v| {
        v["instances"]["web"]["version"] = json!(2);
        v["instances"]["web"]["advertInterval"] = json!("1500ms");
    });
    assert_refused(&l, "instances.web.advertInterval", "whole seconds");
}

#[test]
fn v2_is_ipv4_only() {
    let l = problems(|v| {
        v["instances"]["web"]["version"] = json!(2);
        v["instances"]["web"]["virtualIps"] = json!(["2001:db8::100/64"]);
    });
    assert_refused(&l, "instances.web.version", "IPv4 only");
}

#[test]
fn auth_with_v3_refused_and_path_checked() {
    let l = problems(|v| v["instances"]["web"]["authPasswordFile"] = json!("/run/secrets/vrrp"));
    assert_refused(&l, "instances.web.authPasswordFile", "no authentication");
    let l = problems(|v| {
        v["instances"]["web"]["version"] = json!(2);
        v["instances"]["web"]["authPasswordFile"] = json!("/run/../etc/shadow");
    });
    assert_refused(&l, "instances.web.authPasswordFile", "\"..\"");
    let l = problems(|v| {
        v["instances"]["web"]["version"] = json!(2);
        v["instances"]["web"]["authPasswordFile"] = json!("secret.txt");
    });
    assert_refused(&l, "instances.web.authPasswordFile", "absolute path");
}

#[test]
fn duplicate_vrid_on_interface_and_family() {
    let l = problems(|v| {
        v["instances"]["api"] = json!({
            "interface": "eth0", "virtualRouterId": 51, "virtualIps": ["192.0.2.101/24"]
        })
    });
    assert_refused(
        &l,
        "instances.web.virtualRouterId",
        "already used by instance \"api\"",
    );
    // Same VRID for the other family, or on another interface, is fine.
    let l = problems(|v| {
        v["instances"]["api6"] = json!({
            "interface": "eth0", "virtualRouterId": 51, "virtualIps": ["2001:db8::100/64"]
        });
        v["instances"]["other"] = json!({
            "interface": "eth1", "virtualRouterId": 51, "virtualIps": ["192.0.2.102/24"]
        });
    });
    assert!(l.is_empty(), "{l:?}");
}

#[test]
fn unicast_family_rules() {
    let l = problems(|v| {
        v["instances"]["web"]["unicastPeers"] = json!(["192.0.2.2"]);
        v["instances"]["web"]["unicastSource"] = json!("2001:db8::1");
    });
    assert_refused(&l, "instances.web.unicastSource", "virtual IPs are IPv4");
    let l = problems(|v| v["instances"]["web"]["unicastPeers"] = json!(["2001:db8::2"]));
    assert_refused(&l, "instances.web.unicastPeers.0", "is IPv6");
    let l = problems(|v| v["instances"]["web"]["unicastSource"] = json!("192.0.2.1"));
    assert_refused(&l, "instances.web.unicastSource", "unicastPeers is empty");
}

#[test]
fn checks_are_validated() {
    let l = problems(|v| {
        v["checks"] = json!({
            "nginx": { "statusUrl": "https://127.0.0.1/", "fall": 0, "weight": -300 },
            "extra": {
                "api": { "type": "http" },
                "db": { "type": "tcp", "address": "nowhere", "url": "http://127.0.0.1/" },
                "script": { "type": "exec", "command": ["relative.sh"], "timeout": "2s", "interval": "1s" }
            }
        });
        v["instances"]["web"]["trackChecks"] = json!(["nginx", "nope"]);
    });
    assert_refused(&l, "checks.nginx.statusUrl", "http://");
    assert_refused(&l, "checks.nginx.fall", "out of 1..=100");
    assert_refused(&l, "checks.nginx.weight", "out of -254..=254");
    assert_refused(&l, "checks.extra.api.url", "required");
    assert_refused(&l, "checks.extra.db.address", "ADDRESS:PORT");
    assert_refused(&l, "checks.extra.db.url", "does not apply");
    assert_refused(&l, "checks.extra.script.command.0", "absolute path");
    assert_refused(&l, "checks.extra.script.timeout", "at most the interval");
    assert_refused(&l, "instances.web.trackChecks.1", "\"nope\" is not a check");
}

#[test]
fn unsafe_names_refused() {
    let l = problems(|v| v["node"]["name"] = json!("lb1; rm -rf /"));
    assert_refused(&l, "node.name", "letters, digits");
    let l = problems(|v| {
        let w = v["instances"]["web"].take();
        v["instances"] = json!({ "../etc": w });
    });
    assert_refused(&l, "instances.../etc", "instance names");
    let l = problems(|v| v["instances"]["web"]["interface"] = json!("eth0/../x"));
    assert_refused(&l, "instances.web.interface", "not a valid interface name");
}

#[test]
fn notify_commands_checked() {
    let l = problems(|v| v["notify"] = json!({ "master": [[]], "fault": [["sh", "-c", "x"]] }));
    assert_refused(&l, "notify.master.0", "must name a program");
    assert_refused(&l, "notify.fault.0.0", "absolute path");
}

#[test]
fn all_problems_reported_at_once() {
    let l = problems(|v| {
        v["node"]["priority"] = json!(0);
        v["instances"]["web"]["virtualRouterId"] = json!(0);
        v["instances"]["web"]["advertInterval"] = json!("15ms");
    });
    assert_eq!(l.len(), 3, "{l:#?}");
}

#[test]
fn not_json_and_huge_files() {
    let e = nginx_ha::config::parse(b"{\"node\": ").unwrap_err();
    assert!(e.lines()[0].contains("not valid JSON"), "{:?}", e.lines());
    let e = nginx_ha::config::parse(&[0xff, 0xfe, 0x00]).unwrap_err();
    assert!(e.lines()[0].contains("not valid JSON"), "{:?}", e.lines());
    let big = format!("{{\"node\": {{\"name\": \"{}\"}}}}", "a".repeat(2 << 20));
    let e = nginx_ha::config::parse(big.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("at most"), "{e}");
    let e = nginx_ha::config::parse(format!("{} x", base()).as_bytes()).unwrap_err();
    assert!(e.lines()[0].contains("not valid JSON"), "{:?}", e.lines());
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nginx-ha"))
}

#[test]
fn check_config_cli_accepts_every_example() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let out = bin()
                .arg("check-config")
                .arg("--config")
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let s = String::from_utf8_lossy(&out.stdout);
            assert!(s.contains(": OK: node "), "{s}");
            assert_eq!(s.lines().count(), 1);
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn check_config_cli_refuses_with_one_line_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.json");
    let mut v = base();
    v["node"]["priority"] = json!(0);
    v["instances"]["web"]["virtualRouterId"] = json!(300);
    std::fs::write(&f, v.to_string()).unwrap();
    let out = bin()
        .arg("check-config")
        .arg("-c")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("node.priority: 0 is out of 1..=254"), "{err}");
    assert!(
        err.contains("instances.web.virtualRouterId: 300 is out of 1..=255"),
        "{err}"
    );
    let out = bin()
        .arg("check-config")
        .arg("-c")
        .arg(dir.path().join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// Issue 13 point 6: what the new rules must still accept. An IPv4 /31 or
/// /32 has no network or broadcast address (RFC 3021), an IPv6 prefix has
/// no broadcast, and a peer list that names this node beside others is
/// the documented "one list for every node" form.
#[test]
fn unusable_address_rules_keep_the_edges_usable() {
    for vips in [
        json!(["192.0.2.0/31", "192.0.2.1/31"]),
        json!(["192.0.2.7/32"]),
        json!(["192.0.2.1/24", "192.0.2.254/24"]),
        json!(["2001:db8::/64"]),
    ] {
        let l = problems(|v| {
            v["instances"]["web"]["virtualIps"] = vips.clone();
            if vips[0].as_str().is_some_and(|s| s.contains(':')) {
                v["instances"]["web"]["version"] = json!(3);
            }
        });
        assert!(l.is_empty(), "{vips} refused: {l:#?}");
    }
    let l = problems(|v| {
        v["instances"]["web"]["unicastSource"] = json!("192.0.2.1");
        v["instances"]["web"]["unicastPeers"] = json!(["192.0.2.1", "192.0.2.2"]);
    });
    assert!(l.is_empty(), "{l:#?}");
    let l = problems(|v| {
        v["instances"]["web"]["virtualIps"] = json!(
            (1..=255)
                .map(|i| format!("198.51.100.{i}/32"))
                .collect::<Vec<_>>()
        );
    });
    assert!(l.is_empty(), "255 VIPs fit one advert: {l:#?}");
}

/// Issue 13 point 6: the later of two equal map keys silently won, so a
/// rendered config pointed at the other backend. Every object counts.
#[test]
fn duplicate_keys_are_refused_anywhere() {
    let lines = |j: &str| match nginx_ha::config::parse(j.as_bytes()) {
        Ok(_) => panic!("{j} accepted"),
        Err(e) => e.lines(),
    };
    let j = base().to_string().replacen(
        "\"instances\":{",
        "\"instances\":{\"web\":{\"interface\":\"eth1\",\"virtualRouterId\":9,\"virtualIps\":[\"198.51.100.9/24\"]},",
        1,
    );
    assert_refused(&lines(&j), "instances.web", "duplicate key \"web\"");
    let j = base()
        .to_string()
        .replacen("\"priority\":150", "\"priority\":150,\"priority\":100", 1);
    // A struct field twice was already refused by serde; still named.
    assert!(
        lines(&j).iter().any(|l| l.contains("priority")),
        "{:#?}",
        lines(&j)
    );
}

#[test]
fn a_byte_order_mark_is_named() {
    let mut b = vec![0xEF, 0xBB, 0xBF];
    b.extend_from_slice(base().to_string().as_bytes());
    let l = match nginx_ha::config::parse(&b) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.lines(),
    };
    assert_refused(&l, ".", "UTF-8 byte order mark");
}
