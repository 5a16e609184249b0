//! Why an instance cannot run now. Several reasons can hold at once (the
//! link is down *and* nginx fails); the instance leaves FAULT only when
//! the last one is gone, and enters it when the first one comes.

use crate::vrrp::instance::Input;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultSource {
    Maintenance,
    Link,
    Address,
    /// Adding a VIP failed (e.g. no CAP_NET_ADMIN): a master without its
    /// VIP would keep the peer from serving it. Retried after a while.
    Vip,
    Check(String),
}

#[derive(Clone, Debug, Default)]
pub struct Faults(BTreeMap<FaultSource, String>);

impl Faults {
    /// Sets (`Some(why)`) or clears (`None`) one reason; returns what the
    /// state machine must hear: `Fault` when the first reason arrived,
    /// `Recover` when the last one left, nothing otherwise.
    pub fn set(&mut self, src: FaultSource, why: Option<String>) -> Option<Input> {
        let was = !self.0.is_empty();
        match why {
            Some(w) => {
                self.0.insert(src, w);
            }
            None => {
                self.0.remove(&src);
            }
        }
        self.transition(was)
    }

    /// Replaces every check reason with `failing` at once, so a check that
    /// recovers while another fails does not bounce the instance through
    /// BACKUP.
    pub fn set_checks(&mut self, failing: Vec<(String, String)>) -> Option<Input> {
        let was = !self.0.is_empty();
        self.0.retain(|k, _| !matches!(k, FaultSource::Check(_)));
        for (name, why) in failing {
            self.0.insert(FaultSource::Check(name), why);
        }
        self.transition(was)
    }

    fn transition(&self, was: bool) -> Option<Input> {
        match (was, self.first()) {
            (false, Some(why)) => Some(Input::Fault(why.clone())),
            (true, None) => Some(Input::Recover),
            _ => None,
        }
    }

    /// The reason shown first (the most fundamental: maintenance, link,
    /// address, VIP, then checks by name).
    pub fn first(&self) -> Option<&String> {
        self.0.values().next()
    }

    pub fn contains(&self, src: &FaultSource) -> bool {
        self.0.contains_key(src)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn reasons(&self) -> Vec<String> {
        self.0.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_faults_last_reason_recovers() {
        let mut f = Faults::default();
        assert_eq!(
            f.set(FaultSource::Link, Some("eth1 is down".into())),
            Some(Input::Fault("eth1 is down".into()))
        );
        assert_eq!(f.set(FaultSource::Maintenance, Some("m".into())), None);
        assert_eq!(f.first().map(String::as_str), Some("m"));
        assert_eq!(f.set(FaultSource::Link, None), None);
        assert_eq!(f.set(FaultSource::Maintenance, None), Some(Input::Recover));
        assert_eq!(f.set(FaultSource::Maintenance, None), None);
    }

    #[test]
    fn one_check_replacing_another_does_not_recover_in_between() {
        let mut f = Faults::default();
        assert!(matches!(
            f.set_checks(vec![("a".into(), "a fails".into())]),
            Some(Input::Fault(_))
        ));
        assert_eq!(f.set_checks(vec![("b".into(), "b fails".into())]), None);
        assert_eq!(f.reasons(), vec!["b fails".to_string()]);
        assert_eq!(f.set_checks(vec![]), Some(Input::Recover));
    }

    #[test]
    fn check_reasons_leave_other_reasons_alone() {
        let mut f = Faults::default();
        f.set(FaultSource::Address, Some("no address".into()));
        assert_eq!(f.set_checks(vec![("a".into(), "x".into())]), None);
        assert_eq!(f.set_checks(vec![]), None);
        assert!(f.contains(&FaultSource::Address));
    }
}
