//! Properties of the VRRP core over random schedules, run on the
//! deterministic simulator in `sim/`. A failing case prints its seed and
//! schedule; proptest shrinks it to a minimal one.

mod sim;

use nginx_ha::vrrp::instance::{Input, State};
use nginx_ha_lab::ms;
use proptest::prelude::*;
use sim::{Sim, config};
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    Block(usize, usize),
    HealAll,
    Priority(usize, u8),
    Crash(usize),
    Restart(usize),
    Shutdown(usize),
    Fault(usize),
    Recover(usize),
    Loss(u64),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..n, 0..n).prop_map(|(a, b)| Op::Block(a, b)),
        Just(Op::HealAll),
        (0..n, 1u8..=254).prop_map(|(i, p)| Op::Priority(i, p)),
        (0..n).prop_map(Op::Crash),
        (0..n).prop_map(Op::Restart),
        (0..n).prop_map(Op::Shutdown),
        (0..n).prop_map(Op::Fault),
        (0..n).prop_map(Op::Recover),
        (0u64..300).prop_map(Op::Loss),
    ]
}

#[derive(Clone, Debug)]
struct Scenario {
    priorities: Vec<u8>,
    preempt: bool,
    interval_cs: u16,
    delay_ms: u64,
    seed: u64,
    /// (gap before the op in ms, op)
    ops: Vec<(u64, Op)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (2usize..=5).prop_flat_map(|n| {
        (
            proptest::collection::vec(1u8..=254, n),
            any::<bool>(),
            prop_oneof![Just(10u16), Just(25), Just(100)],
            0u64..=5,
            any::<u64>(),
            proptest::collection::vec((0u64..3000, op(n)), 0..25),
        )
            .prop_map(
                |(priorities, preempt, interval_cs, delay_ms, seed, ops)| Scenario {
                    priorities,
                    preempt,
                    interval_cs,
                    delay_ms,
                    seed,
                    ops,
                },
            )
    })
}

fn apply(sim: &mut Sim, op: &Op) {
    match *op {
        Op::Block(a, b) if a != b => sim.block(a, b),
        Op::Block(..) => {}
        Op::HealAll => sim.heal_all(),
        Op::Priority(i, p) => sim.input(i, Input::Priority(p)),
        Op::Crash(i) => sim.crash(i),
        Op::Restart(i) => sim.restart(i),
        Op::Shutdown(i) => sim.input(i, Input::Shutdown),
        Op::Fault(i) => sim.input(i, Input::Fault("test".into())),
        Op::Recover(i) => sim.input(i, Input::Recover),
        Op::Loss(p) => sim.loss_permille = p,
    }
}

/// Brings every node back and makes the network perfect.
fn stabilise(sim: &mut Sim) {
    sim.heal_all();
    sim.loss_permille = 0;
    for i in 0..sim.nodes.len() {
        sim.restart(i);
        sim.input(i, Input::Recover);
        if sim.nodes[i].inst.state() == State::Initialize {
            sim.input(i, Input::Startup);
        }
    }
}

fn max_mdi(sim: &Sim) -> Duration {
    sim.nodes
        .iter()
        .map(|n| n.inst.master_down_interval())
        .max()
        .unwrap_or_default()
}

