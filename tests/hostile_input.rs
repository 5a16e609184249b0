//! "Byte soup": the always-on complement of the coverage-guided fuzzers in
//! fuzz/ (which need `scripts/fuzz` and run only for a bounded time). Random
//! bytes and random mutations of real inputs (keepalived's adverts, the
//! shipped example declarations, nginx's stub_status page) go through the
//! same properties the fuzz targets check (fuzz/src/props.rs): never a
//! panic, and whatever is accepted is self-consistent.

// Shared with the fuzz targets; this file uses all but the renderer's
// property (covered by tests/render.rs's generated declarations).
#[allow(dead_code)]
#[path = "../fuzz/src/props.rs"]
mod props;

use nginx_ha::vrrp::packet::{Advert, IpMeta};
use proptest::prelude::*;
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The keepalived captures in the fuzz framing (fuzz/seeds/vrrp_decode,
/// made from tests/fixtures/keepalived by fuzz/seeds/make-vrrp-seeds).
fn advert_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(ROOT).join("fuzz/seeds/vrrp_decode");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(
        seeds.len() >= 10,
        "keepalived seeds missing in {}",
        dir.display()
    );
    seeds
}

fn example_declarations() -> Vec<Vec<u8>> {
    ["minimal", "two-node", "complete", "seed000-sites"]
        .iter()
        .map(|n| {
            let p = Path::new(ROOT).join(format!("examples/{n}.json"));
            std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop::sample::select(vec![
        b"[".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"]".to_vec(),
        b"null".to_vec(),
        b"1e400".to_vec(),
        b"18446744073709551616".to_vec(),
        b"-1".to_vec(),
        b"\"\"".to_vec(),
        b"\"/../etc/shadow\"".to_vec(),
        b",".to_vec(),
        b":".to_vec(),
        vec![0xff, 0xfe],
        vec![0],
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Edit::Flip(i, m)),
        any::<usize>().prop_map(Edit::Truncate),
        (
            any::<usize>(),
            prop_oneof![token, prop::collection::vec(any::<u8>(), 1..8)]
        )
            .prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
    ]
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = data.len();
        // Positions are taken modulo the current length, so every edit
        // lands somewhere.
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match e {
            Edit::Set(i, b) if len > 0 => data[at(*i)] = *b,
            Edit::Flip(i, m) if len > 0 => data[at(*i)] ^= *m,
            Edit::Truncate(i) => data.truncate(at(*i)),
            Edit::Insert(i, t) => {
                let p = at(*i);
                data.splice(p..p, t.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let p = at(*i);
                data.drain(p..(p + n).min(len));
            }
            _ => {}
        }
    }
    data
}

fn ip_meta() -> impl Strategy<Value = IpMeta> {
    let ttl = prop_oneof![3 => Just(255u8), 1 => any::<u8>()];
    let v4 =
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d)));
    let v6 = (any::<[u8; 16]>(), any::<[u8; 16]>())
        .prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d)));
    let mixed =
        (any::<[u8; 4]>(), any::<[u8; 16]>()).prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d)));
    (prop_oneof![4 => v4, 4 => v6, 1 => mixed], ttl).prop_map(|((src, dst), ttl)| IpMeta {
        src,
        dst,
        ttl,
    })
}

/// A JSON value meant to break whatever field it replaces.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([1, 2])),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(1.5)),
        Just(serde_json::json!("")),
        Just(serde_json::json!("/../../etc/passwd")),
        Just(serde_json::json!("a;b{c}")),
        Just(serde_json::json!("1s")),
        Just(serde_json::json!(true)),
        any::<String>().prop_map(Value::String),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
    ]
}

