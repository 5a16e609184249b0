//! The anycast series: what the node wants of each prefix, what BIRD has
//! of each protocol, and whether BIRD is reachable. Apart from
//! `exposition.rs` so the two change independently.

use crate::node::status::Status;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Gauges = Family<Vec<(&'static str, String)>, Gauge>;

fn family(reg: &mut Registry, name: &str, help: &str) -> Gauges {
    let f = Gauges::default();
    reg.register(name, help, f.clone());
    f
}

/// Registers the anycast series into `reg` (prefixed `nginx_ha_` there);
/// nothing without an anycast section.
pub(super) fn register(reg: &mut Registry, s: &Status) {
    let Some(a) = &s.anycast else { return };
    let wanted = family(
        reg,
        "anycast_wanted",
        "1 while the node wants the prefix announced (checks healthy past the hold-down, not in maintenance, not stopping)",
    );
    for p in &a.wish.prefixes {
        wanted
            .get_or_create(&vec![("prefix", p.clone())])
            .set(i64::from(a.wish.wanted));
    }
    let announced = family(
        reg,
        "anycast_announced",
        "1 while BIRD has the static protocol up (its prefixes announced), 0 while down; absent while unknown",
    );
    for p in &a.protocols {
        if let Some(up) = p.announced {
            announced
                .get_or_create(&vec![("protocol", p.name.clone())])
                .set(i64::from(up));
        }
    }
    let connected = Gauge::<i64>::default();
    connected.set(i64::from(a.bird_connected));
    reg.register(
        "anycast_bird_connected",
        "1 while the daemon is connected to BIRD's control socket",
        connected,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::status::{AnycastStatus, AnycastWish, BirdProtocolStatus};
    use prometheus_client::encoding::text::encode;

    #[test]
    fn wish_bird_and_connection_become_series() {
        let status = Status {
            node: "edge1".into(),
            maintenance: false,
            instances: vec![],
            checks: vec![],
            nginx: None,
            dropped: Default::default(),
            anycast: Some(AnycastStatus {
                wish: AnycastWish {
                    prefixes: vec!["203.0.113.80/32".into()],
                    wanted: true,
                    reason: "checks healthy".into(),
                    seconds_since_change: 1.0,
                },
                bird_socket: "/run/bird/bird.ctl".into(),
                bird_connected: true,
                bird_error: None,
                protocols: vec![
                    BirdProtocolStatus {
                        name: "nginx_ha4".into(),
                        announced: Some(true),
                        ..Default::default()
                    },
                    BirdProtocolStatus {
                        name: "nginx_ha6".into(),
                        announced: None,
                        ..Default::default()
                    },
                ],
            }),
        };
        let mut root = Registry::default();
        register(root.sub_registry_with_prefix("nginx_ha"), &status);
        let mut text = String::new();
        encode(&mut text, &root).expect("encode");
        for want in [
            "nginx_ha_anycast_wanted{prefix=\"203.0.113.80/32\"} 1",
            "nginx_ha_anycast_announced{protocol=\"nginx_ha4\"} 1",
            "nginx_ha_anycast_bird_connected 1",
        ] {
            assert!(text.lines().any(|l| l == want), "{want} missing:\n{text}");
        }
        assert!(
            !text.contains("nginx_ha6"),
            "unknown state is no series:\n{text}"
        );

        let mut root = Registry::default();
        let none = Status {
            anycast: None,
            ..status
        };
        register(root.sub_registry_with_prefix("nginx_ha"), &none);
        let mut text = String::new();
        encode(&mut text, &root).expect("encode");
        assert!(!text.contains("anycast"), "{text}");
    }
}
