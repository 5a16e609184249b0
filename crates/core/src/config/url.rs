//! The tiny subset of URLs the health checks speak: `http://HOST[:PORT]/PATH`
//! with HOST an IP literal or `localhost`. Checks run inside the node and
//! must not depend on DNS, so names other than localhost are refused. Part
//! of the declaration (validation parses it); the checks use it as is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub addr: SocketAddr,
    /// The Host header value.
    pub host: String,
    /// Path and query, always starting with '/'.
    pub path: String,
}

/// Shown in check details and logs as the operator wrote it.
impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.host, self.path)
    }
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!(
                "\"{url}\" must start with http:// (checks speak plain HTTP to a local listener)"
            )
        })?;
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "\"{}\" contains whitespace or control characters",
                url.escape_debug()
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("\"{url}\": unclosed '[' in the host"))?;
            let port = match after {
                "" => 80,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| format!("\"{url}\": bad port"))?,
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| format!("\"{url}\": bad port \"{p}\""))?,
                ),
                None => (authority, 80),
            }
        };
        if port == 0 {
            return Err(format!("\"{url}\": port 0"));
        }
        let ip: IpAddr = if host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse().map_err(|_| {
                format!("\"{url}\": the host must be an IP address or localhost, not \"{host}\"")
            })?
        };
        Ok(HttpUrl {
            addr: SocketAddr::new(ip, port),
            host: authority.to_string(),
            path: path.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_checks_use() {
        let u = HttpUrl::parse("http://127.0.0.1:8081/nginx_status").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8081/nginx_status");
        assert_eq!(u.addr, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(u.path, "/nginx_status");
        let u = HttpUrl::parse("http://[::1]/x?y=1").unwrap();
        assert_eq!(u.addr, "[::1]:80".parse().unwrap());
        assert_eq!(u.path, "/x?y=1");
        assert_eq!(HttpUrl::parse("http://localhost:81").unwrap().path, "/");
    }

    #[test]
    fn refuses_what_it_cannot_speak() {
        for bad in [
            "https://127.0.0.1/",
            "http://example.com/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:0/",
            "http://[::1/",
            "http://127.0.0.1/a b",
            "ftp://x",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
