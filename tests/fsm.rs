//! The state machine against the RFC text, clause by clause. Each test names
//! the clause it checks; the conformance table in docs/reliability.md
//! points here.

use nginx_ha::vrrp::instance::{Action, Config, DropReason, Input, Instance, Reason, State};
use nginx_ha::vrrp::packet::{Advert, Auth, ChecksumStyle, Version};
use nginx_ha_lab::ms;
use std::net::IpAddr;
use std::time::Duration;

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg(priority: u8) -> Config {
    Config {
        version: Version::V3,
        vrid: 51,
        priority,
        advert_interval_cs: 100,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: ip("192.0.2.1"),
        vips: vec![ip("192.0.2.100")],
        auth: Auth::None,
        checksum: ChecksumStyle::Rfc,
        fast_takeover: false,
    }
}

fn advert(priority: u8, interval_cs: u16) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs,
        addrs: vec![ip("192.0.2.100")],
        auth: Auth::None,
    }
}

fn rx(src: &str, a: Advert) -> Input {
    Input::Advert {
        src: ip(src),
        advert: a,
        checksum: ChecksumStyle::Rfc,
    }
}

fn started(c: Config) -> Instance {
    let mut i = Instance::new(c);
    i.handle(Duration::ZERO, Input::Startup);
    i
}

fn sends(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendAdvert { priority } => Some(*priority),
            _ => None,
        })
        .collect()
}

/// Drives a backup to master via its Master_Down_Timer.
fn master(c: Config) -> Instance {
    let mut i = started(c);
    let t = i.deadline().unwrap();
    i.handle(t, Input::Timer);
    assert_eq!(i.state(), State::Master);
    i
}

#[test]
fn rfc5798_6_1_skew_and_master_down_interval_exact() {
    // Priority 100, interval 1 s: Skew = 156 * 100 cs / 256 = 60.9375 cs.
    let i = started(cfg(100));
    assert_eq!(i.skew_time(), us(609_375));
    assert_eq!(i.master_down_interval(), us(3_609_375));
    // 10 ms adverts at priority 254: 2 * 1 cs / 256 = 78.125 µs; in whole
    // centiseconds that would be 0 and Skew_Time would lose its meaning.
    let mut c = cfg(254);
    c.advert_interval_cs = 1;
    assert_eq!(started(c).skew_time(), us(78));
}

#[test]
fn rfc3768_6_1_v2_skew_is_seconds_not_truncated_to_zero() {
    let mut c = cfg(100);
    c.version = Version::V2;
    c.advert_interval_cs = 300;
    let i = started(c);
    // (256 - 100) / 256 s = 609.375 ms; integer seconds would give 0.
    assert_eq!(i.skew_time(), us(609_375));
    assert_eq!(i.master_down_interval(), ms(9000) + us(609_375));
}

#[test]
fn rfc5798_6_4_1_startup_non_owner_goes_backup_with_master_down_timer() {
    let mut i = Instance::new(cfg(100));
    let a = i.handle(ms(5), Input::Startup);
    assert_eq!(i.state(), State::Backup);
    assert!(sends(&a).is_empty());
    assert_eq!(i.deadline(), Some(ms(5) + i.master_down_interval()));
}

#[test]
fn rfc5798_6_4_1_startup_owner_goes_master_and_announces() {
    let mut c = cfg(255);
    c.priority = 255;
    let mut i = Instance::new(c);
    let a = i.handle(ms(0), Input::Startup);
    assert_eq!(i.state(), State::Master);
    assert_eq!(sends(&a), vec![255]);
    assert!(a.contains(&Action::Announce));
    assert!(a.contains(&Action::AddVips));
    assert_eq!(i.deadline(), Some(ms(1000)));
}

#[test]
fn rfc5798_6_4_2_master_down_timer_fires_becomes_master() {
    let mut i = started(cfg(100));
    let t = i.deadline().unwrap();
    // Early timer calls do nothing.
    assert!(i.handle(t - us(1), Input::Timer).is_empty());
    let a = i.handle(t, Input::Timer);
    assert_eq!(i.state(), State::Master);
    assert_eq!(sends(&a), vec![100]);
    assert!(a.contains(&Action::Announce));
    assert_eq!(i.deadline(), Some(t + ms(1000)));
}

