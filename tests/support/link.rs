//! The one link the node tests put their instances on.

use nginx_ha::node::plan::LinkInfo;

/// eth1, index 2, up.
pub fn eth1() -> LinkInfo {
    LinkInfo {
        index: 2,
        name: "eth1".into(),
        up: true,
        mac: Some([2, 0, 0, 0, 0, 2]),
    }
}
