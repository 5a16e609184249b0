//! Properties of the nginx check's pure schedule and verdict
//! (`nginx_ha_core::health::nginx_plan`), over random event sequences:
//! rise is never shortcut, probes are spaced as promised, a master exit
//! fails at once, and a crash-looping nginx soon stops turning healthy (at most once when it
//! lives less than the first hold-down).

use nginx_ha_core::config::check_spec::Timing;
use nginx_ha_core::health::hold_down::{FIRST_HOLD, MAX_HOLD};
use nginx_ha_core::health::nginx_plan::{NginxPlan, RISE_GAP};
use proptest::prelude::*;
use std::time::Duration;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn timing(interval: u64, rise: u32, fall: u32) -> Timing {
    Timing {
        interval: ms(interval),
        timeout: ms(interval / 2),
        rise,
        fall,
    }
}

#[derive(Clone, Debug)]
enum Ev {
    Appear,
    Exit,
    /// A probe at its due time (or `late` ms after), answering or not.
    Probe {
        ok: bool,
        late: u64,
    },
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        1 => Just(Ev::Appear),
        1 => Just(Ev::Exit),
        8 => (any::<bool>(), 0u64..30).prop_map(|(ok, late)| Ev::Probe { ok, late }),
    ]
}

/// What the checker remembers to judge the plan.
#[derive(Default)]
struct Seen {
    running: bool,
    appeared: Duration,
    /// Results since the last appearance, newest last.
    results: Vec<bool>,
    /// Results counted toward fall, newest last.
    counted_fails: usize,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verdicts_keep_their_promises(
        interval in 20u64..2000,
        rise in 1u32..5,
        fall in 1u32..5,
        evs in proptest::collection::vec(ev(), 1..200),
    ) {
        let t = timing(interval, rise, fall);
        let mut p = NginxPlan::new(&t, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut seen = Seen::default();
        for e in evs {
            match e {
                Ev::Appear => {
                    if seen.running {
                        continue; // a second master needs the first one's exit
                    }
                    now += ms(1);
                    p.process_appeared(now);
                    prop_assert_eq!(p.due(), now, "a new master is probed at once");
                    // Failures before the master appeared still count
                    // toward fall: nginx has not answered all along.
                    seen = Seen {
                        running: true,
                        appeared: now,
                        counted_fails: seen.counted_fails,
                        ..Seen::default()
                    };
                }
                Ev::Exit => {
                    now += ms(1);
                    let was = p.healthy();
                    let change = p.process_exited(now);
                    prop_assert_eq!(p.healthy(), Some(false), "an exit fails at once");
                    prop_assert_eq!(change.is_some(), was != Some(false));
                    seen.running = false;
                    seen.results.clear();
                    seen.counted_fails = 0;
                }
                Ev::Probe { ok, late } => {
                    let ok = ok && seen.running;
                    prop_assert!(p.due() <= now + t.interval, "never more than an interval away");
                    now = now.max(p.due()) + ms(late);
                    let cadence = (p.due() + t.interval).max(now);
                    let before = p.healthy();
                    let hold = p.hold();
                    let change = p.probed(now, ok);
                    prop_assert!(p.due() >= now);
                    prop_assert!(p.due() <= now + t.interval, "never more than an interval away");
                    if ok {
                        seen.results.push(true);
                        seen.counted_fails = 0;
                    } else if seen.running
                        && !seen.results.contains(&true)
                        && now < seen.appeared + t.interval
                    {
                        // A start-up retry: neither a result nor a failure.
                    } else {
                        seen.results.push(false);
                        seen.counted_fails += 1;
                    }
                    match change {
                        Some(true) => {
                            let run = seen.results.iter().rev().take_while(|r| **r).count();
                            prop_assert!(run >= rise as usize, "rise shortcut: {run} < {rise}");
                            prop_assert!(now >= seen.appeared + hold, "hold-down skipped");
                            prop_assert_eq!(p.due(), cadence);
                        }
                        Some(false) => {
                            prop_assert!(seen.counted_fails >= fall as usize, "fall shortcut");
                        }
                        None => {}
                    }
                    if change.is_none() && ok && before != Some(true) && p.healthy() != Some(true) {
                        // Rising: the next answer is due shortly, or at the
                        // hold-down's end.
                        prop_assert!(
                            p.due() == now + RISE_GAP || p.due() <= seen.appeared + hold.max(RISE_GAP),
                            "rise spacing"
                        );
                    }
                    if !ok && before == Some(true) {
                        prop_assert_eq!(p.due(), cadence, "fall is not hurried");
                    }
                }
            }
        }
    }

    #[test]
    fn a_crash_loop_stops_turning_healthy(
        interval in 50u64..1000,
        rise in 1u32..4,
        listen_after in 0u64..50,
        restarts in 2usize..40,
        gap in 10u64..500,
        frac in 0u64..100,
    ) {
        let t = timing(interval, rise, 2);
        let mut p = NginxPlan::new(&t, Duration::ZERO);
        // Each nginx dies before rise × interval has passed since it
        // could first answer, so that its exit counts as a crash.
        let rise_cost = RISE_GAP * (rise - 1);
        let life = ms(listen_after) + rise_cost + ms(interval * u64::from(rise) * frac / 100);
        // Every hold-down shorter than the life lets one more through,
        // and doubles.
        let mut bound = 1;
        let mut h = FIRST_HOLD;
        while h <= life {
            bound += 1;
            h *= 2;
        }
        let mut now = ms(1);
        let mut healthy = 0;
        for _ in 0..restarts {
            let start = now;
            p.process_appeared(start);
            while p.due() < start + life {
                now = p.due();
                let ok = now >= start + ms(listen_after);
                if p.probed(now, ok) == Some(true) {
                    healthy += 1;
                }
            }
            now = start + life;
            p.process_exited(now);
            now += ms(gap);
        }
        prop_assert!(healthy <= bound, "{healthy} healthy verdicts in {restarts} restarts");
        if life < FIRST_HOLD {
            prop_assert!(healthy <= 1);
        }
        prop_assert!(p.hold() >= FIRST_HOLD || healthy == 0);
        // The loop ends; an nginx that stays up turns healthy within the
        // hold-down (plus the rise).
        let start = now;
        p.process_appeared(start);
        let mut verdict_at = None;
        while verdict_at.is_none() && now < start + MAX_HOLD + ms(5 * interval) {
            now = p.due();
            if p.probed(now, true) == Some(true) {
                verdict_at = Some(now);
            }
        }
        let at = verdict_at.expect("never healthy again");
        prop_assert!(at <= start + p.hold().max(rise_cost) + RISE_GAP);
    }
}
