//! HTTPS through the VIP with nginx configured by `nginx-ha render-nginx`
//! from the same declaration the daemon runs, and the TEST-ONLY certificate
//! in tests/fixtures/secrets/. Twin of the VM test `tls-maintenance: HTTPS`. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, VIP, require_root_and_tools, wait_for};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

fn secret(name: &str) -> String {
    format!(
        "{}/tests/fixtures/secrets/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn declaration(lab: &Lab, i: usize) -> Value {
    let prio = if i == 0 { 150 } else { 100 };
    let mut d = lab.declaration(
        i,
        prio,
        json!({ "web": {
            "interface": "eth0",
            "virtualRouterId": 51,
            "virtualIps": [format!("{VIP}/24")],
            "advertInterval": "100ms"
        }}),
    );
    d["nginx"] = json!({
        "sites": { "www": {
            "serverNames": ["www.example.com"],
            "tls": {
                "certificateFile": secret("test-www.example.com.crt"),
                "keyFile": secret("test-www.example.com.key"),
                "redirectHttp": true,
                "hsts": true
            },
            "locations": [{ "path": "/", "return": { "status": 200, "target": format!("node{i}") } }]
        }}
    });
    d
}

/// curl from the client namespace; (HTTP status, body).
fn curl(lab: &Lab, url: &str) -> Option<(u16, String)> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.client_ns,
            "curl",
            "-sS",
            "-m",
            "2",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .args([
            "--resolve",
            &format!("www.example.com:443:{VIP}"),
            "--resolve",
            &format!("www.example.com:80:{VIP}"),
        ])
        .args(["--cacert", &secret("test-www.example.com.crt"), url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_string()))
}

#[test]
fn https_through_the_vip_follows_the_master() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for i in 0..2 {
        let d = declaration(&lab, i);
        lab.start_nginx_rendered(i, &d);
        lab.start_daemon(i, &d);
    }
    let vip: IpAddr = VIP.parse().unwrap();
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip) == vec![0]).then_some(())
    })
    .unwrap_or_else(|| panic!("holders {:?}", lab.holders(vip)));
    let got = wait_for(Duration::from_secs(3), || {
        curl(&lab, "https://www.example.com/").filter(|(c, b)| *c == 200 && b == "node0")
    });
    assert!(
        got.is_some(),
        "HTTPS via the VIP did not reach node0 (certificate verified by curl)"
    );
    let (code, _) = curl(&lab, "http://www.example.com/").expect("http answer");
    assert_eq!(code, 301, "HTTP is redirected to HTTPS");
    lab.kill_nginx(0);
    let got = wait_for(Duration::from_secs(3), || {
        curl(&lab, "https://www.example.com/").filter(|(c, b)| *c == 200 && b == "node1")
    });
    assert!(got.is_some(), "HTTPS did not follow the VIP to node1");
}