/// Replaces the node that `pick` lands on (in a pre-order walk) with `v`.
fn replace_nth(root: &mut Value, pick: usize, v: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, n: &mut usize, new: &mut Option<Value>) {
        if *n == 0 {
            if let Some(x) = new.take() {
                *v = x;
            }
            return;
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, n, new)),
            Value::Object(o) => o.values_mut().for_each(|c| walk(c, n, new)),
            _ => {}
        }
    }
    let mut n = pick % count(root);
    walk(root, &mut n, &mut Some(v));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Pure noise, with any IP facts.
    #[test]
    /// What an IPv4 raw socket hands over, whatever it is, splits or is
    /// refused; the split never reads past the datagram.
    fn random_datagrams_into_the_ipv4_split(buf in prop::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(r) = nginx_ha::net::vrrp_socket::parse_ipv4(&buf) {
            prop_assert!(r.msg.len() + 20 <= buf.len());
            let _ = Advert::decode(r.msg, r.ip);
        }
    }

    #[test]
    fn random_bytes_into_advert_decode(msg in prop::collection::vec(any::<u8>(), 0..300), ip in ip_meta()) {
        if let Ok((adv, _)) = Advert::decode(&msg, ip) {
            prop_assert_eq!(adv.addrs.len(), usize::from(msg[3]));
        }
    }

    /// Noise in the fuzz framing, with the checksum repaired half the time,
    /// so the decoder's later checks (count, auth, interval) are reached.
    #[test]
    fn random_framed_bytes_keep_the_decoder_properties(data in prop::collection::vec(any::<u8>(), 0..300)) {
        props::vrrp_decode(&data);
    }

    /// keepalived's real adverts, mutated: each accepted result must still
    /// round-trip; with the captured IP facts and no checksum repair, too.
    #[test]
    fn mutated_keepalived_adverts(
        pick in any::<usize>(),
        edits in prop::collection::vec(edit(), 1..6),
        repair in 0u8..4,
    ) {
        let seeds = advert_seeds();
        let seed = &seeds[pick % seeds.len()];
        let mut data = apply(seed.clone(), &edits);
        // Choose the checksum repair after the edits, so edits to the
        // header still reach the checks behind the checksum.
        if let Some(flags) = data.first_mut() {
            *flags = (*flags & !0b1100) | (repair << 2);
        }
        props::vrrp_decode(&data);
        if let Some(f) = props::frame(seed) {
            let msg = apply(f.msg.clone(), &edits);
            let _ = Advert::decode(&msg, f.ip);
        }
    }

    /// Byte-level mutations of the example declarations (broken JSON,
    /// hostile tokens, non-UTF-8).
    #[test]
    fn mutated_declaration_bytes(pick in 0usize..4, edits in prop::collection::vec(edit(), 1..5)) {
        let decl = &example_declarations()[pick];
        props::config_parse(&apply(decl.clone(), &edits));
    }

    /// Structural mutations: one value anywhere in an example replaced by a
    /// hostile one. Refusals must name the field; acceptances must
    /// round-trip and render.
    #[test]
    fn mutated_declaration_values(
        pick in 0usize..4,
        at in prop::collection::vec((any::<usize>(), hostile_value()), 1..3),
    ) {
        let mut v: Value = match serde_json::from_slice(&example_declarations()[pick]) {
            Ok(v) => v,
            Err(e) => panic!("example {pick}: {e}"),
        };
        for (n, new) in at {
            replace_nth(&mut v, n, new);
        }
        props::config_parse(v.to_string().as_bytes());
    }

    #[test]
    fn random_text_into_stub_status(body in ".{0,200}") {
        props::stub_status(body.as_bytes());
    }

    #[test]
    fn mutated_stub_status_pages(
        nums in prop::collection::vec(
            prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                Just("18446744073709551616".to_string()),
                Just("-1".to_string()),
                Just(String::new()),
                "[0-9a-z ]{0,5}",
            ],
            7,
        ),
        edits in prop::collection::vec(edit(), 0..3),
    ) {
        let page = format!(
            "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
            nums[0], nums[1], nums[2], nums[3], nums[4], nums[5], nums[6]
        );
        props::stub_status(&apply(page.into_bytes(), &edits));
    }

    #[test]
    fn random_text_into_http_url(tail in ".{0,60}", prefix in prop::sample::select(vec!["http://", "http://[", "http://127.0.0.1:", ""])) {
        props::http_url(format!("{prefix}{tail}").as_bytes());
    }
}