#[test]
fn rfc5798_6_4_2_backup_learns_master_adver_interval() {
    let mut i = started(cfg(100));
    i.handle(ms(10), rx("192.0.2.2", advert(200, 25)));
    assert_eq!(i.master_adver_interval(), ms(250));
    // MDI = 3 * 250 ms + 156 * 25 cs / 256.
    assert_eq!(i.master_down_interval(), ms(750) + us(152_343));
    assert_eq!(i.deadline(), Some(ms(10) + i.master_down_interval()));
    assert_eq!(i.master_addr(), Some(ip("192.0.2.2")));
}

#[test]
fn rfc5798_6_4_2_priority_zero_sets_timer_to_skew_time() {
    let mut i = started(cfg(100));
    i.handle(ms(10), rx("192.0.2.2", advert(200, 100)));
    i.handle(ms(500), rx("192.0.2.2", advert(0, 100)));
    assert_eq!(i.deadline(), Some(ms(500) + us(609_375)));
    i.handle(ms(500) + us(609_375), Input::Timer);
    assert_eq!(i.state(), State::Master);
    assert!(matches!(
        i.last_transition(),
        Some((_, Reason::MasterResigned))
    ));
}

#[test]
fn fast_takeover_on_priority_zero_is_immediate_when_enabled() {
    let mut c = cfg(100);
    c.fast_takeover = true;
    let mut i = started(c);
    i.handle(ms(10), rx("192.0.2.2", advert(200, 100)));
    let a = i.handle(ms(500), rx("192.0.2.2", advert(0, 100)));
    assert_eq!(i.state(), State::Master);
    assert_eq!(sends(&a), vec![100]);
}

#[test]
fn departure_6_4_2_preempt_a_lower_master_after_skew_time() {
    let mut i = started(cfg(150));
    // RFC 5798 discards a lower-priority master's advert and waits for the
    // Master_Down_Timer; nginx-ha preempts after its Skew_Time instead.
    i.handle(ms(100), rx("192.0.2.2", advert(100, 100)));
    assert_eq!(i.deadline(), Some(ms(100) + i.skew_time()));
    let a = i.handle(ms(100) + i.skew_time(), Input::Timer);
    assert_eq!(i.state(), State::Master);
    assert!(a.iter().any(|a| matches!(
        a,
        Action::Transition {
            reason: Reason::PreemptLower { priority: 100 },
            ..
        }
    )));
}

