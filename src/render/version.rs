//! nginx versions, for syntax that changed between releases.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NginxVersion(pub u32, pub u32, pub u32);

impl NginxVersion {
    /// nginx 1.25.1 added `http2 on;` and deprecated `listen ... http2`;
    /// older releases (Debian 12 ships 1.22) only know the listen flag.
    pub fn has_http2_directive(self) -> bool {
        self >= NginxVersion(1, 25, 1)
    }
}

impl FromStr for NginxVersion {
    type Err = String;
    /// `1.22.1`, or the output of `nginx -v` (`nginx version: nginx/1.22.1`).
    fn from_str(s: &str) -> Result<Self, String> {
        let v = s.trim();
        let v = v.rsplit_once('/').map_or(v, |(_, v)| v);
        let v = v.split_whitespace().next().unwrap_or(v);
        let parts: Vec<u32> = v
            .split('.')
            .map(|x| x.parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("\"{s}\" is not an nginx version like 1.22.1"))?;
        match parts[..] {
            [a, b, c] => Ok(NginxVersion(a, b, c)),
            [a, b] => Ok(NginxVersion(a, b, 0)),
            _ => Err(format!("\"{s}\" is not an nginx version like 1.22.1")),
        }
    }
}

impl fmt::Display for NginxVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_nginx_v() {
        assert_eq!("1.22.1".parse(), Ok(NginxVersion(1, 22, 1)));
        assert_eq!(
            "nginx version: nginx/1.26.3 (Ubuntu)".parse(),
            Ok(NginxVersion(1, 26, 3))
        );
        assert!("1".parse::<NginxVersion>().is_err());
        assert!("x.y".parse::<NginxVersion>().is_err());
        assert!(!NginxVersion(1, 22, 1).has_http2_directive());
        assert!(NginxVersion(1, 25, 1).has_http2_directive());
    }
}
