//! The order of one profile's measurements: nginx-ha's and keepalived's
//! pairs take turns (nginx-ha, keepalived, nginx-ha, keepalived, ...), one
//! idle-CPU window per turn, so that a burst of load from the machine's
//! other users falls on one window of one daemon, not on all of one side.
//! The scenario runs come in each setup's first turn.

use crate::Opts;
use crate::footprint::measure;
use crate::scenarios::{SetupResult, run_scenarios, start_pair};
use crate::setups::{Daemon, KaCheck, Profile, Setup};

/// Runs `setups` in turns: `windows` idle windows each (0 without the
/// footprint), and every run of `scen` in the first turn. A setup that
/// does not start is not tried again.
pub fn run_turns(setups: &[Setup], o: &Opts, scen: &[char], windows: usize) -> Vec<SetupResult> {
    let mut rs: Vec<SetupResult> = setups.iter().map(|s| SetupResult::new(*s)).collect();
    let mut dead = vec![false; setups.len()];
    let turns = windows.max(usize::from(!scen.is_empty()));
    for turn in 0..turns {
        for (j, s) in setups.iter().enumerate() {
            if dead[j] {
                continue;
            }
            let r = &mut rs[j];
            let Some(mut p) = start_pair(*s, r) else {
                dead[j] = true;
                continue;
            };
            if turn < windows {
                let w = measure(&p, o.cpu_window);
                r.footprint.get_or_insert_default().windows.push(w);
            }
            if turn == 0 {
                run_scenarios(&mut p, r, o, scen);
            }
        }
    }
    rs
}

fn setup(daemon: Daemon, profile: Profile, ka: KaCheck) -> Setup {
    Setup {
        daemon,
        profile,
        ka,
    }
}

/// nginx-ha next to keepalived in one profile: keepalived with its
/// quickest tracker where it has one working (vrrp_track_process at 100 ms
/// and 10 ms adverts and in the unicast pair), the textbook vrrp_script
/// otherwise.
pub fn run_profile(
    prof: Profile,
    o: &Opts,
    scen: &[char],
    fp: bool,
    notes: &mut Vec<String>,
) -> Vec<SetupResult> {
    let windows = if fp { o.cpu_windows } else { 0 };
    let nh = setup(Daemon::NginxHa, prof, KaCheck::Script);
    let ka_check = match prof {
        Profile::Textbook => KaCheck::Script,
        Profile::Fast | Profile::Fastest | Profile::Pair => KaCheck::TrackProcess,
    };
    let ka = setup(Daemon::Keepalived, prof, ka_check);
    // The pair is about takeover and failback (issue 15 point 3): A, B
    // (to get to E), D and E; a link down (C) is the textbook's business.
    let scen: Vec<char> = match prof {
        Profile::Pair => scen.iter().copied().filter(|c| *c != 'C').collect(),
        _ => scen.to_vec(),
    };
    let mut rs = run_turns(&[nh, ka], o, &scen, windows);
    if prof == Profile::Fast {
        let tp_ok = rs[1].samples.get(&'A').is_some_and(|v| !v.is_empty());
        let sc = setup(Daemon::Keepalived, prof, KaCheck::Script);
        // The script variant: only A and D depend on the check; it carries
        // the footprint if track_process failed.
        let ad: Vec<char> = if tp_ok {
            scen.iter()
                .copied()
                .filter(|c| *c == 'A' || *c == 'D')
                .collect()
        } else {
            notes.push("vrrp_track_process did not work in the lab: keepalived's fast profile falls back to vrrp_script (see errors; its footprint windows are then not interleaved with nginx-ha's)".into());
            scen.clone()
        };
        if !ad.is_empty() || !tp_ok {
            let w = if tp_ok { 0 } else { windows };
            rs.extend(run_turns(&[sc], o, &ad, w));
        }
    }
    rs
}