fn run_chaos(s: &Scenario) -> Sim {
    let configs = s
        .priorities
        .iter()
        .enumerate()
        .map(|(i, &p)| config(i, p, s.interval_cs, s.preempt))
        .collect();
    let mut sim = Sim::new(configs, s.seed);
    sim.max_delay = ms(s.delay_ms);
    sim.start_all();
    for (gap, op) in &s.ops {
        let t = sim.now + ms(*gap);
        sim.run_until(t);
        apply(&mut sim, op);
    }
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Once the network has been stable for one Master_Down_Interval (plus
    /// an advert interval and the link delay for the news to travel), there
    /// is exactly one master. With preemption it has the highest effective
    /// priority. Among equal priorities either may hold it: RFC 5798 §6.4.2
    /// has a backup accept an equal-priority master, and the address
    /// tie-break of §6.4.3 only decides between two masters.
    #[test]
    fn converges_to_one_master(s in scenario()) {
        let mut sim = run_chaos(&s);
        stabilise(&mut sim);
        let settle = max_mdi(&sim) + ms(u64::from(s.interval_cs) * 10) + ms(2 * s.delay_ms) ;
        let t = sim.now + settle;
        sim.run_until(t);
        let masters = sim.masters();
        prop_assert_eq!(masters.len(), 1, "masters {:?} at {:?}", masters, sim.now);
        if s.preempt {
            let best = sim.nodes.iter().map(|n| n.inst.priority()).max().unwrap();
            prop_assert_eq!(sim.nodes[masters[0]].inst.priority(), best);
        }
        // And it stays that way: no transition at all in the next 10 intervals.
        let before = sim.transitions.len();
        let t = sim.now + ms(u64::from(s.interval_cs) * 100);
        sim.run_until(t);
        prop_assert_eq!(sim.transitions.len(), before, "flapping after convergence");
    }

    /// After a partition heals, two masters never coexist for longer than
    /// one advert interval plus the link delay: the next advert settles it.
    #[test]
    fn partition_heal_resolves_within_one_advert_interval(s in scenario()) {
        let mut sim = run_chaos(&s);
        stabilise(&mut sim);
        // Fully partition everyone, let them all become master, then heal.
        let n = sim.nodes.len();
        for a in 0..n { for b in 0..n { if a != b { sim.block(a, b); } } }
        // Not max_mdi(): a Master_Down_Timer armed before a priority
        // change runs on the old Skew_Time. 4 intervals bound any of them.
        let t = sim.now + ms(u64::from(s.interval_cs) * 40) + ms(50);
        sim.run_until(t);
        prop_assert_eq!(sim.masters().len(), n, "a full partition makes everyone master");
        sim.heal_all();
        let healed = sim.now;
        let t = healed + max_mdi(&sim) * 2;
        sim.run_until(t);
        let bound = ms(u64::from(s.interval_cs) * 10 + s.delay_ms);
        let longest = sim.longest_dual_master_since(healed);
        prop_assert!(longest <= bound, "two masters for {:?} > {:?}", longest, bound);
        prop_assert_eq!(sim.masters().len(), 1);
        // Clients followed whichever master announced last. The winner
        // must announce after every other master has left MASTER, or the
        // clients of the losers keep sending to nodes without the VIP
        // (whichever of two masters hears the other first).
        let winner = sim.masters()[0];
        let last_loser_exit = sim
            .transitions
            .iter()
            .filter(|(t, i, from, _)| *t >= healed && *i != winner && *from == State::Master)
            .map(|(t, ..)| *t)
            .max();
        if let Some(exit) = last_loser_exit {
            let announced = sim
                .announcements
                .iter()
                .any(|(t, i)| *i == winner && *t >= exit);
            prop_assert!(
                announced,
                "node {} won but did not announce after the last loser left MASTER at {:?}",
                winner,
                exit
            );
        }
    }

    /// RFC 5798 §6.4.2/§6.4.3: a master that shuts down (priority 0) is
    /// replaced within the best backup's Skew_Time; one that dies silently,
    /// within its Master_Down_Interval (plus link delay in both cases).
    #[test]
    fn master_loss_is_replaced_within_rfc_bounds(
        prios in proptest::collection::vec(1u8..=254, 2..=5),
        interval_cs in prop_oneof![Just(10u16), Just(100)],
        delay_ms in 0u64..=3,
        silent in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let configs = prios.iter().enumerate()
            .map(|(i, &p)| config(i, p, interval_cs, true)).collect();
        let mut sim = Sim::new(configs, seed);
        sim.max_delay = ms(delay_ms);
        sim.start_all();
        let t = sim.now + ms(20_000);
        sim.run_until(t);
        let m = sim.masters();
        prop_assert_eq!(m.len(), 1);
        let old = m[0];
        // The successor is the best remaining backup.
        let best = (0..sim.nodes.len()).filter(|&i| i != old)
            .max_by_key(|&i| (sim.nodes[i].inst.priority(), sim.nodes[i].addr)).unwrap();
        let stop_at = sim.now;
        let bound = if silent {
            sim.crash(old);
            sim.nodes[best].inst.master_down_interval() + ms(delay_ms)
        } else {
            sim.input(old, Input::Shutdown);
            sim.nodes[best].inst.skew_time() + ms(delay_ms)
        };
        let t = stop_at + bound;
        sim.run_until(t);
        let took_over = sim.transitions.iter()
            .any(|&(at, _, _, to)| at > stop_at && to == State::Master);
        prop_assert!(took_over, "no new master within {:?}", bound);
    }

    /// The fast-takeover departure (issue: unicast pair): a backup that is
    /// the only possible successor takes over on priority 0 without
    /// Skew_Time. On a loss-free link it never yields two masters for longer
    /// than one advert interval plus the link delay, whatever the faults.
    #[test]
    fn fast_takeover_pair_never_dual_master(
        p0 in 1u8..=254, p1 in 1u8..=254,
        interval_cs in prop_oneof![Just(10u16), Just(100)],
        delay_ms in 0u64..=3,
        seed in any::<u64>(),
        ops in proptest::collection::vec((0u64..2000, 0usize..2, 0u8..5), 0..40),
    ) {
        let mut c0 = config(0, p0, interval_cs, true);
        let mut c1 = config(1, p1, interval_cs, true);
        c0.fast_takeover = true;
        c1.fast_takeover = true;
        let mut sim = Sim::new(vec![c0, c1], seed);
        sim.max_delay = ms(delay_ms);
        sim.start_all();
        for (gap, who, what) in ops {
            let t = sim.now + ms(gap);
            sim.run_until(t);
            match what {
                0 => sim.input(who, Input::Fault("nginx".into())),
                1 => sim.input(who, Input::Recover),
                2 => sim.input(who, Input::Shutdown),
                3 => sim.input(who, Input::Startup),
                _ => sim.input(who, Input::Priority(p0 ^ p1)),
            }
        }
        let t = sim.now + ms(30_000);
        sim.run_until(t);
        let bound = ms(u64::from(interval_cs) * 10 + delay_ms);
        let longest = sim.longest_dual_master_since(Duration::ZERO);
        prop_assert!(longest <= bound, "two masters for {:?} > {:?}", longest, bound);
    }
}

/// The worked example from the README: priorities 150/100, 1 s adverts.
#[test]
fn two_nodes_textbook_timings() {
    let mut sim = Sim::new(
        vec![config(0, 150, 100, true), config(1, 100, 100, true)],
        1,
    );
    sim.start_all();
    sim.run_until(ms(10_000));
    assert_eq!(sim.masters(), vec![0]);
    // Node 0 became master at its Master_Down_Interval: 3 s + 106 * 1 s/256.
    let first = sim
        .transitions
        .iter()
        .find(|t| t.3 == State::Master)
        .unwrap();
    assert_eq!(first.0, Duration::from_micros(3_414_062));
    sim.input(0, Input::Shutdown);
    let stop = sim.now;
    sim.run_until(stop + ms(1000));
    let takeover = sim
        .transitions
        .iter()
        .rev()
        .find(|t| t.3 == State::Master)
        .unwrap();
    assert_eq!(takeover.1, 1);
    // Skew_Time of priority 100: 609.375 ms (+ up to 1 ms link delay).
    let took = takeover.0 - stop;
    assert!(
        took >= Duration::from_micros(609_375) && took <= Duration::from_micros(610_375),
        "{took:?}"
    );
}