#[test]
fn rfc5798_6_4_2_nopreempt_accepts_lower_priority_master() {
    let mut c = cfg(150);
    c.preempt = false;
    let mut i = started(c);
    i.handle(ms(100), rx("192.0.2.2", advert(100, 100)));
    assert_eq!(i.deadline(), Some(ms(100) + i.master_down_interval()));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn rfc5798_6_4_2_equal_priority_resets_timer() {
    let mut i = started(cfg(100));
    i.handle(ms(100), rx("192.0.2.2", advert(100, 100)));
    assert_eq!(i.deadline(), Some(ms(100) + i.master_down_interval()));
}

#[test]
fn preempt_delay_holds_off_then_preempts() {
    let mut c = cfg(150);
    c.preempt_delay = ms(5000);
    let mut i = started(c);
    // Within the holdoff a lower-priority master is tolerated: the
    // preemption waits for the end of the delay.
    for t in (0..5000).step_by(1000) {
        i.handle(ms(t), rx("192.0.2.2", advert(100, 100)));
        assert_eq!(i.state(), State::Backup);
        assert_eq!(i.deadline(), Some(ms(5000)));
    }
    i.handle(ms(4999), Input::Timer);
    assert_eq!(i.state(), State::Backup);
    i.handle(ms(5000), Input::Timer);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn rfc5798_6_4_3_adver_timer_sends_and_rearms() {
    let mut i = master(cfg(100));
    let t = i.deadline().unwrap();
    let a = i.handle(t, Input::Timer);
    assert_eq!(sends(&a), vec![100]);
    assert_eq!(i.deadline(), Some(t + ms(1000)));
}

/// The Adver_Timer is re-armed from when it was due, not from when the
/// event loop got round to it: late wake-ups must not stretch every
/// interval (bench/failover.rs measured ~1% fewer adverts than configured).
#[test]
fn rfc5798_6_4_3_adver_timer_does_not_drift_when_handled_late() {
    let mut i = master(cfg(100));
    let t = i.deadline().unwrap();
    let a = i.handle(t + ms(3), Input::Timer);
    assert_eq!(sends(&a), vec![100]);
    assert_eq!(i.deadline(), Some(t + ms(1000)));
    // Far behind (a stalled process): one advert, no burst to catch up.
    let t2 = i.deadline().unwrap();
    let late = t2 + ms(2500);
    let a = i.handle(late, Input::Timer);
    assert_eq!(sends(&a), vec![100]);
    assert_eq!(i.deadline(), Some(late + ms(1000)));
}

#[test]
fn rfc5798_6_4_3_master_answers_priority_zero_with_advert() {
    let mut i = master(cfg(100));
    let a = i.handle(ms(5000), rx("192.0.2.2", advert(0, 100)));
    assert_eq!(sends(&a), vec![100]);
    assert_eq!(i.deadline(), Some(ms(6000)));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn rfc5798_6_4_3_master_yields_to_higher_priority() {
    let mut i = master(cfg(100));
    let a = i.handle(ms(5000), rx("192.0.2.2", advert(200, 50)));
    assert_eq!(i.state(), State::Backup);
    assert!(a.contains(&Action::RemoveVips));
    assert_eq!(i.master_adver_interval(), ms(500));
    assert_eq!(i.deadline(), Some(ms(5000) + i.master_down_interval()));
}

#[test]
fn rfc5798_6_4_3_tie_break_on_primary_address() {
    // Equal priority: the higher primary address wins.
    let mut i = master(cfg(100));
    i.handle(ms(5000), rx("192.0.1.255", advert(100, 100)));
    assert_eq!(i.state(), State::Master, "lower address must not win");
    i.handle(ms(5001), rx("192.0.2.2", advert(100, 100)));
    assert_eq!(i.state(), State::Backup, "higher address must win");
}

#[test]
fn departure_6_4_3_master_answers_lower_priority_and_reannounces() {
    // RFC 5798 §6.4.3 says "discard"; a node advertising a lower priority
    // believes it is master (healed split brain, a fast backup that timed
    // out), so the master answers at once and announces again, as
    // keepalived does.
    let mut i = master(cfg(150));
    let a = i.handle(ms(5000), rx("192.0.2.9", advert(100, 10)));
    assert_eq!(sends(&a), vec![150]);
    assert!(a.contains(&Action::Announce), "{a:?}");
    assert!(a.contains(&Action::Reassert {
        src: ip("192.0.2.9"),
        priority: 100
    }));
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.deadline(), Some(ms(5000) + ms(1000)), "Adver_Timer reset");
    assert_eq!(i.counters().lower_priority_answered, 1);
    // Equal priority, lower address: the same.
    let a = i.handle(ms(5001), rx("192.0.1.1", advert(150, 100)));
    assert!(a.contains(&Action::Announce), "{a:?}");
}

#[test]
fn departure_6_4_3_owner_master_answers_lower_priority() {
    let mut i = started(cfg(255));
    assert_eq!(i.state(), State::Master);
    let a = i.handle(ms(5000), rx("192.0.2.9", advert(100, 100)));
    assert_eq!(sends(&a), vec![255]);
    assert!(a.contains(&Action::Announce), "{a:?}");
    assert_eq!(i.counters().dropped.get("we_are_owner"), Some(&1));
}

#[test]
fn departure_6_4_3_master_yielding_sends_one_last_advert() {
    // So that the winner hears a lower priority even when it was this
    // node that heard the other first (see the departure above).
    let mut i = master(cfg(100));
    let a = i.handle(ms(5000), rx("192.0.2.9", advert(150, 100)));
    assert_eq!(sends(&a), vec![100]);
    assert_eq!(i.state(), State::Backup);
    // As a backup it stays silent.
    let a = i.handle(ms(5050), rx("192.0.2.9", advert(150, 100)));
    assert!(sends(&a).is_empty());
}

#[test]
fn rfc5798_6_4_3_shutdown_sends_priority_zero() {
    let mut i = master(cfg(100));
    let a = i.handle(ms(5000), Input::Shutdown);
    assert_eq!(sends(&a), vec![0]);
    assert!(a.contains(&Action::RemoveVips));
    assert_eq!(i.state(), State::Initialize);
    assert_eq!(i.deadline(), None);
}

#[test]
fn rfc5798_6_4_2_backup_shutdown_cancels_timer_silently() {
    let mut i = started(cfg(100));
    let a = i.handle(ms(10), Input::Shutdown);
    assert!(sends(&a).is_empty());
    assert_eq!(i.deadline(), None);
    assert_eq!(i.state(), State::Initialize);
}

#[test]
fn rfc5798_7_1_owner_drops_adverts_for_its_vrid() {
    let mut i = master(cfg(255));
    i.handle(ms(10), rx("192.0.2.2", advert(254, 100)));
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.counters().dropped.get("we_are_owner"), Some(&1));
}

#[test]
fn rfc3768_7_1_v2_auth_and_interval_must_match() {
    let mut c = cfg(100);
    c.version = Version::V2;
    c.auth = Auth::pass(b"s3cret").unwrap();
    let mut i = started(c);
    let mut a = advert(200, 100);
    a.version = Version::V2;
    a.auth = Auth::pass(b"wrong").unwrap();
    i.handle(ms(10), rx("192.0.2.2", a.clone()));
    assert_eq!(
        i.counters().dropped.get(DropReason::AuthMismatch.counter()),
        Some(&1)
    );
    a.auth = Auth::pass(b"s3cret").unwrap();
    a.interval_cs = 200;
    i.handle(ms(10), rx("192.0.2.2", a.clone()));
    assert_eq!(i.counters().dropped.get("interval_mismatch"), Some(&1));
    a.interval_cs = 100;
    let before = i.deadline();
    i.handle(ms(20), rx("192.0.2.2", a));
    assert_ne!(i.deadline(), before, "a valid v2 advert resets the timer");
    assert_eq!(i.counters().adverts_received, 1);
}

#[test]
fn wrong_version_and_checksum_style_are_dropped_and_counted() {
    let mut i = started(cfg(100));
    let before = i.deadline();
    let mut a = advert(200, 100);
    a.version = Version::V2;
    i.handle(ms(10), rx("192.0.2.2", a));
    i.handle(
        ms(10),
        Input::Advert {
            src: ip("192.0.2.2"),
            advert: advert(200, 100),
            checksum: ChecksumStyle::AsV2,
        },
    );
    i.handle(ms(10), rx("192.0.2.1", advert(200, 100)));
    assert_eq!(i.deadline(), before);
    let d = &i.counters().dropped;
    assert_eq!(d.get("version_mismatch"), Some(&1));
    assert_eq!(d.get("checksum_style"), Some(&1));
    assert_eq!(d.get("own_advert"), Some(&1));
}

#[test]
fn rfc5798_7_1_address_mismatch_is_counted_not_dropped() {
    let mut i = started(cfg(100));
    let mut a = advert(200, 100);
    a.addrs = vec![ip("192.0.2.101")];
    i.handle(ms(10), rx("192.0.2.2", a));
    assert_eq!(i.counters().address_mismatch, 1);
    assert_eq!(i.master_addr(), Some(ip("192.0.2.2")));
}

#[test]
fn fault_on_master_resigns_with_priority_zero_and_recovers_to_backup() {
    let mut i = master(cfg(100));
    let a = i.handle(ms(5000), Input::Fault("nginx died".into()));
    assert_eq!(i.state(), State::Fault);
    assert_eq!(sends(&a), vec![0]);
    assert!(a.contains(&Action::RemoveVips));
    assert_eq!(i.deadline(), None);
    // Adverts in FAULT change no state, but are remembered: coming back,
    // this node preempts the lower master it heard after Skew_Time.
    i.handle(ms(5100), rx("192.0.2.2", advert(50, 100)));
    assert_eq!(i.state(), State::Fault);
    i.handle(ms(6000), Input::Recover);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.deadline(), Some(ms(6000) + i.skew_time()));
}

