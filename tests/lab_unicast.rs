//! A unicast peer list that names only the node itself (issue 13, point
//! 6, the case check-config cannot see): without `unicastSource` the
//! node's own address is only known at run time. Such an instance would
//! advertise to nobody and become master beside every other node; it is
//! held in FAULT with a reason instead. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, require_root_and_tools, wait_for};
use serde_json::json;
use std::time::Duration;

#[test]
fn unicast_peers_naming_only_this_node_are_a_fault_not_a_lone_master() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let own = lab::node_v4(0).to_string();
    let d = lab.declaration(
        0,
        150,
        json!({ "web": lab::instance("192.0.2.100", json!({ "unicastPeers": [own] })) }),
    );
    lab.start_daemon(0, &d);
    let st = wait_for(Duration::from_secs(5), || {
        let out = lab.cli(0, &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["instances"][0]["state"] != "INIT").then_some(v)
    })
    .expect("status never answered");
    let i = &st["instances"][0];
    assert_eq!(i["state"], "FAULT", "{st:#}");
    let faults = i["faults"].to_string();
    assert!(
        faults.contains(&format!(
            "unicastPeers lists only this node's own address {own}"
        )),
        "{faults}"
    );
    assert!(lab.holders("192.0.2.100".parse().unwrap()).is_empty());
}
