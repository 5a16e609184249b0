//! Where the Prometheus endpoint may listen: not on port 0, and not on a
//! socket nginx already listens on (a site or the status page), where one
//! of the two would fail to bind at start.

use super::Declaration;
use super::validate::Problems;
use std::net::{IpAddr, SocketAddr};

pub fn validate_metrics(p: &mut Problems, d: &Declaration) {
    let Some(m) = &d.metrics else {
        return;
    };
    let path = "metrics.listen";
    let listen = m.listen;
    if listen.port() == 0 {
        p.push(
            path,
            "port 0: the endpoint needs a fixed port to be scraped",
        );
        return;
    }
    let Some(nginx) = &d.nginx else {
        return;
    };
    if nginx.status_page.enable && collides(listen, nginx.status_page.listen) {
        p.push(
            path,
            format!(
                "{listen} collides with nginx.statusPage.listen ({})",
                nginx.status_page.listen
            ),
        );
    }
    for (site_name, site) in &nginx.sites {
        for l in site.effective_listen() {
            let Ok(port) = u16::try_from(l.port) else {
                continue;
            };
            for addr in l.sockets() {
                let theirs = SocketAddr::new(addr, port);
                if collides(listen, theirs) {
                    p.push(
                        path,
                        format!(
                            "{listen} collides with site \"{site_name}\" listening on {theirs}"
                        ),
                    );
                }
            }
        }
    }
}

/// Two listeners on one port collide when their addresses are the same or
/// one is a wildcard covering the other. `[::]` counts as covering IPv4 too:
/// a dual-stack socket (the Linux default) takes both.
fn collides(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (covers(a.ip(), b.ip()) || covers(b.ip(), a.ip()))
}

fn covers(wide: IpAddr, other: IpAddr) -> bool {
    wide == other
        || match wide {
            IpAddr::V6(w) => w.is_unspecified(),
            IpAddr::V4(w) => w.is_unspecified() && other.is_ipv4(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn wildcards_cover_their_family_and_v6_covers_both() {
        assert!(collides(sa("127.0.0.1:80"), sa("127.0.0.1:80")));
        assert!(!collides(sa("127.0.0.1:80"), sa("127.0.0.1:81")));
        assert!(!collides(sa("127.0.0.1:80"), sa("127.0.0.2:80")));
        assert!(collides(sa("0.0.0.0:80"), sa("127.0.0.1:80")));
        assert!(collides(sa("127.0.0.1:80"), sa("0.0.0.0:80")));
        assert!(!collides(sa("0.0.0.0:80"), sa("[::1]:80")));
        assert!(collides(sa("[::]:80"), sa("127.0.0.1:80")));
        assert!(collides(sa("192.0.2.1:80"), sa("[::]:80")));
    }
}