#[test]
fn a_master_heard_too_long_ago_means_master_down_interval_again() {
    let mut i = master(cfg(100));
    i.handle(ms(5000), Input::Fault("nginx died".into()));
    i.handle(ms(5100), rx("192.0.2.2", advert(50, 100)));
    // Longer ago than that master's Master_Down_Interval: it may be gone.
    i.handle(ms(9000), Input::Recover);
    assert_eq!(i.deadline(), Some(ms(9000) + i.master_down_interval()));
}

#[test]
fn a_higher_master_heard_in_fault_is_not_preempted() {
    let mut i = master(cfg(100));
    i.handle(ms(5000), Input::Fault("nginx died".into()));
    i.handle(ms(5100), rx("192.0.2.2", advert(200, 100)));
    i.handle(ms(6000), Input::Recover);
    assert_eq!(i.deadline(), Some(ms(6000) + i.master_down_interval()));
}

#[test]
fn fault_before_startup_keeps_node_out() {
    let mut i = Instance::new(cfg(100));
    i.handle(ms(0), Input::Fault("link down".into()));
    i.handle(ms(0), Input::Startup);
    assert_ne!(i.state(), State::Master);
    assert_eq!(i.deadline(), None);
    i.handle(ms(10), Input::Recover);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn priority_changes_are_clamped_and_used_in_adverts_and_skew() {
    let mut i = master(cfg(100));
    i.handle(ms(1), Input::Priority(0));
    assert_eq!(i.priority(), 1);
    i.handle(ms(1), Input::Priority(255));
    assert_eq!(i.priority(), 254);
    i.handle(ms(1), Input::Priority(80));
    let t = i.deadline().unwrap();
    assert_eq!(sends(&i.handle(t, Input::Timer)), vec![80]);
    // With its priority lowered to 80, the master yields to a 90.
    i.handle(t, rx("192.0.2.0", advert(90, 100)));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn routine_is_the_accepted_advert_and_goes_with_any_decision() {
    let mut i = started(cfg(100));
    assert_eq!(i.routine(), None, "nothing heard yet");
    i.handle(ms(10), rx("192.0.2.2", advert(150, 100)));
    assert_eq!(i.routine(), Some((ip("192.0.2.2"), &advert(150, 100))));
    // A repeat handed over late, at its arrival time, leaves the timer
    // where it would have at once.
    i.handle(ms(1010), rx("192.0.2.2", advert(150, 100)));
    assert_eq!(i.deadline(), Some(ms(1010) + i.master_down_interval()));
    assert!(i.routine().is_some());
    // Another advert decides something: no longer routine.
    i.handle(ms(1020), rx("192.0.2.2", advert(0, 100)));
    assert_eq!(i.routine(), None, "priority 0");
    i.handle(ms(1030), rx("192.0.2.2", advert(150, 100)));
    assert!(i.routine().is_some());
    i.handle(ms(1040), rx("192.0.2.3", advert(90, 100)));
    assert_eq!(i.routine(), None, "a lower master to preempt");
    i.handle(ms(1050), rx("192.0.2.2", advert(150, 100)));
    i.handle(ms(1060), Input::Priority(200));
    assert_eq!(
        i.routine(),
        None,
        "a new priority: the master may now be lower"
    );
    i.handle(ms(1070), rx("192.0.2.2", advert(150, 100)));
    assert_eq!(
        i.routine(),
        None,
        "lower than this node: preempted, not routine"
    );
    i.handle(ms(1080), Input::Priority(100));
    i.handle(ms(1090), rx("192.0.2.2", advert(150, 100)));
    assert!(i.routine().is_some());
    let t = i.deadline().unwrap();
    i.handle(t, Input::Timer);
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.routine(), None, "only a BACKUP has routine adverts");
}

#[test]
fn a_repeat_is_the_routine_advert_received_again_in_a_few_stores() {
    // The same instance fed the advert in full and fed its repeats: the
    // same timer, the same counters, the same later decisions.
    let (mut full, mut quick) = (started(cfg(100)), started(cfg(100)));
    assert!(
        !quick.repeat(ms(5)),
        "nothing routine yet: hand it over in full"
    );
    for i in [&mut full, &mut quick] {
        i.handle(ms(10), rx("192.0.2.2", advert(150, 100)));
    }
    for t in [1010, 2010, 2500] {
        full.handle(ms(t), rx("192.0.2.2", advert(150, 100)));
        assert!(quick.repeat(ms(t)));
        assert_eq!(quick.deadline(), Some(ms(t) + quick.master_down_interval()));
        assert_eq!(quick.deadline(), full.deadline());
        assert_eq!(quick.counters(), full.counters());
    }
    // The master lowers its priority below ours: no longer routine, and
    // the preemption follows in both.
    for i in [&mut full, &mut quick] {
        i.handle(ms(2600), rx("192.0.2.2", advert(90, 100)));
    }
    assert!(!quick.repeat(ms(2610)), "not routine any more");
    assert_eq!(quick.deadline(), full.deadline());
    let t = quick.deadline().unwrap();
    for i in [&mut full, &mut quick] {
        i.handle(t, Input::Timer);
        assert_eq!(i.state(), State::Master);
    }
    assert!(!quick.repeat(t), "a MASTER has no routine adverts");
    assert_eq!(quick.counters(), full.counters());
}
